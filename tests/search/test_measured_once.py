"""A worker measures an architecture's efficiency once: a configuration drawn again gets the same numbers."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import automl.search.objective as objective_module
from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.search.objective import Objective
from automl.search.plan import plan_study

MLP = {"family": "mlp", "mlp.depth": 1, "mlp.width": 32, "mlp.activation": "relu", "mlp.norm": "none",
       "mlp.dropout": 0.0, "train.optimizer": "adam", "train.weight_decay": 1e-5, "train.batch_size": 128}


def test_an_architecture_drawn_again_reuses_its_measurement(tiny_study: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    measured = []

    def counted(model, *args):
        measured.append(type(model).__name__)
        return measure(model, *args)

    measure = objective_module.measure
    monkeypatch.setattr(objective_module, "measure", counted)
    plan = plan_study(load_study_file(tiny_study), tiny_study, registry())
    objective = Objective(plan.config, {"mlp": registry().families["mlp"].obj}, plan.data)
    study = optuna.create_study(directions=["maximize", "minimize"])
    # The same architecture trained at two learning rates, then a wider one.
    for lr, width in ((1e-3, 32), (3e-3, 32), (1e-3, 64)):
        study.enqueue_trial({**MLP, "train.lr": lr, "mlp.width": width})
    study.optimize(objective, n_trials=3)
    first, again, wider = (trial.user_attrs for trial in study.trials)
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    assert len(measured) == 2, "the repeated architecture was measured again"
    for attr in ("latency_ms", "latency_method", "flops", "n_params"):
        assert again.get(attr) == first.get(attr), attr
    assert wider["flops"] > first["flops"] and wider["n_params"] > first["n_params"]
