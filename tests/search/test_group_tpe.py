"""The study's TPE sampler: Optuna's parameter groups, kept across trials, sampled on demand."""

from __future__ import annotations

import math
import warnings

import optuna
import pytest
from optuna.search_space import _GroupDecomposedSearchSpace

from automl.search.group_tpe import FINISHED, GroupTPESampler

STARTUP = 10


def objective(trial: optuna.Trial) -> tuple[float, float]:
    """Three 'families' with their own parameters (one of them conditional) and a shared one."""
    family = trial.suggest_categorical("family", ["a", "b", "c"])
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    if family == "a":
        return (trial.suggest_float("a.x", -5, 5) - 2) ** 2 + trial.suggest_int("a.y", 1, 4), lr
    if family == "b":
        depth = trial.suggest_int("b.depth", 1, 3)
        return sum(trial.suggest_float(f"b.w{i}", -1, 1) ** 2 for i in range(depth)), lr
    return trial.suggest_float("c.z", 0, 3), lr


def _study(sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    return optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)


def test_groups_are_optunas_group_decomposition_kept_across_trials() -> None:
    sampler = GroupTPESampler(seed=0, n_startup_trials=STARTUP)
    study = _study(sampler)
    for _ in range(40):
        study.optimize(objective, n_trials=1)
        mine = sampler._groups.update(study)
        theirs = _GroupDecomposedSearchSpace(include_pruned=True).calculate(study).search_spaces
        assert sorted(map(sorted, mine)) == sorted(map(sorted, theirs))
    assert ["b.depth", "b.w0"] in map(sorted, mine), "b.w0 appears with every depth"


def test_a_trial_samples_only_the_groups_it_asks_for(monkeypatch: pytest.MonkeyPatch) -> None:
    sampler = GroupTPESampler(seed=0, n_startup_trials=STARTUP)
    study = _study(sampler)
    study.optimize(objective, n_trials=30)
    sampled: list[set[str]] = []
    original = optuna.samplers.TPESampler.sample_relative
    monkeypatch.setattr(optuna.samplers.TPESampler, "sample_relative",
                        lambda self, study, trial, space: sampled.append(set(space)) or original(self, study, trial, space))
    study.enqueue_trial({"family": "a"})
    trial = study.ask()
    objective(trial)
    assert sampled == [{"family", "lr"}, {"a.x", "a.y"}], "b's and c's groups are not sampled"
    assert "a.x" in trial.relative_params and trial.params["a.x"] == trial.relative_params["a.x"]
    assert len(sampler._groups.groups) > 2


def test_sampling_moves_to_where_the_objectives_are_good() -> None:
    """After the random start-up, TPE leaves family a (its first objective is at least 1, the
    others reach 0) and lowers lr (the second objective), where random search would not."""
    study = _study(GroupTPESampler(seed=1, n_startup_trials=STARTUP))
    study.optimize(objective, n_trials=90)
    late = study.trials[-40:]
    assert sum(t.params["family"] == "a" for t in late) < len(late) / 6  # random: 1/3
    assert sum(math.log10(t.params["lr"]) for t in late) / len(late) < -3  # random: -2.5


def test_each_group_samples_as_tpe_on_the_study_itself() -> None:
    """TPE samples a group from the finished trials copied once (see group_tpe) exactly as it would
    from the study, however many trials finished since the last sample, pruned and infeasible ones
    (a constraint above 0) among them."""
    sampler = GroupTPESampler(seed=0, n_startup_trials=STARTUP)
    study = _study(sampler)

    def objective_with_states(trial: optuna.Trial) -> tuple[float, float]:
        values = objective(trial)
        trial.set_constraint("budget", trial.number % 5 - 3.0)  # every fifth trial over budget
        if trial.number % 4 == 0:
            raise optuna.TrialPruned()
        return values

    on_study = optuna.samplers.TPESampler(multivariate=True, constant_liar=False, seed=3)
    on_copy = optuna.samplers.TPESampler(multivariate=True, constant_liar=False, seed=3)
    for trials in (15, 1, 7):
        study.optimize(objective_with_states, n_trials=trials)
        trial = study.ask()
        frozen = study.trials[trial.number]
        sampler.infer_relative_search_space(study, frozen)
        for group in sampler._groups.groups:
            assert (on_copy.sample_relative(sampler._groups.finished, frozen, group)
                    == on_study.sample_relative(study, frozen, group))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert len(sampler._groups.finished.trials) == len(study.get_trials(states=FINISHED)) == 23


def test_the_constant_liar_is_refused() -> None:
    with pytest.raises(ValueError, match="constant_liar=True is not supported"):
        GroupTPESampler(constant_liar=True)


def test_the_sampler_warns_the_user_of_nothing() -> None:
    """Its own use of TPE's deprecated ``gamma`` is no FutureWarning on every `automl run`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GroupTPESampler(seed=0)
