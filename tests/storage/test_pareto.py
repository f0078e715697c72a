"""Non-dominated sorting against the definition: fronts peeled by comparing every pair of rows."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from automl.storage.pareto import non_domination_ranks
from automl.storage.schema import pareto_front


def _by_definition(losses: np.ndarray) -> np.ndarray:
    """Each row's front, peeling the rows no remaining row dominates (<= everywhere, < somewhere)."""
    ranks = np.full(len(losses), -1)
    remaining, rank = np.arange(len(losses)), 0
    while remaining.size:
        rows = losses[remaining]
        dominated = ((rows[:, None] <= rows[None]).all(-1) & (rows[:, None] < rows[None]).any(-1)).any(0)
        ranks[remaining[~dominated]] = rank
        remaining, rank = remaining[dominated], rank + 1
    return ranks


@pytest.mark.parametrize("objectives", [1, 2, 3, 4])
def test_ranks_are_the_fronts_by_definition_ties_included(objectives: int) -> None:
    rng = np.random.default_rng(objectives)
    for _ in range(20):
        losses = rng.integers(0, 6, size=(int(rng.integers(1, 60)), objectives)).astype(float)  # many ties
        assert non_domination_ranks(losses).tolist() == _by_definition(losses).tolist()


def test_once_enough_rows_are_ranked_the_rest_share_one_rank_after_them() -> None:
    losses = np.array([[0.0, 3.0], [3.0, 0.0], [1.0, 2.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    assert _by_definition(losses).tolist() == [0, 0, 0, 1, 2, 3]
    assert non_domination_ranks(losses, enough=3).tolist() == [0, 0, 0, 1, 1, 1]
    assert non_domination_ranks(losses, enough=4).tolist() == [0, 0, 0, 1, 2, 2]
    assert non_domination_ranks(np.zeros((0, 2))).tolist() == []


@pytest.mark.parametrize("directions", [["maximize", "minimize"], ["maximize", "minimize", "minimize"]])
def test_the_views_front_is_optunas_best_trials(directions: list[str]) -> None:
    # The front every view shows is the first front of the sort above, and Optuna's best_trials'
    # (ties all kept) on the same trials: values drawn from a few levels, so many trials tie.
    rng = np.random.default_rng(3)
    study = optuna.create_study(directions=directions)
    for _ in range(300):
        accuracy = int(rng.integers(0, 6))  # the costs grow with it: a trade-off, so a front of many
        costs = (accuracy + rng.integers(0, 3, len(directions) - 1)).tolist()
        study.add_trial(optuna.trial.create_trial(values=[accuracy, *costs]))
    front = pareto_front(study)
    assert len(front) > 1
    assert [t.number for t in front] == sorted(t.number for t in study.best_trials)
