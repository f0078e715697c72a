"""Trials that fail: their recorded reasons, and a study stopped by failures in a row."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl.errors import AutomlError
from automl.storage.schema import TrialAttr

INTERRUPTED = "interrupted"


def short_reason(trial: FrozenTrial) -> str:
    """The first line of a failed trial's reason, as a summary key."""
    reason = str(trial.user_attrs.get(TrialAttr.FAIL_REASON) or "no reason recorded (worker died?)")
    return reason.splitlines()[0][:160]


class TooManyFailures(AutomlError):
    """The last trials of a study all failed; running more would only fail more."""


class FailureStreak:
    """After-trial callback that stops the study once its last ``limit`` finished trials all failed.

    The study's trials are counted, not this worker's, so every worker of a study stops on the
    same streak. The trials still queued stay queued: a rerun resumes them.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.summary: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            return
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                            TrialState.FAIL))
        latest = sorted(finished, key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        streak = latest[-self.limit:]
        if len(streak) < self.limit or any(t.state != TrialState.FAIL for t in streak):
            return
        reasons = Counter(short_reason(t) for t in streak)
        listed = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common())
        self.summary = (f"study {study.study_name!r} stopped: its last {self.limit} trials failed in a row "
                        f"(trials {', '.join(str(t.number) for t in streak)}). Reasons: {listed}. "
                        "Fix the cause, then run again: the queued trials resume")
        study.stop()
