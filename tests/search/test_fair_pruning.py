"""Early stopping is fair across families: one that starts slowly but ends better reaches the front."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from conftest import make_distribution, run_cli, with_path, write_study

pytestmark = pytest.mark.slow

# Two families installed as a real plugin. "quick" is logistic regression: good after one epoch,
# no better later. "steady" is a 256-unit MLP that ends better, but whose validation accuracy
# starts low: its predictions are blended with fixed noise that fades over its first SLOW_STEPS
# training steps (a learning curve shaped on purpose, so the test does not hang on chance).
FAMILIES = '''
import math

import torch
from torch import nn

import automl

SLOW_STEPS = 90


class SlowStart(nn.Module):
    def __init__(self, task):
        super().__init__()
        features = math.prod(task.input_shape)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(features, 256), nn.ReLU(),
                                  nn.Linear(256, task.num_classes))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("noise", torch.randn(4096, task.num_classes,
                                                  generator=torch.Generator().manual_seed(0)) * 20)

    def forward(self, x):
        logits = self.body(x)
        if self.training:
            self.steps += 1
            return logits
        fade = max(0.0, 1.0 - float(self.steps) / SLOW_STEPS)
        return logits + fade * self.noise[: len(x)]


class Quick:
    name = "quick"
    task_kinds = ("image",)

    def search_space(self, trial, task):
        return {"bias": trial.suggest_categorical("bias", [True])}

    def build(self, params, task):
        features = math.prod(task.input_shape)
        return nn.Sequential(nn.Flatten(), nn.Linear(features, task.num_classes, bias=params["bias"]))


class Steady:
    name = "steady"
    task_kinds = ("image",)

    def search_space(self, trial, task):
        return {"width": trial.suggest_categorical("width", [256])}

    def build(self, params, task):
        return SlowStart(task)


@automl.hookimpl
def register_families(register):
    register(Quick())
    register(Steady())
'''

TRAIN = {"train.optimizer": "adam", "train.lr": 3e-3, "train.weight_decay": 1e-6, "train.batch_size": 64}
# The quick family's trials come first: by the time the steady ones reach their first rung, three
# finished quick trials stand there with a far better accuracy at a fraction of the FLOPs.
# (Warm start drops repeated configs: each differs in a weight decay too small to matter.)
CONFIGS = ([{"family": "quick", "quick.bias": True, **TRAIN, "train.weight_decay": 1e-6 * (1 + i)} for i in range(3)]
           + [{"family": "steady", "steady.width": 256, **TRAIN, "train.weight_decay": 1e-6 * (1 + i)}
              for i in range(4)])


def test_a_slow_starting_family_that_ends_better_reaches_the_front(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "automl-shapes", {"shapes_mod": FAMILIES}, {"shapes": "shapes_mod"})
    (tmp_path / "configs.json").write_text(json.dumps(CONFIGS))
    url = f"sqlite:///{tmp_path / 'fair.db'}"
    study_file = write_study(tmp_path, f"""
        name = "fair"
        n_trials = 1
        storage = "{url}"
        [search]
        families = ["quick", "steady"]
        warm_start = "configs.json"
        [train]
        max_epochs = 9
        batch_size = [64]
        optimizer = ["adam"]
    """)
    result = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="fair", storage=url)
    steady = [t for t in study.trials if t.user_attrs.get("family") == "steady"]
    quick_best = max(t.user_attrs["val_accuracy"] for t in study.trials
                     if t.user_attrs.get("family") == "quick" and "val_accuracy" in t.user_attrs)
    assert steady and all(len(t.user_attrs["val_curve"]) >= 1 for t in steady)
    # It does start slowly: at the first rung it trails the quick family by far.
    assert max(t.user_attrs["val_curve"][0] for t in steady) < quick_best - 0.2
    front = {t.user_attrs["family"] for t in study.best_trials}
    assert "steady" in front, [(t.number, t.user_attrs.get("family"), t.state.name, t.user_attrs.get("val_curve"))
                               for t in study.trials]
    best_steady = max(t.values[0] for t in study.best_trials if t.user_attrs["family"] == "steady")
    assert best_steady > quick_best
