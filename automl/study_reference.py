"""The study a command names: by its name, or by the study file that names it and its storage.

``automl run study.toml`` takes the file; ``show``, ``report``, ``export`` and ``retrain`` take the
study's name with ``--storage``, and the file too, so that the command a user just ran works with
the same argument: its ``name`` and ``storage`` keys say where the study is.
"""

from __future__ import annotations

from pathlib import Path

from automl.config import DEFAULT_STORAGE, load_study_file

STUDY_FILE_SUFFIXES = (".toml", ".json")


def resolve_study(reference: str, storage: str | None) -> tuple[str, str]:
    """(study name, storage URL) for a command's STUDY_NAME argument and its storage (``--storage``
    or ``$AUTOML_STORAGE``; None when neither is given).

    ``reference`` is a study's name, or the path of an existing study file (``.toml``, or a
    ``StudyConfig`` JSON), whose ``name`` is the study's and whose ``storage`` is used when none is
    given; else DEFAULT_STORAGE. Raises UsageError for a study file that does not validate, as
    ``automl run`` would."""
    path = Path(reference)
    if path.suffix not in STUDY_FILE_SUFFIXES or not path.is_file():
        return reference, storage or DEFAULT_STORAGE
    config = load_study_file(path)
    return config.name, config.storage_url(storage)
