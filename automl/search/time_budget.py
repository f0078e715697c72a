"""A study's time budget: its deadline, and each configuration's cost judged against what is left.

With a time budget (``timeout`` in the study file, ``--timeout`` on the command line) the run has
a deadline. No single trial may spend more than ``SHARE`` of the time left before its first
decision point: the first rung of the pruner (``min_epochs``), or the end of its training without
one. A configuration is judged three times before it spends an epoch:

1. from its FLOPs, at the best throughput this study has measured on models at least as large
   (per family when the family has one, else any family's), and at the device's peak FLOP rate
   (automl.training.throughput): lower bounds, so a refusal here is sure; the first holds the
   device's speed on real layers, the second holds before any model that large has trained (a
   first draw of 1e8 FLOPs per sample would otherwise spend tens of seconds in its first steps
   before the second judgement could refuse it);
2. from a forward pass on two samples, timed (automl.training.throughput.fastest_forward_seconds):
   each training step runs at least that, and it costs a fraction of one step, where FLOPs miss
   the time (on 1,460-step series an attention model's first step of 8 samples took 19 s at a
   hundredth of the peak FLOP rate);
3. a few steps into its first epoch, from the time those steps took (automl.training.loop's
   ``on_epoch_time_estimate``).

A refused configuration ends COMPLETE but infeasible, like one over a ``[budget]`` limit: its trial
carries the constraint ``TIME_CONSTRAINT`` (log10 of its time to the first decision over the
time allowed), so the sampler learns to leave such configurations, and no front shows it.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from automl.errors import plural
from automl.storage.schema import TrialAttr, family_of
from automl.training.loop import StopTraining
from automl.training.throughput import fastest_epoch_seconds

# The share of the time left that one trial may spend before its first decision point. Chosen with
# benchmarks/vs_peers.py: a larger share lets one expensive draw hold a short budget for long,
# a smaller one refuses configurations that would have reached the front. There (3 seeds x 240 s,
# median) the hypervolume at a quarter of the budget was 3.57 at 0.15, 3.91 at 0.08 and 3.97 at
# 0.05, and at the end 4.09 at all three; 0.08 keeps more room for a family whose every
# configuration is slow (a 0.05 share of a 10-minute budget refuses a first epoch of 30 s).
SHARE = 0.08
# The most of the time left that one trial's leg from a decision point to the next may take
# (leg_share): the time left after it still runs other trials.
MAX_LEG_SHARE = 0.5
# The trial constraint (Optuna's, like the [budget] keys') that a study with a deadline sets.
TIME_CONSTRAINT = "time_to_first_decision"
# A trial's ``stopped`` attr when NextDecisionGuard ends it (automl.storage.schema.TrialAttr.STOPPED).
TIME_STOP = "time budget"
# The constraint recorded until a configuration's time is measured: an order of magnitude within.
UNKNOWN = -1.0


class OverTimeBudget(Exception):
    """A configuration would take more of the time left than a trial may; raised before its epoch."""

    def __init__(self, seconds: float, allowed: float, left: float, how: str) -> None:
        self.seconds, self.allowed = seconds, allowed
        super().__init__(f"{seconds:.3g} s to its first decision point ({how}) > {allowed:.3g} s "
                         f"({SHARE:.0%} of the {left:.3g} s left before the deadline)")


@dataclass(frozen=True)
class Deadline:
    """The wall-clock time (``time.time()`` seconds) by which the whole run must end."""

    at: float

    @classmethod
    def after(cls, seconds: float | None, started: float | None = None) -> Deadline | None:
        """``seconds`` from ``started`` (default now); None without a time budget."""
        return None if seconds is None else cls((time.time() if started is None else started) + seconds)

    def left(self) -> float:
        return max(0.0, self.at - time.time())

    def allowed(self) -> float:
        """The seconds one trial may spend before its first decision point, from now."""
        return SHARE * self.left()


def predicted_epoch_seconds(trials: Iterable[FrozenTrial], family: str, flops: float,
                            train_samples: int) -> float | None:
    """A lower bound on an epoch's seconds for a model of ``flops`` per sample, or None.

    From the trials that trained a model of at least ``flops`` (of ``family`` when it has one, else
    of any family): their seconds per FLOP per sample, the fewest, times ``flops``. A smaller model's
    epoch is mostly per-step overhead that does not grow with FLOPs, so its ratio would overstate
    a larger model's time; a larger one's ratio understates a smaller one's. None when no such
    trial exists yet: the first steps' pace decides then.
    """
    rates: dict[str | None, float] = {}
    for trial in trials:
        attrs = trial.user_attrs
        epochs, done = attrs.get(TrialAttr.EPOCHS) or 0, attrs.get(TrialAttr.FLOPS) or 0
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or epochs <= 0 or done < flops:
            continue
        seconds = (attrs.get(TrialAttr.TIME_TRAIN_S, 0.0) + attrs.get(TrialAttr.TIME_VALIDATE_S, 0.0)) / epochs
        rate = seconds / (done * train_samples)
        for key in (family_of(trial), None):
            rates[key] = min(rate, rates.get(key, math.inf))
    rate = rates.get(family, rates.get(None))
    return None if rate is None else rate * flops * train_samples


class EpochTimeGuard:
    """A training callback: stops a configuration whose first epoch projects past the time allowed
    (judged a few steps into it, or after it when it is too short to time its steps).

    It also sets the trial's TIME_CONSTRAINT, once (Optuna keeps the first value set): from the
    first epoch's measured time, else from the best estimate there is when the trial ends untrained.
    """

    def __init__(self, trial: optuna.Trial, deadline: Deadline, allowed: float, epochs_to_decision: int) -> None:
        self.trial, self.deadline, self.allowed = trial, deadline, allowed
        self.epochs_to_decision = epochs_to_decision
        self.started = time.perf_counter()
        self.estimate: float | None = None  # seconds to the first decision point
        self.recorded = False
        self.paced = False  # whether the first steps were timed (on_epoch_time_estimate)

    def record(self, seconds: float | None) -> None:
        """Set the trial's constraint from ``seconds`` to its first decision point (None: unknown)."""
        if not self.recorded:
            self.recorded = True
            value = UNKNOWN if seconds is None else constraint_value(seconds, self.allowed)
            self.trial.set_constraint(TIME_CONSTRAINT, value)

    def refuse(self, seconds: float, how: str) -> OverTimeBudget:
        """Record the trial as over the time allowed, as [budget] refusals are."""
        self.record(seconds)
        refusal = OverTimeBudget(seconds, self.allowed, self.deadline.left(), how)
        self.trial.set_user_attr(TrialAttr.OVER_BUDGET, str(refusal))
        return refusal

    def settle(self) -> None:
        """The trial ends without a measured epoch: record the estimate there is."""
        self.record(self.estimate)

    def on_epoch_time_estimate(self, epoch: int, seconds: float) -> None:
        self.paced = True
        self.estimate = seconds * self.epochs_to_decision
        if self.estimate > self.allowed:
            raise self.refuse(self.estimate,
                              f"{plural(self.epochs_to_decision, 'epoch')} at the pace of its first steps")

    def on_validation_epoch_end(self, epoch: int, val_accuracy: float) -> None:
        seconds = (time.perf_counter() - self.started) * self.epochs_to_decision
        first = not self.recorded
        self.record(seconds)
        # An epoch of a few steps (small data) is too short to time its steps: its first epoch
        # is the first measure, and a configuration that would spend more than allowed stops
        # there instead of at its first decision point (on 28 rows, a Transformer spent 110 s of
        # a 600 s budget on the 4 epochs to its first rung).
        if first and not self.paced and self.epochs_to_decision > 1 and seconds > self.allowed:
            raise self.refuse(seconds, f"{plural(self.epochs_to_decision, 'epoch')} at the pace of its first")


class NextDecisionGuard:
    """A training callback: at each decision point a trial goes on from, the epochs to the next one
    must fit in its share of the time left, at the pace its epochs have had; else it stops there
    and counts with the epochs it validated (``stopped = "time budget"``). The share is SHARE, and
    leg_share's growing one while no trial of the study has validated a higher accuracy after as
    many epochs (a trial the pruner keeps because no other has reached its rung yet is kept
    whatever it scores: alone there, an LSTM at chance on ACSF1 trained 60 epochs, 137 s)."""

    def __init__(self, trial: optuna.Trial, deadline: Deadline, decisions: list[int], start_epoch: int = 0,
                 leaders: Leaders | None = None) -> None:
        self.trial, self.deadline, self.decisions = trial, deadline, decisions
        self.start_epoch = start_epoch
        self.leaders = leaders or Leaders()  # the study's, shared by its trials (see Leaders)
        self.started = time.perf_counter()

    def on_validation_epoch_end(self, epoch: int, val_accuracy: float) -> None:
        done = epoch + 1
        later = [decision for decision in self.decisions if decision > done]
        if done not in self.decisions or not later:
            return
        pace = (time.perf_counter() - self.started) / (done - self.start_epoch)
        share = leg_share(done, self.decisions[0]) if self.leaders.leads(self.trial, done, val_accuracy) else SHARE
        if pace * (later[0] - done) > share * self.deadline.left():
            raise StopTraining(TIME_STOP)


class Leaders:
    """The highest accuracy a study's finished trials validated after each number of epochs, kept
    as they finish: each finished trial's curve is read once, not at every decision point (at
    10,000 trials a decision read them all)."""

    def __init__(self) -> None:
        self._study: str | None = None
        self._seen: set[int] = set()  # numbers of the finished trials taken in
        self._best: list[float] = []  # [epochs - 1]: the highest accuracy after that many epochs
        self._lock = threading.Lock()  # trials run in threads (Study.optimize with n_jobs)

    def leads(self, trial: optuna.Trial, epochs: int, accuracy: float) -> bool:
        """Whether no other trial of ``trial``'s study validated a higher accuracy than ``accuracy``
        after ``epochs`` epochs (from their ``val_curve``)."""
        mine = round(accuracy, 5)  # as curves store it
        ahead = False
        with self._lock:
            if trial.study.study_name != self._study:
                self._study, self._seen, self._best = trial.study.study_name, set(), []
            for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                         TrialState.RUNNING)):
                if other.number in self._seen or other.number == trial.number:
                    continue
                curve = other.user_attrs.get(TrialAttr.VAL_CURVE) or []
                if other.state.is_finished():
                    self._seen.add(other.number)
                    self._best = [max(pair) for pair in itertools.zip_longest(self._best, curve, fillvalue=-math.inf)]
                elif len(curve) >= epochs and curve[epochs - 1] > mine:
                    ahead = True
            return not ahead and (len(self._best) < epochs or self._best[epochs - 1] <= mine)


def leg_share(done: int, first_decision: int) -> float:
    """The share of the time left that a trial going on from ``done`` epochs, and leading there,
    may spend on its next leg: SHARE per ``first_decision`` epochs it has trained and been kept
    for, at most MAX_LEG_SHARE.

    Successive halving gives each rung about the same epochs in all: fewer trials are kept at
    each rung, and each trains proportionally longer. Held to the first rung's share, the later
    legs, which are longer, stopped the trials the pruner had kept: on small data, where the last
    rung comes at a third of the epochs or less, the FCN that does best on small archive tasks
    stopped there. On ACSF1 (benchmarks/real_tasks.py, 600 s) it went on from its rung at 18
    epochs, at 1.9 s an epoch, with about 410 s left: the 42 epochs left took 80 s, 8% of the time
    left is 33 s; its 60 epochs scored 0.82 on the test rows (an FCN trained alone there scored
    0.63 after 9 epochs of 40 and 0.77 after all 40).
    """
    return min(MAX_LEG_SHARE, SHARE * done / first_decision)


def guard_trial(trial: optuna.Trial, deadline: Deadline, family: str, flops: float, train_samples: int,
                epochs_to_decision: int, device: torch.device,
                forward: Callable[[], tuple[float, int]] | None = None) -> EpochTimeGuard:
    """Judge a configuration before it trains, from its FLOPs (``flops`` per sample) at this study's
    best throughput so far and at ``device``'s peak, then, when that passes, from ``forward``: the
    seconds of a forward pass that each of an epoch's steps takes at least, and the epoch's steps
    (automl.training.throughput.fastest_forward_seconds). Returns the guard that judges it again in
    its first epoch.

    Raises OverTimeBudget, recorded on the trial, when an estimate is over the time allowed.
    """
    guard = EpochTimeGuard(trial, deadline, deadline.allowed(), epochs_to_decision)
    finished = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    measured = predicted_epoch_seconds(finished, family, flops, train_samples)
    epoch = max(measured or 0.0, fastest_epoch_seconds(flops, train_samples, device))
    guard.estimate = epoch * epochs_to_decision
    if guard.estimate > guard.allowed:
        how = "this study's trials" if measured is not None and measured >= epoch else "the device's peak FLOP rate"
        raise guard.refuse(guard.estimate, f"{plural(epochs_to_decision, 'epoch')} estimated from its FLOPs at {how}")
    if forward is not None:
        seconds, steps = forward()
        guard.estimate = max(guard.estimate, seconds * steps * epochs_to_decision)
        if guard.estimate > guard.allowed:
            raise guard.refuse(guard.estimate, f"{plural(epochs_to_decision, 'epoch')} of {plural(steps, 'step')}, "
                               f"each at least a forward pass timed at {seconds:.3g} s")
    return guard


def constraint_value(seconds: float, allowed: float) -> float:
    """log10(seconds / allowed): above 0 is over the time allowed, as the [budget] constraints read."""
    return math.log10(max(seconds, 1e-6) / max(allowed, 1e-6))
