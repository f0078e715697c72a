"""Budgets: configs over budget are rejected before training, recorded, fed to the sampler as
constraints and kept off every front; a study file whose space is mostly over budget says so."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch
from rich.console import Console

from automl.search.budget import constraint_values, over_budget_reasons, survey_space
from automl.config import BudgetConfig, load_study_file
from automl.errors import UsageError
from automl.results.hypervolume import hypervolume_history
from automl.plugin.registry import registry
from automl.results.front import print_front
from automl.search.plan import plan_study
from automl.runner import run_plan
from automl.search.study import create_or_resume
from conftest import run_cli, write_study

COMPLETE = optuna.trial.TrialState.COMPLETE


def test_constraints_are_log_ratios_and_reasons_name_metric_value_and_key() -> None:
    costs = {"n_params": 2000.0, "flops": 1e6, "latency_ms": 0.5}
    limits = {"max_params": 1000.0, "max_flops": 1e7, "max_latency_ms": 0.5}
    values = constraint_values(costs, limits)
    assert values["max_params"] == pytest.approx(math.log10(2))
    assert values["max_flops"] == pytest.approx(-1.0) and values["max_latency_ms"] == 0.0
    assert over_budget_reasons(costs, limits) == ["n_params 2000 > max_params 1000"]


def test_over_budget_configs_are_rejected_before_training(tmp_path: Path) -> None:
    study_file = write_study(tmp_path, f"""
        name = "budget"
        n_trials = 5
        storage = "sqlite:///{tmp_path / 'budget.db'}"
        [search]
        families = ["mlp"]
        pruner = "none"
        [budget]
        max_flops = 2e4
        [train]
        max_epochs = 1
        batch_size = [128]
    """)
    study = run_plan(plan_study(load_study_file(study_file), study_file, registry()), progress=False)
    trials = study.trials
    assert all(t.state == COMPLETE for t in trials)
    over = [t for t in trials if "over_budget" in t.user_attrs]
    within = [t for t in trials if "over_budget" not in t.user_attrs]
    assert over and within, [t.user_attrs["flops"] for t in trials]
    for trial in over:
        attrs = trial.user_attrs
        assert attrs["over_budget"] == f"flops {attrs['flops']:.4g} > max_flops 2e+04"
        assert attrs["epochs"] == 0 and "val_curve" not in attrs and "val_accuracy" not in attrs
        assert "time_train_s" not in attrs and attrs["wall_time_s"] < 5  # built and measured only
        # What every sampler reads: a COMPLETE trial with a positive constraint value.
        assert trial.constraints["max_flops"] == pytest.approx(math.log10(attrs["flops"] / 2e4))
        assert trial.values == [0.0, attrs["flops"]]
    for trial in within:
        assert trial.constraints["max_flops"] <= 0 and trial.user_attrs["epochs"] == 1
    assert {t.number for t in study.best_trials} <= {t.number for t in within}
    assert set(hypervolume_history(study).trial_numbers) == {t.number for t in within}
    console = Console(record=True, width=200)
    print_front(study, console)
    were = "was" if len(over) == 1 else "were"
    assert f"{len(over)} of {len(trials)} trials {were} over budget" in console.export_text()


def test_survey_counts_the_space_over_budget(tmp_path: Path) -> None:
    path = write_study(tmp_path, 'name = "survey"\n[search]\nfamilies = ["mlp", "cnn"]\n')
    plan = plan_study(load_study_file(path), path, registry())
    example = plan.data.train.x

    tight = survey_space(plan.families, plan.data.task, example, BudgetConfig(max_flops=1e3, max_params=1e9))
    assert tight.sampled == 16 and tight.over == {"max_params": 0, "max_flops": 16}
    [warning] = tight.warnings()
    assert "max_flops: 16 of 16" in warning and "(100%)" in warning and "Raise max_flops" in warning

    assert not survey_space(plan.families, plan.data.task, example, BudgetConfig(max_flops=1e12)).warnings()
    assert survey_space(plan.families, plan.data.task, example, BudgetConfig(max_latency_ms=1.0)).sampled == 0


def test_cli_warns_before_queueing_a_study_mostly_over_budget(tmp_path: Path) -> None:
    study_file = write_study(tmp_path, f"""
        name = "tight"
        storage = "sqlite:///{tmp_path / 'tight.db'}"
        [search]
        families = ["mlp"]
        [budget]
        max_params = 100
    """)
    result = run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"warning: {study_file}: [budget] max_params: 8 of 8 randomly drawn configs (100%)" in result.stderr


def test_resuming_with_other_budget_keys_is_refused(tmp_path: Path) -> None:
    def plan(budget: str):
        path = write_study(tmp_path, f'name = "resume"\nstorage = "sqlite:///{tmp_path / "r.db"}"\n{budget}')
        return plan_study(load_study_file(path), path, registry())

    create_or_resume(plan("[budget]\nmax_flops = 1e6\n"))
    create_or_resume(plan("[budget]\nmax_flops = 2e6\n"))  # another limit is fine
    with pytest.raises(UsageError, match=r"created with budget keys \['max_flops'\], the study file now gives "
                                         r"\['max_flops', 'max_params'\]"):
        create_or_resume(plan("[budget]\nmax_flops = 1e6\nmax_params = 1000\n"))


class LargeKernel:
    """A 9x9 kernel cannot slide over 8x8 digits: those configs build but fail their forward pass."""

    name = "largekernel"
    task_kinds = ("image",)

    def search_space(self, trial, task) -> dict:
        return {"kernel": trial.suggest_categorical("kernel", [3, 9])}

    def build(self, params: dict, task) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(task.input_shape[0], 4, params["kernel"]), torch.nn.Flatten(),
                                   torch.nn.LazyLinear(task.num_classes))


def test_the_survey_counts_configs_a_plugin_cannot_run_and_goes_on(tmp_path: Path) -> None:
    path = write_study(tmp_path, 'name = "survey"\n[search]\nfamilies = ["mlp"]\n')
    plan = plan_study(load_study_file(path), path, registry())
    families = {"largekernel": LargeKernel(), **plan.families}
    survey = survey_space(families, plan.data.task, plan.data.train.x, BudgetConfig(max_flops=1e12))
    assert 0 < survey.failed["largekernel"] < 8 and survey.failed["mlp"] == 0
    assert survey.sampled == 16 - survey.failed["largekernel"]
    [warning] = survey.warnings()
    assert warning.startswith(f"family 'largekernel': {survey.failed['largekernel']} of the configs drawn")
