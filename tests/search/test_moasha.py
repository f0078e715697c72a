"""MO-ASHA on synthetic trials (ranking, rungs, asynchronous promotion), one real multi-objective
study in which trials end PRUNED, and the samplers on a study full of pruned and infeasible trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl.config import load_study_file
from automl.search.moasha import (MOASHAPruner, crowding_distance, last_row_survives, non_dominated_fronts, rungs,
                           select_best)
from automl.plugin.registry import registry
from automl.search.samplers import make_sampler
from automl.search.plan import plan_study
from automl.runner import run_plan
from conftest import write_study


def test_rungs_are_geometric_and_below_max_epochs() -> None:
    assert rungs(1, 3, 10) == [1, 3]
    assert rungs(1, 3, 9) == [1, 3]
    assert rungs(1, 3, 18) == [1, 3, 9]
    assert rungs(2, 2, 17) == [2, 4, 8]
    assert rungs(5, 3, 5) == []


def test_the_dominator_count_shortcut_decides_as_the_full_selection_does() -> None:
    rng = np.random.default_rng(0)
    shortcut_taken = 0
    for _ in range(400):
        count, columns = int(rng.integers(2, 40)), int(rng.integers(1, 4))
        # Coarse values make ties and duplicate rows common.
        losses = rng.integers(0, 6, size=(count, columns)).astype(float)
        keep = int(rng.integers(1, count + 1))
        assert last_row_survives(losses, keep) == (count - 1 in select_best(losses, keep))
        shortcut_taken += int(np.count_nonzero((losses <= losses[-1]).all(1) & (losses < losses[-1]).any(1)) >= keep)
    assert shortcut_taken > 50, "the cases the shortcut settles were not exercised"


def test_non_dominated_fronts_peel_front_by_front() -> None:
    # (error, cost): 0 and 1 trade off; 2 is dominated by 1 only; 3 by everything.
    losses = np.array([[0.1, 5.0], [0.3, 1.0], [0.4, 2.0], [0.5, 6.0]])
    assert [front.tolist() for front in non_dominated_fronts(losses)] == [[0, 1], [2], [3]]
    # Identical points dominate neither each other.
    assert [f.tolist() for f in non_dominated_fronts(np.array([[1.0, 1.0], [1.0, 1.0]]))] == [[0, 1]]
    # Asked for enough rows, it stops at the front that reaches them.
    assert [front.tolist() for front in non_dominated_fronts(losses, enough=2)] == [[0, 1]]
    assert [front.tolist() for front in non_dominated_fronts(losses, enough=3)] == [[0, 1], [2]]


def _fronts_by_definition(losses: np.ndarray) -> list[list[int]]:
    """Front after front: the remaining rows that no remaining row dominates."""
    remaining, fronts = list(range(len(losses))), []
    while remaining:
        front = [i for i in remaining if not any((losses[j] <= losses[i]).all() and (losses[j] < losses[i]).any()
                                                 for j in remaining)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def test_non_dominated_fronts_match_the_definition_with_ties_and_any_column_count() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        count, columns = int(rng.integers(1, 30)), int(rng.integers(1, 4))
        losses = rng.integers(0, 5, size=(count, columns)).astype(float)
        expected = _fronts_by_definition(losses)
        assert [sorted(front.tolist()) for front in non_dominated_fronts(losses)] == expected
        enough = int(rng.integers(1, count + 1))
        cut = [sorted(front.tolist()) for front in non_dominated_fronts(losses, enough)]
        assert sum(map(len, cut[:-1])) < enough <= sum(map(len, cut)) and cut == expected[:len(cut)]


def test_crowding_keeps_the_extremes_and_the_loneliest() -> None:
    front = np.array([[0.0, 4.0], [0.1, 3.9], [0.5, 2.0], [1.0, 0.0]])
    distance = crowding_distance(front)
    assert distance[0] == distance[3] == np.inf
    assert distance[2] > distance[1]
    # Keeping 3 of the one front drops the point crowded next to an extreme.
    assert select_best(front, 3) == {0, 2, 3}
    # Whole better fronts go first.
    assert select_best(np.array([[0.5, 0.5], [0.1, 0.1], [0.9, 0.9]]), 1) == {1}


def _finished(number_of_epochs: int, curve: list[float], flops: float, state=TrialState.COMPLETE,
              x: float = 0.5, over_budget: float = -1.0):
    """A finished trial as the Objective leaves it; every trial of a budgeted study has the constraint."""
    values = [curve[-1], flops] if state == TrialState.COMPLETE else None
    return create_trial(state=state, values=values, params={"x": x}, distributions={"x": FloatDistribution(0, 1)},
                        user_attrs={"val_curve": curve[:number_of_epochs], "flops": flops},
                        system_attrs={"constraints:max_flops": over_budget})


def _study_with(trials) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials(trials)
    return study


def _running(study: optuna.Study, curve: list[float], flops: float) -> optuna.Trial:
    trial = study.ask()
    trial.set_user_attr("flops", flops)
    trial.set_user_attr("val_curve", curve)
    return trial


PRUNER = MOASHAPruner(["flops"], max_epochs=10, min_epochs=1, reduction_factor=3)


def test_a_dominated_trial_stops_at_a_rung_and_a_cheap_one_goes_on() -> None:
    study = _study_with([_finished(9, [0.8, 0.9, 0.95], 1e6), _finished(9, [0.7, 0.85, 0.9], 1e5),
                         _finished(1, [0.6], 1e6, TrialState.PRUNED), _finished(1, [0.5], 2e6, TrialState.PRUNED)])
    # Five trials reached epoch 1, so two go on; this one is worse and costlier than two others.
    assert PRUNER.prune(study, _running(study, [0.55], 1.5e6))
    # Less accurate than all, but cheaper by far: on the first front, at its cheap end.
    assert not PRUNER.prune(study, _running(study, [0.4], 1e3))
    # Epoch 2 is no rung: no decision there, however bad.
    assert not PRUNER.prune(study, _running(study, [0.1, 0.1], 1e7))


def test_too_few_trials_at_a_rung_all_go_on() -> None:
    # Asynchronous promotion: with fewer than eta trials at the rung there is nothing to rank yet.
    study = _study_with([_finished(3, [0.9, 0.95, 0.96], 1e4)])
    assert not PRUNER.prune(study, _running(study, [0.1, 0.1, 0.1], 1e7))
    # The third trial at epoch 1 is ranked: one of three goes on, and it is not this one.
    study = _study_with([_finished(3, [0.9, 0.95, 0.96], 1e4), _finished(3, [0.8, 0.9, 0.95], 1e4)])
    assert PRUNER.prune(study, _running(study, [0.1], 1e7))


def test_running_trials_count_at_the_rungs_they_reached() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    leaders = [_running(study, [0.9, 0.9, 0.9], 1e3), _running(study, [0.95, 0.9, 0.9], 1e3)]
    assert leaders and PRUNER.prune(study, _running(study, [0.2], 1e5))
    # With accuracy as the only objective MO-ASHA is ASHA: cost plays no part.
    accuracy_only = MOASHAPruner([], max_epochs=10)
    assert accuracy_only.prune(study, _running(study, [0.5], 1.0))


def test_a_finished_trials_point_is_worked_out_once_and_a_finished_trial_is_not_its_own_rival(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pruner = MOASHAPruner(["flops"], max_epochs=10, min_epochs=1, reduction_factor=3)
    study = _study_with([_finished(1, [0.6 + i / 100], 1e6, TrialState.PRUNED) for i in range(30)])
    worked_out: list[list[float]] = []
    point = pruner.point
    monkeypatch.setattr(pruner, "point",
                        lambda attrs, epochs: worked_out.append(attrs["val_curve"]) or point(attrs, epochs))
    assert pruner.prune(study, _running(study, [0.5], 1e6))
    assert len(worked_out) == 31
    assert not pruner.prune(study, _running(study, [0.99], 1e6))
    assert len(worked_out) == 31 + 2, "the new trial and the running one before it, no finished one again"
    # A finished trial judged again is ranked among the others, not beside itself: the best of the
    # thirty goes on (with itself counted twice it would still), the worst stops.
    finished = study.get_trials(states=(TrialState.PRUNED,))
    assert not pruner.prune(study, finished[-1]) and pruner.prune(study, finished[0])


@pytest.mark.parametrize("sampler", ["tpe", "nsgaii", "gp", "random"])
def test_samplers_go_on_sampling_among_pruned_and_infeasible_trials(sampler: str) -> None:
    trials = [_finished(3, [0.5 + i / 40, 0.6, 0.7 + i / 40], 1e4 * (i + 1), x=i / 10) for i in range(8)]
    trials += [_finished(1, [0.3], 1e5, TrialState.PRUNED, x=0.05 * i) for i in range(6)]
    # Over budget: COMPLETE with the placeholder accuracy 0 and a positive constraint value.
    trials.append(_finished(0, [0.0], 1e9, x=0.95, over_budget=2.0))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(sampler, 0))
    study.add_trials(trials)
    for _ in range(2):
        trial = study.ask()
        assert 0 <= trial.suggest_float("x", 0, 1) <= 1
        trial.set_constraint("max_flops", -1.0)
        study.tell(trial, [0.8, 1e4])
    front = {t.number for t in study.best_trials}
    assert front and len(trials) - 1 not in front


def test_real_multi_objective_study_prunes_with_rung_attrs(tmp_path: Path) -> None:
    study_file = write_study(tmp_path, f"""
        name = "moasha"
        n_trials = 4
        seed = 1
        storage = "sqlite:///{tmp_path / 'moasha.db'}"
        [search]
        families = ["mlp"]
        objectives = ["val_accuracy", "flops"]
        pruner = "moasha"
        [train]
        max_epochs = 2
        batch_size = [128]
    """)
    study = run_plan(plan_study(load_study_file(study_file), study_file, registry()), progress=False)
    states = [t.state for t in study.trials]
    assert len(states) == 4 and TrialState.FAIL not in states
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [t.user_attrs.get("val_curve") for t in study.trials]
    for trial in pruned:
        assert trial.values is None
        assert trial.user_attrs["rung"] == 0 and trial.user_attrs["pruned_at_epoch"] == 1
        assert len(trial.user_attrs["val_curve"]) == 1 and "fail_reason" not in trial.user_attrs
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(len(t.user_attrs["val_curve"]) == 2 for t in complete)
