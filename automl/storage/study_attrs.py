"""A study's system attributes written many at a time, in one transaction.

Optuna writes each study system attribute in a transaction of its own (a few milliseconds on
SQLite), and optuna-dashboard keeps every note and figure as such attributes, in chunks of about
2 kB: a study of thousands of trials holds tens of thousands of them. Optuna has no batched write,
so on a database this module upserts them in one transaction (automl.storage.optuna_tables); on
any other storage it writes them one by one through Optuna, which is slower but still one write
per attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import RDBStorage

from automl.storage._optuna import storage_backend, study_storage
from automl.storage.optuna_tables import OptunaTables
from automl.storage.worker_storage import WorkerStorage


def set_study_system_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
    """Set each of ``attrs`` (key -> JSON-serializable value) on ``study``, in one transaction
    where the storage allows it (see module). KeyError if the study is gone (StudyDeleted on a
    worker's storage)."""
    if not attrs:
        return
    storage = study_storage(study)
    if isinstance(storage, WorkerStorage):
        storage.set_study_system_attrs(storage.get_study_id_from_name(study.study_name), attrs)
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    backend = storage_backend(study)
    if not isinstance(backend, RDBStorage):
        for key, value in attrs.items():
            storage.set_study_system_attr(study_id, key, value)
        return
    if not OptunaTables(backend.engine).set_study_system_attrs(study_id, attrs):
        raise KeyError(f"no study with id {study_id}")
