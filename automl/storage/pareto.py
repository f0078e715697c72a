"""Non-dominated sorting: the fronts of points to minimize, best first.

The front every view shows (automl.storage.schema.pareto_front) is its first front, and MO-ASHA
ranks the trials at a rung by it (automl.search.moasha). Optuna sorts the same way inside
NSGA-II and TPE but keeps the function private, so it is written here, by the same method: equal
points share a front, and the distinct points, sorted lexicographically (no point is dominated by
a later one), are peeled one front at a time, in one pass per front for two objectives.
"""

from __future__ import annotations

import numpy as np


def non_domination_ranks(losses: np.ndarray, enough: int | None = None) -> np.ndarray:
    """The front of each row of ``losses`` (``[n, k]``, minimized): 0 for the rows no other row
    dominates, 1 for those of the rest, ... Once the fronts ranked hold ``enough`` rows, the rows
    left share the next rank, which is then no front."""
    ranks = np.zeros(len(losses), dtype=int)
    if not len(losses):
        return ranks
    distinct, inverse = np.unique(losses, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if distinct.shape[1] == 1:  # one objective: each distinct value is a front of its own
        return inverse
    copies = np.bincount(inverse, minlength=len(distinct))
    distinct_ranks = np.zeros(len(distinct), dtype=int)
    remaining, rank, ranked = np.arange(len(distinct)), 0, 0
    while remaining.size and (enough is None or ranked < enough):
        front = _front(distinct[remaining])
        distinct_ranks[remaining[front]] = rank
        ranked += int(copies[remaining[front]].sum())
        remaining, rank = remaining[~front], rank + 1
    distinct_ranks[remaining] = rank
    return distinct_ranks[inverse]


def _front(rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` (distinct, in lexicographic order) no other row dominates."""
    if rows.shape[1] == 2:
        # Sorted by the first objective, a row is dominated exactly when an earlier row's second
        # objective is no larger than its own.
        front = np.ones(len(rows), dtype=bool)
        front[1:] = rows[1:, 1] < np.minimum.accumulate(rows[:, 1])[:-1]
        return front
    front = np.zeros(len(rows), dtype=bool)
    candidates = np.arange(len(rows))
    while candidates.size:
        best = candidates[0]  # no later row dominates it
        front[best] = True
        candidates = candidates[(rows[candidates] < rows[best]).any(axis=1)]  # those it does not dominate
    return front
