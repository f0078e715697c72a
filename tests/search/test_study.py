"""Whole studies on real digits data and a real SQLite file, through the real plugins."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from automl.config import DEFAULT_N_TRIALS, load_study_file
from automl.search.objective import Objective
from automl.plugin.registry import Registered, Registry, registry
from automl.search.plan import plan_study
from automl.runner import run_plan
from automl.search.signal import ranked_accuracy
from automl.storage.schema import CONFIG_ATTR, TASK_ATTR
from automl.training.efficiency import NOT_TIMED
from automl.plugin.task import Task
from conftest import run_cli, write_study

COMPLETE = optuna.trial.TrialState.COMPLETE


def test_run_then_resume_adds_trials_with_attrs(tiny_study: Path, tmp_path: Path) -> None:
    config = load_study_file(tiny_study)
    study = run_plan(plan_study(config, tiny_study, registry()), progress=False)
    assert [t.state for t in study.trials] == [COMPLETE, COMPLETE]
    assert study.metric_names == ["val_accuracy", "flops"]
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.user_attrs[TASK_ATTR] == {"kind": "image", "input_shape": [1, 8, 8], "num_classes": 10,
                                          "vocab_size": None, "class_names": None}
    for trial in study.trials:
        attrs = trial.user_attrs
        assert attrs["family"] == trial.params["family"]
        assert attrs["epochs"] == 1 and attrs["device"] == "cpu"
        assert attrs["n_params"] > 0 and attrs["flops"] > 0
        # Neither ranked nor limited here, latency is not timed (a tenth of a second per trial).
        assert "latency_ms" not in attrs and attrs["latency_method"] == NOT_TIMED
        # The study ranks the accuracy with its ties broken by the validation loss (automl.search.signal).
        ranked = ranked_accuracy(attrs["val_accuracy"], attrs["val_loss"], attrs["val_samples"])
        assert trial.values == [pytest.approx(ranked, abs=1e-7), attrs["flops"]]  # val_loss is stored rounded
        assert 0 < attrs["val_accuracy"] - ranked < 0.5 / attrs["val_samples"]
        assert 0.0 <= attrs["test_accuracy"] <= 1.0
        family = trial.params["family"]
        assert all(key.startswith((f"{family}.", "train.")) for key in trial.params if key != "family")

    resumed = run_plan(plan_study(config, tiny_study, registry()), n_trials=1, progress=False)
    assert len(resumed.trials) == 3
    assert resumed.trials[2].params != resumed.trials[0].params


def test_study_learns_digits(tmp_path: Path) -> None:
    # Three trials: the study's first configurations span the family's sizes, the smallest first.
    study_file = write_study(tmp_path, f"""
        name = "learns"
        n_trials = 3
        storage = "sqlite:///{tmp_path / 'learns.db'}"
        [search]
        families = ["mlp"]
        objectives = ["val_accuracy"]
        [train]
        max_epochs = 5
        lr = [0.003, 0.003]
        batch_size = [64]
    """)
    study = run_plan(plan_study(load_study_file(study_file), study_file, registry()),
                      progress=False)
    trial = study.best_trial
    assert trial.value > 0.85, trial.user_attrs
    assert trial.user_attrs["test_accuracy"] > 0.85
    assert len(trial.user_attrs["val_curve"]) == 5


class ExplodingFamily:
    """Builds for every sampled config, then raises on the forward pass."""

    name = "exploding"
    task_kinds = ("image",)

    def search_space(self, trial, task: Task) -> dict:
        return {"width": trial.suggest_int("width", 1, 4)}

    def build(self, params: dict, task: Task) -> torch.nn.Module:
        class Explodes(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                raise RuntimeError("kaboom in forward")
        return Explodes()


class WrongShapeFamily(ExplodingFamily):
    name = "wrongshape"

    def build(self, params: dict, task: Task) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64))


def test_failing_families_fail_their_trials_and_the_study_goes_on(tiny_study: Path) -> None:
    real = registry()
    source = real.families["mlp"].source
    fake = Registry(
        {"exploding": Registered(ExplodingFamily(), source), "wrongshape": Registered(WrongShapeFamily(), source),
         "mlp": real.families["mlp"]},
        real.datasets,
    )
    config = load_study_file(tiny_study)
    patient = config.workers.model_copy(update={"max_failures_in_row": 50})
    config = config.model_copy(update={"n_trials": 3, "workers": patient})
    study = run_plan(plan_study(config, tiny_study, fake), progress=False)
    # n_trials counts finished trials: each failed one was replaced by a fresh one.
    states = [t.state for t in study.trials]
    assert states.count(COMPLETE) == 3 and len(states) == 3 + states.count(optuna.trial.TrialState.FAIL)
    reasons = {t.params["family"]: t.user_attrs.get("fail_reason") for t in study.trials}
    assert set(reasons) == {"exploding", "wrongshape", "mlp"}, "sampler never tried every family"
    assert "kaboom in forward" in reasons["exploding"]
    assert "expected logits [B, 10], got [B, 64]" in reasons["wrongshape"]
    states = {t.params["family"]: t.state for t in study.trials}
    assert states["exploding"] == states["wrongshape"] == optuna.trial.TrialState.FAIL
    assert states["mlp"] == COMPLETE


@pytest.mark.parametrize("setting", ['objectives = ["val_accuracy", "latency_ms"]\n',
                                     '[budget]\nmax_latency_ms = 1000.0\n'], ids=["ranked", "limited"])
def test_latency_is_timed_where_the_study_ranks_or_limits_it(tiny_study: Path, setting: str) -> None:
    # One family: what is timed does not depend on it, and each family costs the plan a check.
    tiny_study.write_text(tiny_study.read_text() + '[search]\nfamilies = ["mlp"]\n' + setting)
    config = load_study_file(tiny_study)
    study = run_plan(plan_study(config, tiny_study, registry()), n_trials=1, progress=False)
    attrs = study.trials[0].user_attrs
    assert attrs["latency_ms"] > 0
    assert attrs["latency_method"].startswith("thread CPU time, torch on 1 thread; batch 1; minimum of ")


def test_family_without_the_task_kind_is_left_out_with_a_note(tiny_study: Path) -> None:
    class SequenceOnly(ExplodingFamily):
        name = "seqonly"
        task_kinds = ("sequence",)

    real = registry()
    fake = Registry({"seqonly": Registered(SequenceOnly(), real.families["mlp"].source),
                     "mlp": real.families["mlp"]}, real.datasets)
    plan = plan_study(load_study_file(tiny_study), tiny_study, fake)
    assert list(plan.families) == ["mlp"]
    assert any("'seqonly' is left out" in note for note in plan.notes)


@pytest.mark.slow  # a real study through the CLI, run twice
def test_changing_objectives_of_an_existing_study_is_refused(tiny_study: Path, tmp_path: Path) -> None:
    assert run_cli("run", str(tiny_study), "--n-trials", "1", "--no-progress", cwd=tmp_path).returncode == 0
    text = tiny_study.read_text() + '[search]\nobjectives = ["val_accuracy", "params"]\n'
    tiny_study.write_text(text)
    result = run_cli("run", str(tiny_study), "--no-progress", cwd=tmp_path)
    assert result.returncode == 2
    assert "objectives" in result.stderr and "new study name" in result.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    assert len(study.trials) == 1
    assert study.user_attrs[CONFIG_ATTR]["objectives"] == ["val_accuracy", "flops"]


def test_objective_rejects_non_module_build(tiny_study: Path) -> None:
    class NotAModule(ExplodingFamily):
        name = "notamodule"

        def build(self, params, task):
            return "a string"

    plan = plan_study(load_study_file(tiny_study), tiny_study, registry())
    objective = Objective(plan.config, {"notamodule": NotAModule()}, plan.data)
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(Exception, match="build returned str, expected a torch.nn.Module"):
        objective(study.ask())


@pytest.mark.parametrize(("n_trials", "timeout", "expected"), [
    ("n_trials = 5", None, 5), ("n_trials = 5", 60.0, 5), ("", None, DEFAULT_N_TRIALS), ("", 60.0, None),
])
def test_trials_per_run_fills_a_time_budget_when_n_trials_is_not_given(
        tmp_path: Path, n_trials: str, timeout: float | None, expected: int | None) -> None:
    config = load_study_file(write_study(tmp_path, f'name = "s"\n{n_trials}\n'))
    assert config.trials_per_run(timeout) == expected
