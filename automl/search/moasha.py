"""Early stopping for multi-objective studies, after MO-ASHA (Schmucker et al., 2021).

Optuna's pruners rank one reported value and multi-objective trials cannot report; here a trial's
per-epoch validation accuracy lives in its ``val_curve`` user attr and its cost in the user attrs
measured before training, so any trial in storage (running ones included) can be ranked.

At each rung (epochs r, r*eta, r*eta**2, ... below max_epochs) a trial goes on when its point
(validation accuracy at the rung, log10 of each cost objective) is among the best ceil(n / eta)
of the n trials that have reached the rung, ranked by non-dominated sorting with crowding distance
breaking ties inside the last front that fits. As in asynchronous successive halving, the decision
is taken at once with the trials seen so far; while fewer than eta have reached a rung, all go on.

A trial is ranked among the trials of its own family only. Families learn at different paces: a
CNN that ends better than every MLP can trail them all after one epoch, and ranked against them
it would never be seen to the end (on digits, every CNN and Transformer of a quickstart was
stopped at its first rung that way). Which family deserves more trials is the sampler's call,
from the results trials reach; the pruner only stops the weaker configurations of a family. A
family not yet heard from at a rung goes on there, by the rule above.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from automl.search.signal import ranked_accuracy
from automl.storage.pareto import non_domination_ranks
from automl.storage.schema import OBJECTIVES, TrialAttr, family_of

RANKED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def rungs(min_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """Epoch counts at which trials are compared: min_epochs * reduction_factor**k, while at least
    half of max_epochs is still ahead.

    Past half, stopping a trial saves fewer epochs than it spent, and throws away a model about to
    be a finished one: with max_epochs 10, a rung at 9 stopped trials one epoch before their end.
    """
    found, epochs = [], min_epochs
    while 2 * epochs <= max_epochs:
        found.append(epochs)
        epochs *= reduction_factor
    return found


def non_dominated_fronts(losses: np.ndarray, enough: int | None = None) -> Iterator[np.ndarray]:
    """Indices of the rows of ``losses`` (minimized), front by front, best front first, until the
    fronts yielded hold ``enough`` rows (all of them by default)."""
    # The sort peels one front at a time, in one pass per front for two objectives, and stops once
    # ``enough`` rows are ranked; the rows past that share one rank that is not a front, so it is
    # never yielded.
    ranks = non_domination_ranks(losses, enough)
    order = np.argsort(ranks, kind="stable")
    bounds = np.searchsorted(ranks[order], np.arange(ranks.max(initial=-1) + 2))
    taken = 0
    for start, stop in itertools.pairwise(bounds):
        if enough is not None and taken >= enough:
            return
        yield order[start:stop]
        taken += stop - start


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance: how much room a point has among its front's neighbours."""
    distance = np.zeros(len(points))
    for column in points.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[0]] = distance[order[-1]] = math.inf
        if span > 0 and len(points) > 2:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def select_best(losses: np.ndarray, keep: int) -> set[int]:
    """The ``keep`` rows that survive: whole fronts first, the widest-spread of the last front."""
    chosen: list[int] = []
    for front in non_dominated_fronts(losses, keep):
        if len(chosen) + len(front) <= keep:
            chosen.extend(front.tolist())
            continue
        spread = crowding_distance(losses[front])
        # Stable on ties: among equals the lower index (the earlier trial) goes on.
        order = np.argsort(-spread, kind="stable")
        chosen.extend(front[order[: keep - len(chosen)]].tolist())
        break
    return set(chosen)


def last_row_survives(losses: np.ndarray, keep: int) -> bool:
    """Whether the last row of ``losses`` is among select_best(losses, keep).

    Every row that dominates the last one lies in an earlier front, and whole fronts are taken
    first: with ``keep`` or more such rows the last one cannot be reached. That settles most
    rows that stop, in one pass, without sorting into fronts.
    """
    mine = losses[-1]
    dominators = np.count_nonzero((losses <= mine).all(axis=1) & (losses < mine).any(axis=1))
    return bool(dominators < keep) and len(losses) - 1 in select_best(losses, keep)


class MOASHAPruner(BasePruner):
    """Stops a trial at a rung unless it ranks in the top 1/eta of the trials that reached it.

    ``cost_objectives`` are the study's cost objectives (flops, params, latency_ms); with none the
    ranking is on accuracy alone, which is plain asynchronous successive halving.
    """

    def __init__(self, cost_objectives: Sequence[str], max_epochs: int, min_epochs: int = 1,
                 reduction_factor: int = 3) -> None:
        # The user attrs holding those costs, measured before the first epoch.
        self.cost_attrs = [OBJECTIVES[name].attr for name in cost_objectives]
        self.reduction_factor = reduction_factor
        self.rungs = rungs(min_epochs, reduction_factor, max_epochs)
        # (study name, rung epochs) -> the points there of the finished trials, which no longer
        # change, by family: at 1,000 trials, working them out again at every rung was most of the
        # pruner's time, and at 10,000 reading every finished trial's family and curve was.
        self._finished: dict[tuple[str, int], _FinishedAtRung] = {}

    def point(self, user_attrs: dict[str, Any], epochs: int) -> list[float] | None:
        """(1 - accuracy after ``epochs``, log10 costs...), or None if the trial has not got there.

        The accuracy is the ranked one (automl.search.signal): ties broken by validation loss.
        """
        curve = user_attrs.get(TrialAttr.VAL_CURVE) or []
        if len(curve) < epochs or any(user_attrs.get(attr) is None for attr in self.cost_attrs):
            return None
        losses = user_attrs.get(TrialAttr.VAL_LOSS_CURVE) or []
        loss = losses[epochs - 1] if len(losses) >= epochs else None
        accuracy = ranked_accuracy(curve[epochs - 1], loss, user_attrs.get(TrialAttr.VAL_SAMPLES))
        return [1.0 - accuracy,
                *(math.log10(max(float(user_attrs[attr]), 1e-12)) for attr in self.cost_attrs)]

    def prune(self, study: optuna.Study, trial: Any) -> bool:
        """Whether ``trial`` (a FrozenTrial or a running optuna.Trial) stops at its current epoch."""
        epochs = len(trial.user_attrs.get(TrialAttr.VAL_CURVE) or [])
        if epochs not in self.rungs:
            return False
        mine = self.point(trial.user_attrs, epochs)
        family = family_of(trial)
        finished = self._finished.setdefault((study.study_name, epochs), _FinishedAtRung())
        running = []
        for other in study.get_trials(deepcopy=False, states=RANKED_STATES):
            if other.number in finished.numbers:
                continue
            if other.state.is_finished():
                finished.add(other, self.point(other.user_attrs, epochs))
            elif other.number != trial.number and family_of(other) == family:
                running.append(self.point(other.user_attrs, epochs))
        others: list[Sequence[float] | None] = [*finished.points_of(family, trial.number), *running]
        reached = [*(p for p in others if p is not None), mine]
        if mine is None or len(reached) < self.reduction_factor:
            return False
        return not last_row_survives(np.array(reached), math.ceil(len(reached) / self.reduction_factor))

    def rung_of(self, epochs: int) -> int:
        """The index of the rung at ``epochs``."""
        return self.rungs.index(epochs)


class _FinishedAtRung:
    """The points at one rung of a study's finished trials (None: not there), by family."""

    def __init__(self) -> None:
        self.numbers: set[int] = set()
        # Tuples of floats, which the garbage collector stops tracking: a worker's collection after
        # each trial would otherwise scan every finished trial's point.
        self._points: dict[str | None, dict[int, tuple[float, ...]]] = {}

    def add(self, trial: FrozenTrial, point: list[float] | None) -> None:
        self.numbers.add(trial.number)
        if point is not None:
            self._points.setdefault(family_of(trial), {})[trial.number] = tuple(point)

    def points_of(self, family: str | None, but: int) -> list[tuple[float, ...]]:
        """Those of ``family``'s trials but trial number ``but`` (a finished trial judged again)."""
        points = self._points.get(family, {})
        return [point for number, point in points.items() if number != but]
