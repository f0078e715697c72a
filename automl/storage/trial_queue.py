"""The study's queue: workers run only queued trials, so N queued trials end as N finished ones.

``automl run`` queues a study's trials as Optuna WAITING trials before any worker starts. Popping
one is atomic in Optuna's storage (a row lock on PostgreSQL, the write lock on SQLite), so however
many workers share a study, each queued trial runs exactly once. Every trial that ends in failure
puts one trial back, which keeps "queued + running + finished" at the count that was asked for:

- a trial whose worker died (heartbeat gone stale: ``fail_reason`` says ``worker lost (no heartbeat
  for N s)``, N the grace period), was interrupted, or was stopped by the study's deadline before
  its first validated epoch is queued again with its parameters, linked to the original through
  Optuna's RetryHeartbeatStaleTrialCallback (``retried_trial_number``), up to ``max_retry`` times;
  after that a fresh trial replaces it;
- a trial that failed by itself (exception, non-finite loss, out of memory) is replaced by a fresh
  trial: its parameters would only fail again.

A large count is queued a window at a time. Optuna queues one trial per storage transaction (about
9 ms on SQLite), so ``n_trials = 100000`` would take a quarter of an hour before anything trains;
a worker's storage queues a window in one transaction (automl.storage.trial_states.queue_in).
The first ``WINDOW`` are queued at once; the trial in the middle of each window carries how many are
still to queue, and the worker that pops it (a pop is atomic, so one worker) queues the next
window before it trains (queue_more). A retry of that trial keeps the count, and a window is queued
once: a worker that died between its pop and the next window leaves the retry to queue it.

A run with a time budget and no ``n_trials`` samples until its deadline, as Optuna's
``optimize(timeout=...)`` does: its windows carry UNTIL_DEADLINE instead of a count, and only a
worker that has a deadline queues the next one. A later run without a budget therefore runs what
is left of the window and stops, where a count would have it sample forever.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from automl.storage._optuna import study_storage
from automl.storage.schema import CONFIG_ATTR, TrialAttr

QUEUED = TrialState.WAITING
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
WINDOW = 100
# QUEUE_MORE of a queue that goes on until the running worker's deadline.
UNTIL_DEADLINE = "until the deadline"
# The user attrs that say where a queued trial sits in a lazily queued study; a retry keeps them.
_PLACE = (TrialAttr.QUEUE_WINDOW, TrialAttr.QUEUE_MORE)


class QueueEmpty(Exception):
    """No queued trial is left for this worker to pop."""


def runs_queued_only(study_user_attrs: dict[str, Any]) -> bool:
    """Whether a study runs only the trials queued for it: one automl created (it carries its
    config). On a worker's storage, Optuna's ``ask()`` there pops a queued trial or raises
    QueueEmpty, never creating one (automl.storage.worker_storage).

    Optuna's ask() pops a WAITING trial or, when none is left, creates one. Workers that count the
    finished trials before asking race each other and overshoot the study's count (so does Optuna's
    MaxTrialsCallback); refusing the creation leaves the atomic pop as the only way to a trial.
    Trials added from a template (queueing, retries) are created as usual, and a study automl did
    not create (Optuna's storage conformance suite makes its own) is served as Optuna serves it.
    """
    return CONFIG_ATTR in study_user_attrs


def stale_reason(grace_period: float) -> str:
    """The ``fail_reason`` of a trial whose worker stopped sending heartbeats."""
    return f"worker lost (no heartbeat for {grace_period:g} s)"


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


class Queued(NamedTuple):
    """A configuration to queue as it is: its stored params, and the user attrs its trial starts with."""

    params: dict[str, Any]
    user_attrs: dict[str, Any]


def queue_configs(study: optuna.Study, configs: Sequence[Queued]) -> None:
    """Queue trials with fixed parameters (warm starts, a study's first configurations)."""
    for config in configs:
        study.enqueue_trial(config.params, user_attrs=config.user_attrs or None)


def queue_trials(study: optuna.Study, n_trials: int | None, window: int = 0) -> None:
    """Queue ``n_trials`` fresh trials (None: until the deadline of the worker that runs them); the
    sampler picks their parameters when one is popped: the first WINDOW now as window ``window``,
    the rest by queue_more."""
    now = WINDOW if n_trials is None else min(n_trials, WINDOW)
    later: int | str = UNTIL_DEADLINE if n_trials is None else n_trials - now
    places: list[dict[str, int | str]] = []
    for index in range(now):
        place: dict[str, int | str] = {}
        if window or later:
            if index == 0:
                place[TrialAttr.QUEUE_WINDOW] = window
            if later and index == now // 2:
                place.update({TrialAttr.QUEUE_WINDOW: window, TrialAttr.QUEUE_MORE: later})
        places.append(place)
    storage = study_storage(study)
    if isinstance(storage, QueuesInBulk):  # a worker's storage: the window in one transaction
        storage.enqueue_trials(storage.get_study_id_from_name(study.study_name), places)
        return
    for place in places:
        study.enqueue_trial({}, user_attrs=place or None)


@runtime_checkable
class QueuesInBulk(Protocol):
    """A storage that queues many trials at once as ``enqueue_trial({}, user_attrs=...)`` queues
    each (automl.storage.worker_storage.WorkerStorage)."""

    def get_study_id_from_name(self, study_name: str) -> int: ...

    def enqueue_trials(self, study_id: int, user_attrs: Sequence[Mapping[str, Any]]) -> None: ...


def queue_more(study: optuna.Study, trial: optuna.Trial | FrozenTrial, has_deadline: bool) -> None:
    """Queue the next window if the just-popped ``trial`` says more are to come and no one has.

    ``has_deadline``: whether the worker that popped it stops at a deadline; a queue that runs
    until the deadline ends with the window under way when it does not.
    """
    later = trial.user_attrs.get(TrialAttr.QUEUE_MORE)
    if not later or (later == UNTIL_DEADLINE and not has_deadline):
        return
    window = int(trial.user_attrs[TrialAttr.QUEUE_WINDOW]) + 1
    if any(t.user_attrs.get(TrialAttr.QUEUE_WINDOW) == window for t in study.get_trials(deepcopy=False)):
        return  # queued by the attempt this trial retries
    queue_trials(study, None if later == UNTIL_DEADLINE else int(later), window)


def still_queued(study: optuna.Study) -> int:
    """The trials queued now and those still to queue in later windows (a queue that runs until
    the deadline counts what is queued now: see samples_until_deadline)."""
    queued = _queued(study)
    return len(queued) + sum(more for t in queued if isinstance(more := t.user_attrs.get(TrialAttr.QUEUE_MORE), int))


def samples_until_deadline(study: optuna.Study) -> bool:
    """Whether the study's queue goes on until the deadline of the run that works on it."""
    return any(t.user_attrs.get(TrialAttr.QUEUE_MORE) == UNTIL_DEADLINE for t in _queued(study))


def _queued(study: optuna.Study) -> list[FrozenTrial]:
    """The queued trials, whole: a worker's storage lists the queued trials alone in outline, as
    optuna.Study's pop needs them (automl.storage.read_once)."""
    return [trial for trial in study.get_trials(deepcopy=False) if trial.state == QUEUED]


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
        template.user_attrs = {key: trial.user_attrs[key] for key in _PLACE if key in trial.user_attrs}
        self._retry(study, template)

    def replace(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """The after-trial callback: a trial that failed by itself gets a fresh replacement. (One the
        deadline stopped before its first epoch is queued again with its parameters by the worker,
        which records it: automl.workers.worker.)"""
        if trial.state == TrialState.FAIL:
            queue_trials(study, 1)
