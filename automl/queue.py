"""The study's queue: workers run only queued trials, so N queued trials end as N finished ones.

``automl run`` queues a study's trials as Optuna WAITING trials before any worker starts. Popping
one is atomic in Optuna's storage (a row lock on PostgreSQL, the write lock on SQLite), so however
many workers share a study, each queued trial runs exactly once. Every trial that ends in failure
puts one trial back, which keeps "queued + running + finished" at the count that was asked for:

- a trial whose worker died (heartbeat gone stale) or was interrupted is queued again with its
  parameters, linked to the original through Optuna's RetryHeartbeatStaleTrialCallback
  (``retried_trial_number``), up to ``max_retry`` times; after that a fresh trial replaces it;
- a trial that failed by itself (exception, non-finite loss, out of memory) is replaced by a fresh
  trial: its parameters would only fail again.
"""

from __future__ import annotations

import copy
from collections.abc import Container
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from automl.held_writes import HeldWritesStorage

QUEUED = TrialState.WAITING
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


class QueueEmpty(Exception):
    """No queued trial is left for this worker to pop."""


class QueueOnlyStorage(optuna.storages.RDBStorage):
    """An RDBStorage on which ``study.ask()`` pops queued trials and never creates new ones, and
    which reads each queued trial in full once.

    Optuna's ask() pops a WAITING trial or, when none is left, creates one. Workers that count the
    finished trials before asking race each other and overshoot the study's count (so does Optuna's
    MaxTrialsCallback); refusing the creation leaves the atomic pop as the only way to a trial.
    Trials added from a template (queueing, retries) are created as usual.

    The _CachedStorage around every Study re-reads each unfinished trial, with all its rows, on
    every read of the study, and a run queues its whole count up front: with 1,000 queued trials
    a read took 30 times as long (benchmarks/worker_storage.py), several times per trial. A queued
    trial does not change until it is popped, so this storage reads the state of those it holds
    and loads only the ones that left the queue.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: dict[int, FrozenTrial] = {}  # trial_id -> the trial as read while queued

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None:
            raise QueueEmpty()
        return super().create_new_trial(study_id, template_trial)

    # The _CachedStorage that every Study puts around an RDBStorage calls this private twin.
    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> Any:
        if template_trial is None:
            raise QueueEmpty()
        return super()._create_new_trial(study_id, template_trial)

    # The _CachedStorage reads through this private method: the unfinished trials it holds, and
    # every trial created after the last finished one.
    def _get_trials(self, study_id: int, states: Container[TrialState] | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        if states is not None:
            trials = super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        else:
            current = self._states(study_id, included_trial_ids, trial_id_greater_than)
            unchanged = [self._queued[i] for i, state in current.items() if state == QUEUED and i in self._queued]
            load = set(current) - {t._trial_id for t in unchanged}
            # Optuna's query loads the given ids and every id above its bound: with the highest
            # id just seen as the bound, only trials created since then come along.
            loaded = super()._get_trials(study_id, None, load, max(current)) if load else []
            trials = sorted(loaded + unchanged, key=lambda t: t._trial_id)
        for trial in trials:
            if trial.state == QUEUED:
                self._queued[trial._trial_id] = trial
            else:
                self._queued.pop(trial._trial_id, None)
        return trials

    def _states(self, study_id: int, included_trial_ids: set[int], trial_id_greater_than: int,
                ) -> dict[int, TrialState]:
        """The state of each trial in ``included_trial_ids`` or with an id above the bound."""
        lowest = min(included_trial_ids, default=trial_id_greater_than + 1)
        with _create_scoped_session(self.scoped_session) as session:
            # A range, not an IN list of every id: SQLite caps the number of bound variables.
            rows = (session.query(models.TrialModel.trial_id, models.TrialModel.state)
                    .filter(models.TrialModel.study_id == study_id, models.TrialModel.trial_id >= lowest)
                    .all())
        return {trial_id: state for trial_id, state in rows
                if trial_id in included_trial_ids or trial_id > trial_id_greater_than}


class WorkerStorage(QueueOnlyStorage, HeldWritesStorage):
    """A worker's storage: pops queued trials only, reads each in full once, and batches its
    trial writes (automl.held_writes)."""


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def queue_trials(study: optuna.Study, n_trials: int) -> None:
    """Queue ``n_trials`` fresh trials; the sampler picks their parameters when one is popped."""
    for _ in range(n_trials):
        study.enqueue_trial({})


class Requeue:
    """Puts a failed trial's replacement in the queue; also Optuna's stale-trial callback."""

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        self._retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Retry ``trial`` with its parameters while retries are left, else queue a fresh one."""
        if len(RetryHeartbeatStaleTrialCallback.retry_history(trial)) >= self.max_retry:
            queue_trials(study, 1)
            return
        template = copy.deepcopy(trial)
        # The retry is a new attempt: the original's results and fail_reason would mislabel it.
        template.user_attrs = {}
        self._retry(study, template)

    def replace(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """The after-trial callback: a trial that failed by itself gets a fresh replacement."""
        if trial.state == TrialState.FAIL:
            queue_trials(study, 1)
