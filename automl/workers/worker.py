"""One worker: runs a study's queued trials until none is queued and none is running anywhere."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import optuna
import torch
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from automl.config import WorkersConfig
from automl.errors import plural
from automl.storage.lost import lost_in
from automl.storage.schema import DEADLINE, TrialAttr
from automl.storage.trial_queue import QUEUED, QueueEmpty, Requeue, count, queue_more
from automl.training.device import free_memory
from automl.workers.failures import INTERRUPTED, FailureStreak, TooManyFailures, grouped_failure_log
from automl.workers.hard_deadline import OutOfTime
from automl.workers.interrupts import DeadlineReached, Interrupted, raise_on_signals
from automl.workers.progress_bar import ProgressBar
from automl.workers.study_budget import StopWhenSpent, StudyBudget

LOG = logging.getLogger(__name__)
TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def worker_name() -> str:
    """``host:pid``, stored on each trial so a trial can be traced to the process that ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Tracked:
    """The objective, remembering the trial it runs so that an interrupt can record it."""

    def __init__(self, objective: Callable[[optuna.Trial], Any], has_deadline: bool) -> None:
        self.objective = objective
        self.has_deadline = has_deadline
        self.trial: optuna.Trial | None = None

    def __call__(self, trial: optuna.Trial) -> Any:
        self.trial = trial
        trial.set_user_attr(TrialAttr.WORKER, worker_name())
        queue_more(trial.study, trial, self.has_deadline)
        try:
            result = self.objective(trial)
        except Exception:
            self.trial = None
            raise
        # Interrupted (a BaseException) leaves self.trial set on purpose.
        self.trial = None
        return result


def _frozen(study: optuna.Study, number: int) -> FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _record_interrupt(study: optuna.Study, trial: optuna.Trial | None, requeue: Requeue,
                      reason: str = INTERRUPTED) -> int | None:
    """Fail the trial an interrupt (or the deadline) stopped with ``reason`` and queue it again with
    its parameters; its number, or None when no trial was running."""
    if trial is None or _frozen(study, trial.number).state != TrialState.RUNNING:
        return None  # between trials, or the trial was told before the signal came
    trial.set_user_attr(TrialAttr.FAIL_REASON, reason)
    study.tell(trial, state=TrialState.FAIL)
    requeue(study, _frozen(study, trial.number))
    return trial.number


@contextlib.contextmanager
def _ending(bar: ProgressBar | None, unfreeze: bool) -> Iterator[None]:
    """Within the block, the worker runs; after it, its bar ends and, with ``unfreeze``, what it
    froze can go."""
    try:
        yield
    finally:
        if bar is not None:
            bar.close()
        # A worker in a longer-lived process (automl.run from a notebook, a test) hands back to it
        # what it froze for its own trials' collections.
        if unfreeze:
            gc.unfreeze()


def _collect(device: torch.device, freeze: bool) -> None:
    """Collect what the trial left behind; with ``freeze``, freeze what outlived it (the study's
    caches, modules imported since) with the rest: each collection then scans one trial's objects,
    not everything the worker has kept since it started (at 10,000 finished trials that was a
    quarter of a second a trial)."""
    free_memory(device)
    if freeze:
        gc.freeze()


def run_worker(study: optuna.Study, objective: Callable[[optuna.Trial], Any], workers: WorkersConfig,
               requeue: Requeue, device: torch.device, deadline: float | None = None,
               show_progress_bar: bool = False, callbacks: Sequence[TrialCallback] = (),
               budget: StudyBudget | None = None) -> None:
    """Pop and run queued trials; then wait while other workers' trials run, to retry any that die.

    ``study`` must sit on a WorkerStorage with heartbeats (see automl.search.study.join_study).
    With the study's ``budget`` (automl.workers.study_budget), no trial starts once it is spent.
    Raises TooManyFailures when the study's last trials all failed, Interrupted on a termination
    signal (SIGINT, SIGTERM, SIGHUP, ...) after recording the running trial as failed and queued
    again, StorageLost when the database stayed unreachable past ``workers.storage_retry_s`` or the
    study or its file was deleted.
    """
    # What is alive now (modules, the data) lives as long as the worker: moved out of the
    # collector's sight, the collection after each trial scans only what the trial left behind.
    # A process that froze its own objects already (a server, a test session) keeps them frozen.
    own_freeze = gc.get_freeze_count() == 0
    if own_freeze:
        gc.collect()
        gc.freeze()
    tracked = _Tracked(objective, has_deadline=deadline is not None)
    streak = FailureStreak(workers.max_failures_in_row)
    spent = StopWhenSpent(budget or StudyBudget())
    after_trial: list[TrialCallback] = [requeue.replace, streak, lambda *_: _collect(device, own_freeze), *callbacks,
                                        spent]
    bar = ProgressBar(study, deadline) if show_progress_bar else None
    if bar is not None:
        after_trial.append(bar)
    announced_wait = False
    with warnings.catch_warnings(), raise_on_signals(), grouped_failure_log(), _ending(bar, own_freeze):
        warnings.simplefilter("ignore", ExperimentalWarning)
        try:
            while streak.summary is None:
                remaining = None if deadline is None else deadline - time.time()
                if remaining is not None and remaining <= 0:
                    break
                exhausted = spent.budget.exhausted(study)
                if exhausted is not None:
                    LOG.info("no trial starts here any more: %s", exhausted)
                    break
                queued = count(study, QUEUED)
                if queued:
                    try:
                        study.optimize(tracked, n_trials=queued, timeout=remaining, catch=(Exception,),
                                       callbacks=after_trial)
                    except QueueEmpty:
                        pass  # other workers popped the last queued trials first
                    continue
                running = count(study, TrialState.RUNNING)
                if not running:
                    break
                if not announced_wait:
                    LOG.info(
                        f"queue empty; waiting for {plural(running, 'running trial')} of other workers, to "
                        f"retry any whose worker dies (after {workers.grace_period} s without heartbeat)")
                    announced_wait = True
                time.sleep(workers.heartbeat_interval)
                optuna.storages.fail_stale_trials(study)
        except Interrupted as interrupt:
            # Past the deadline's grace (automl.workers.hard_deadline), the trial counts as caught by the deadline.
            reason = DEADLINE if isinstance(interrupt, OutOfTime) else INTERRUPTED
            interrupt.requeued_trial = _record_interrupt(study, tracked.trial, requeue, reason)
            raise
        except DeadlineReached:
            # Not a failure: no Optuna log line, no traceback, no failure streak; the run is over.
            _record_interrupt(study, tracked.trial, requeue, DEADLINE)
        except Exception as error:
            # The database stayed unreachable past [workers] storage_retry_s, or the study or its
            # SQLite file was deleted (automl.storage.lost): one message, not the error Optuna's
            # trial loop raised while handling it.
            lost = lost_in(error)
            if lost is None:
                raise
            raise lost from None
    if streak.summary is not None:
        raise TooManyFailures(streak.summary)
