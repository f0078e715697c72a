"""A model without trainable parameters (a pooling baseline) is scored as built, after 0 epochs, and
competes on the front; neither the pre-flight check nor the trial refuses it."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import write_study
from optuna.trial import TrialState
from torch import nn

from automl import Task
from automl.config import load_study_file
from automl.plugin.registry import Registered, Registry, registry
from automl.runner import run_plan
from automl.search.plan import plan_study
from automl.storage.schema import pareto_front
from automl.training.loop import TrainingParams, train


class PooledScores(nn.Module):
    """Average-pools the flattened input into one score per class: nothing to train."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool1d(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.flatten(1).unsqueeze(1)).squeeze(1)


class Baseline:
    name = "baseline"
    task_kinds = ("image",)

    def search_space(self, trial, task: Task) -> dict:
        return {"head": trial.suggest_categorical("head", ["none", "linear"])}

    def build(self, params: dict, task: Task) -> nn.Module:
        scores = PooledScores(task.num_classes)
        return scores if params["head"] == "none" else nn.Sequential(scores, nn.Linear(task.num_classes,
                                                                                       task.num_classes))


def _plan(tmp_path: Path):
    study = write_study(tmp_path, f"""
        name = "free"
        storage = "sqlite:///{tmp_path / 'free.db'}"
        artifacts = "{tmp_path / 'artifacts'}"
        [search]
        objectives = ["val_accuracy", "params"]
        pruner = "none"
        [train]
        max_epochs = 1
        batch_size = [256]
    """)
    real = registry()
    families = Registry({"baseline": Registered(Baseline(), real.families["mlp"].source)}, real.datasets)
    return plan_study(load_study_file(study), study, families)


def test_a_parameter_free_model_is_scored_as_built(tmp_path: Path) -> None:
    data = _plan(tmp_path).data
    model = PooledScores(data.task.num_classes)
    result = train(model, data, TrainingParams("adam", 1e-3, 0.0, 64), torch.device("cpu"), "32-true",
                   max_epochs=3, seed=0)
    expected = {split: float((model(getattr(data, split).x).argmax(1) == getattr(data, split).y).float().mean())
                for split in ("val", "test")}
    assert (result.epochs, result.val_curve) == (0, [])
    assert (result.val_accuracy, result.test_accuracy) == (expected["val"], expected["test"])


def test_a_parameter_free_config_competes_on_the_front(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert not plan.notes, "the pre-flight check trains the family's configs, the parameter-free one too"
    study = run_plan(plan, n_trials=4, progress=False)
    assert all(trial.state == TrialState.COMPLETE for trial in study.trials)
    free = [trial for trial in study.trials if trial.params["baseline.head"] == "none"]
    assert free, "the startup configs draw the parameter-free config"
    attrs = free[0].user_attrs
    assert attrs["epochs"] == 0 and attrs["n_params"] == 0 and "flops" in attrs
    assert 0 <= attrs["val_accuracy"] <= 1 and 0 <= attrs["test_accuracy"] <= 1 and "over_budget" not in attrs
    assert free[0].number in [trial.number for trial in pareto_front(study)]
