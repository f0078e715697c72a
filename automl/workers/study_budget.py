"""One budget for a whole study, kept by every worker wherever it runs.

``timeout`` is a run's own clock: ten workers on ten machines each run theirs. The study's budget
is stored with the study (its ``automl_study_budget`` attr, automl.storage.schema), so every run
and worker of it, on any machine, reads the same one from the database:

- ``[budget] study_timeout`` (seconds): the study's deadline, fixed when the study is created (or
  when a run first gives the key for an older study) as that moment plus ``study_timeout``. Every
  run and worker takes it as its deadline when it is earlier than its own, so they stop as a time
  budget stops them: no trial starts after it, and the trials under way stop at their next
  training step, counting the epochs they validated (automl.search.time_budget).
- ``[budget] device_hours`` (hours): the study's trials' device time, summed over all workers:
  each trial counts from its start to its end (a running one, to now). Once the sum reaches the
  limit no worker starts another trial; those under way finish. A run may raise or lower it.

Trial times are Optuna's (``datetime_start``/``datetime_complete``), stamped by the worker that ran
the trial, so a trial's duration never mixes two machines' clocks. The deadline is a ``time.time()``
value: the machines' clocks are taken to agree (NTP), as Optuna's heartbeats take them to.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl.config import BudgetConfig
from automl.storage.schema import STUDY_BUDGET_ATTR


@dataclass(frozen=True)
class StudyBudget:
    """A study's stored budget: its deadline (``time.time()`` seconds) and the ``study_timeout`` it
    was set from, and its device-hours; None where unset."""

    deadline: float | None = None
    study_timeout: float | None = None
    device_hours: float | None = None

    @classmethod
    def of(cls, study: optuna.Study) -> StudyBudget:
        stored: dict[str, Any] = study.user_attrs.get(STUDY_BUDGET_ATTR) or {}
        return cls(stored.get("deadline"), stored.get("study_timeout"), stored.get("device_hours"))

    def to_dict(self) -> dict[str, float | None]:
        return {"deadline": self.deadline, "study_timeout": self.study_timeout, "device_hours": self.device_hours}

    def earliest(self, deadline: float | None) -> float | None:
        """The earlier of ``deadline`` (a run's own, or None) and the study's."""
        found = [at for at in (deadline, self.deadline) if at is not None]
        return min(found) if found else None

    def exhausted(self, study: optuna.Study) -> str | None:
        """Why no trial may start now (the study's deadline passed, its device-hours spent); None if one may."""
        if self.deadline is not None and time.time() >= self.deadline:
            return f"the study's deadline ([budget] study_timeout = {self.study_timeout:g} s) has passed"
        if self.device_hours is not None:
            spent = device_hours_spent(study.get_trials(deepcopy=False, states=STARTED))
            if spent >= self.device_hours:
                return (f"the study's device time is spent: {spent:.3g} of its [budget] device_hours = "
                        f"{self.device_hours:g}")
        return None


# The trials that have a start: a queued one has none, and is not loaded for it (automl.storage.read_once).
STARTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def device_hours_spent(trials: Sequence[FrozenTrial], now: datetime.datetime | None = None) -> float:
    """Hours the trials have run, summed: each from its start to its end, a running one to ``now``."""
    now = now or datetime.datetime.now()
    seconds = sum(((trial.datetime_complete or now) - trial.datetime_start).total_seconds()
                  for trial in trials if trial.datetime_start is not None)
    return seconds / 3600


def record_study_budget(study: optuna.Study, budget: BudgetConfig, now: float | None = None) -> list[str]:
    """Store the study's budget from ``budget`` (a run's config); notes on what it did not change.

    The deadline is set once, from ``now`` (default: this moment); device_hours follows the config
    that gives it.
    """
    stored = StudyBudget.of(study)
    deadline, timeout, hours = stored.deadline, stored.study_timeout, stored.device_hours
    notes = []
    if budget.study_timeout is not None and deadline is None:
        deadline, timeout = (time.time() if now is None else now) + budget.study_timeout, budget.study_timeout
    elif budget.study_timeout is not None and budget.study_timeout != timeout:
        notes.append(f"[budget] study_timeout is {budget.study_timeout:g} s, but the study's deadline was fixed "
                     f"when it was set ({timeout:g} s): it stays at {_clock(deadline)}")
    if budget.device_hours is not None and budget.device_hours != hours:
        if hours is not None:
            notes.append(f"[budget] device_hours was {hours:g}, now {budget.device_hours:g}, for every worker")
        hours = budget.device_hours
    updated = StudyBudget(deadline, timeout, hours)
    if updated != stored:
        study.set_user_attr(STUDY_BUDGET_ATTR, updated.to_dict())
    return notes


def _clock(at: float | None) -> str:
    return "-" if at is None else datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def describe(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> str | None:
    """What the study has spent of its budget, in a line; None when it has none. ``trials``: the
    study's, when the caller has read them (their times are all it reads of them)."""
    budget = StudyBudget.of(study)
    parts = []
    if budget.deadline is not None and budget.study_timeout is not None:
        left = budget.deadline - time.time()
        spent = budget.study_timeout - max(left, 0.0)
        parts.append(f"{spent:,.0f} of {budget.study_timeout:,.0f} s of its study_timeout spent ("
                     + (f"{left:,.0f} s left, until {_clock(budget.deadline)})" if left > 0 else
                        f"ended {_clock(budget.deadline)})"))
    if budget.device_hours is not None:
        spent_hours = device_hours_spent(study.get_trials(deepcopy=False, states=STARTED) if trials is None else trials)
        parts.append(f"{spent_hours:,.3g} of {budget.device_hours:,.3g} device-hours spent"
                     + (" (no new trial starts)" if spent_hours >= budget.device_hours else ""))
    return f"study budget: {'; '.join(parts)}" if parts else None


class StopWhenSpent:
    """An after-trial callback: once the study's budget is exhausted, ``study.stop()`` ends this
    worker's loop after the trial that just ended (the others under way, elsewhere, finish)."""

    def __init__(self, budget: StudyBudget) -> None:
        self.budget = budget

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.budget.exhausted(study) is not None:
            study.stop()
