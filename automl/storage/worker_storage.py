"""A worker's storage: Optuna's RDBStorage with automl's four layers stacked on it."""

from __future__ import annotations

from automl.storage.held_writes import HeldWritesStorage
from automl.storage.read_once import ReadOnceStorage
from automl.storage.retry import RetryingStorage
from automl.storage.trial_queue import QueueOnlyStorage


class WorkerStorage(RetryingStorage, QueueOnlyStorage, ReadOnceStorage, HeldWritesStorage):
    """A worker's storage: rides out a database outage (automl.storage.retry), pops queued trials
    only (automl.storage.trial_queue), reloads only trials that may have changed
    (automl.storage.read_once), and batches its trial writes (automl.storage.held_writes)."""
