"""The finished trials TPE fits its model on: every one up to a cap, then a capped history.

TPE splits every finished trial into its best ranked (``below``) and the rest (``above``) and
fits a Parzen estimator to each, at every sample: its cost grows with the study (optuna#2172),
until sampling outweighs the training of small models. Above ``max_trials`` finished trials
(MAX_TRIALS_FITTED by default), TPE is given at most that many:

- the study's best: the complete, feasible trials of its best non-domination ranks, at least
  ``BEST_SHARE`` of ``max_trials``, kept as trials arrive;
- the latest ``RECENT_SHARE`` of ``max_trials`` other trials, so the model follows the newest
  results as it does uncapped;
- an even sample of the older ones, thinned by half each time it outgrows the rest of the cap.

TPE's ``below`` (its ``gamma``, ``below()`` here) stays Optuna's: the best 10% of the study's
finished trials (multi-objective; single-objective, at most 25), until that outgrows the best
kept; ``above`` is a sample of the rest, with TPE's own weights (its older trials weigh less).
So a sample costs what it costs at ``max_trials`` finished trials however large the study grows.
benchmarks/tpe_history_quality.py compares the front it finds with the uncapped one's.

No library keeps such a history. The ranks are automl.storage.pareto's (Optuna's sort is
private), worked out on the best and a newcomer only, when fewer of the best than they number
dominate the newcomer.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Container, Sequence

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from automl.storage.pareto import non_domination_ranks

# The most finished trials TPE fits on. At 1,000 a sample costs a few tens of ms
# (benchmarks/study_scale.py --parts overhead prints the overhead it leaves at 10,000 trials).
MAX_TRIALS_FITTED = 1000
# Half of them the best, so that TPE's below is the study's own up to 5x the cap: with a tenth
# (the below of the capped trials alone), benchmarks/tpe_history_quality.py's final front was 0.5%
# smaller than uncapped (seed 0, 2,500 trials, cap 500), with half 0.2%.
BEST_SHARE = 0.5
GAMMA = 0.1  # Optuna's multi-objective gamma: ceil(0.1 * n) of n finished trials below
RECENT_SHARE = 0.1


def _feasible(trial: FrozenTrial) -> bool:
    return all(value <= 0 for value in trial.constraints.values())


class TPEHistory:
    """The finished trials TPE reads (as ``add``-ed), capped at ``max_trials`` (None: all of them).

    ``trials()`` lists them by number, as the study does (TPE's split breaks ties in that order).
    """

    def __init__(self, directions: Sequence[StudyDirection], max_trials: int | None = MAX_TRIALS_FITTED) -> None:
        self._signs = np.array([1.0 if direction == StudyDirection.MINIMIZE else -1.0 for direction in directions])
        self.max_trials = max_trials
        cap = max_trials or 0
        self._best_count = math.ceil(BEST_SHARE * cap)
        self._best: list[FrozenTrial] = []  # complete feasible trials of the best ranks, >= _best_count of them
        self._best_losses = np.empty((0, len(self._signs)))  # their values, each to minimize
        self._recent: deque[FrozenTrial] = deque()
        self._recent_count = math.ceil(RECENT_SHARE * cap)
        self._older: list[FrozenTrial] = []  # every _stride-th trial that left _recent or _best
        self._left = 0  # trials that left _recent or _best
        self._stride = 1
        self.added = 0

    def add(self, trial: FrozenTrial) -> None:
        """Take in a finished trial (COMPLETE or PRUNED)."""
        self.added += 1
        if self.max_trials is None:
            self._older.append(trial)
            return
        if trial.state == TrialState.COMPLETE and trial.values is not None and _feasible(trial):
            self._rank_in(trial)
        else:
            self._recent.append(trial)
        while len(self._recent) > self._recent_count:
            self._retire(self._recent.popleft())
        while self._older and len(self._best) + len(self._recent) + len(self._older) > self.max_trials:
            self._stride *= 2
            self._older = self._older[::2]

    def below(self, fitted: int) -> int:
        """How many of the ``fitted`` trials TPE puts below (its ``gamma``): Optuna's share of
        the study's finished trials, at most the best kept."""
        if len(self._signs) == 1:  # Optuna's single-objective gamma, which caps it at 25
            return min(math.ceil(GAMMA * fitted), 25)
        if self.max_trials is None or self.added <= self.max_trials:
            return math.ceil(GAMMA * fitted)
        return min(math.ceil(GAMMA * self.added), len(self._best))

    def trials(self) -> list[FrozenTrial]:
        return sorted([*self._best, *self._recent, *self._older], key=lambda trial: trial.number)

    def _rank_in(self, trial: FrozenTrial) -> None:
        """Add a complete feasible trial to the best, and retire those ranked out: the best keep
        their whole ranks up to the one that brings them to ``_best_count`` (TPE breaks that tie)."""
        loss = np.asarray(trial.values) * self._signs
        dominators = np.count_nonzero((self._best_losses <= loss).all(axis=1) & (self._best_losses < loss).any(axis=1))
        if dominators >= self._best_count:  # every rank it could reach is full already: most trials
            self._recent.append(trial)
            return
        candidates, losses = [*self._best, trial], np.vstack([self._best_losses, loss])
        ranks = non_domination_ranks(losses)
        counts = np.bincount(ranks)
        kept = ranks <= int(np.searchsorted(np.cumsum(counts), self._best_count))
        self._best, self._best_losses = [c for c, keep in zip(candidates, kept, strict=True) if keep], losses[kept]
        for candidate, keep in zip(candidates, kept, strict=True):
            if not keep and candidate is trial:
                self._recent.append(trial)
            elif not keep:
                self._retire(candidate)

    def _retire(self, trial: FrozenTrial) -> None:
        if self._left % self._stride == 0:
            self._older.append(trial)
        self._left += 1


class HistoryStorage(optuna.storages.InMemoryStorage):
    """An in-memory storage of one study whose trials are a TPEHistory's: what TPE is given.

    TPE takes a Study and lists its trials through its storage; this storage lists the history's
    instead of copies added one by one (Optuna's sampler API offers no other way to give TPE a
    set of trials).
    """

    def __init__(self, directions: Sequence[StudyDirection]) -> None:
        super().__init__()
        self.study_name = self.get_study_name_from_id(self.create_new_study(list(directions)))
        self.history: list[FrozenTrial] = []

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = self.history if states is None else [trial for trial in self.history if trial.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)
