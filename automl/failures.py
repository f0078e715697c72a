"""Trials that fail: a non-finite loss, memory left behind by a failed trial, failures in a row."""

from __future__ import annotations

import gc
from collections import Counter

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from automl.errors import AutomlError

INTERRUPTED = "interrupted"


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; nothing after it can be trusted."""


def free_memory(device: torch.device) -> None:
    """Collect the garbage of the finished trial and give cached GPU blocks back to the driver.

    Lightning objects reference each other, so a trial's model, and the tensors of a
    trial that ran out of memory, live on until the cyclic collector happens to run, which it
    does on Python allocations, not on GPU memory; the next trial would run out too.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def short_reason(trial: FrozenTrial) -> str:
    """The first line of a failed trial's reason, as a summary key."""
    reason = str(trial.user_attrs.get("fail_reason") or "no reason recorded (worker died?)")
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
