"""The trials' artifact store: where a study's artifacts live, their names, and reading them back.

Optuna's FileSystemArtifactStore keeps the files; what a trial uploads (automl.search.trial_artifacts)
is shown by optuna-dashboard beside the trial and read back by ``automl export``.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url

from automl.errors import UsageError
from automl.storage._optuna import study_storage
from automl.storage.sqlite import is_file_sqlite

if TYPE_CHECKING:  # loaded by load_weights: the folder checks (`automl report`'s first) need no torch
    import torch

DEFAULT_DIR = "automl-artifacts"
# The files a trial uploads: architecture summary, learning curve (image, JSON), weights (a state dict).
SUMMARY = "summary.txt"
CURVE_PNG = "learning_curve.png"
CURVE_JSON = "learning_curve.json"
WEIGHTS = "weights.pt"
# An interrupted trial's last validated epoch (automl.training.progress.Checkpoint), to resume from.
CHECKPOINT = "checkpoint.pt"
# The type each is served with. Guessed from the name, ".pt" is a SNES page table on many systems.
MIME_TYPES = {SUMMARY: "text/plain", CURVE_PNG: "image/png", CURVE_JSON: "application/json",
              WEIGHTS: "application/octet-stream", CHECKPOINT: "application/octet-stream"}


def artifact_dir(storage_url: str, configured: str | None = None) -> Path:
    """The artifact folder of a storage: ``configured`` if given, else ``NAME-artifacts`` beside an
    SQLite file ``NAME.db``, else ``automl-artifacts`` in the working directory.

    Everything that writes or reads a study's artifacts (workers, dashboard, export) derives the
    same folder from the same URL, so none of them needs to be told where it is.
    """
    if configured:
        return Path(configured)
    if is_file_sqlite(storage_url):
        database = Path(make_url(storage_url).database or "")
        return database.with_name(f"{database.stem}-artifacts")
    return Path(DEFAULT_DIR)


def open_store(directory: Path) -> FileSystemArtifactStore:
    return FileSystemArtifactStore(str(output_dir(directory, "artifact folder")))


def output_dir(directory: Path, what: str) -> Path:
    """``directory``, created if needed, after a file was written in it (and removed); a UsageError
    naming it and ``what`` it is for when it cannot be (read-only, another user's, full)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _probe(directory)
    except OSError as exc:
        raise UsageError(f"cannot use {directory} as {what}: {exc.strerror}") from None
    return directory


def check_writable(directory: Path, what: str) -> None:
    """Raise the UsageError of ``output_dir`` if ``directory`` could not be written, without creating
    it: a folder that does not exist yet is judged by the nearest folder above it that does."""
    existing = next(folder for folder in (directory, *directory.absolute().parents) if folder.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        _probe(existing)
    except OSError as exc:
        above = "" if existing == directory else f" (it would be made in {existing})"
        raise UsageError(f"cannot use {directory} as {what}{above}: {exc.strerror}") from None


def _probe(directory: Path) -> None:
    # The one sure test: permissions, read-only mounts, quotas and ACLs all show in a write.
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".automl-write-check-"):
        pass


def upload(store: FileSystemArtifactStore, path: Path, trial: optuna.Trial) -> str:
    """Upload the file at ``path`` (named as one of MIME_TYPES) to ``trial``; returns its artifact id."""
    return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial,
                           mimetype=MIME_TYPES[path.name])


def _metas(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    # A FrozenTrial's artifacts are listed through the storage, which Study keeps private.
    return {meta.filename: meta for meta in get_all_artifact_meta(trial, storage=study_storage(study))}


def artifact_names(study: optuna.Study, trial: FrozenTrial) -> list[str]:
    return sorted(_metas(study, trial))


def load_artifact(store: FileSystemArtifactStore, study: optuna.Study, trial: FrozenTrial,
                  name: str, what: str) -> bytes | None:
    """The bytes of the trial's artifact ``name`` (``what`` it holds, for messages), or None when it
    stored none."""
    meta = _metas(study, trial).get(name)
    if meta is None:
        return None
    with tempfile.TemporaryDirectory(prefix="automl-artifact-") as folder:
        path = Path(folder) / name
        try:
            download_artifact(artifact_store=store, file_path=str(path), artifact_id=meta.artifact_id)
        except ArtifactNotFound:
            raise UsageError(f"trial {trial.number} of study {study.study_name!r} stored {what} as artifact "
                             f"{meta.artifact_id}, which is not in the artifact folder; if the artifacts "
                             "live elsewhere, give that folder with --artifacts DIR") from None
        return path.read_bytes()


def load_weights(store: FileSystemArtifactStore, study: optuna.Study,
                 trial: FrozenTrial) -> dict[str, torch.Tensor] | None:
    """The trial's stored state dict, or None when it stored none."""
    import torch

    data = load_artifact(store, study, trial, WEIGHTS, "its weights")
    return None if data is None else torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
