"""Optuna's pruners in single-objective studies, through the Fabric callback, on real short trainings;
and the study file's pruner keys."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from automl.config import parse_study
from automl.errors import UsageError
from automl.search.objective import Objective
from automl.plugin.registry import registry
from automl.search.pruners import make_pruner
from automl.search.signal import ranked_accuracy
from automl.search.plan import plan_study

SMALL_MLP = {"family": "mlp", "mlp.depth": 1, "mlp.width": 32, "mlp.activation": "relu", "mlp.norm": "none",
             "mlp.dropout": 0.0, "train.optimizer": "adam", "train.weight_decay": 1e-6, "train.batch_size": 128}


@pytest.mark.parametrize("pruner, leaders", [("median", 5), ("sha", 2), ("moasha", 2)])
def test_single_objective_pruner_stops_a_hopeless_trial(pruner: str, leaders: int) -> None:
    config = parse_study({"name": "prune", "search": {"families": ["mlp"], "objectives": ["val_accuracy"],
                                                      "pruner": pruner},
                          "train": {"max_epochs": 3, "lr": [1e-6, 1e-2]}}, Path("prune.toml"))
    plan = plan_study(config, Path("prune.toml"), registry())
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config.search, 3))
    # Trials that learn (median needs 5 before it judges), then one whose learning rate is too small to.
    for _ in range(leaders):
        study.enqueue_trial({**SMALL_MLP, "train.lr": 1e-2})
    study.enqueue_trial({**SMALL_MLP, "train.lr": 1e-6})
    study.optimize(Objective(config, plan.families, plan.data), n_trials=leaders + 1)
    *learned, hopeless = study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in learned)
    assert hopeless.state == optuna.trial.TrialState.PRUNED, hopeless.user_attrs
    assert hopeless.user_attrs["pruned_at_epoch"] == 1 and hopeless.user_attrs["epochs"] == 1
    assert len(hopeless.user_attrs["val_curve"]) == 1 and "fail_reason" not in hopeless.user_attrs
    # It reports the ranked accuracy: the accuracy, ties broken by the validation loss.
    attrs = hopeless.user_attrs
    ranked = ranked_accuracy(attrs["val_curve"][0], attrs["val_loss_curve"][0], attrs["val_samples"])
    assert ranked < attrs["val_curve"][0] and hopeless.intermediate_values == {1: pytest.approx(ranked, abs=1e-5)}


def test_optuna_pruner_in_a_multi_objective_study_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as error:
        parse_study({"name": "bad", "search": {"objectives": ["val_accuracy", "flops"], "pruner": "median"}},
                    tmp_path / "bad.toml")
    message = str(error.value)
    assert "bad.toml: key 'search': pruner = 'median' needs objectives = [\"val_accuracy\"]" in message
    assert "pruner = \"moasha\"" in message and "['val_accuracy', 'flops']" in message
    assert error.value.exit_code == 2


def test_pruner_names_map_to_pruners() -> None:
    def pruner(name: str, objectives: list[str]) -> optuna.pruners.BasePruner:
        config = parse_study({"name": "p", "search": {"pruner": name, "objectives": objectives}}, Path("p"))
        return make_pruner(config.search, max_epochs=27)

    assert isinstance(pruner("none", ["val_accuracy", "flops"]), optuna.pruners.NopPruner)
    assert isinstance(pruner("hyperband", ["val_accuracy"]), optuna.pruners.HyperbandPruner)
    moasha = pruner("moasha", ["val_accuracy", "flops", "latency_ms"])
    assert moasha.rungs == [1, 3, 9] and moasha.cost_attrs == ["flops", "latency_ms"]


@pytest.mark.parametrize("pruner", ["median", "sha", "hyperband"])
def test_no_pruner_discards_a_trial_that_trained_its_last_epoch(pruner: str) -> None:
    # One epoch: a pruner could only judge a trial after its one and last epoch, saving nothing.
    config = parse_study({"name": "last", "search": {"families": ["mlp"], "objectives": ["val_accuracy"],
                                                     "pruner": pruner},
                          "train": {"max_epochs": 1, "lr": [1e-6, 1e-2]}}, Path("last.toml"))
    plan = plan_study(config, Path("last.toml"), registry())
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config.search, 1))
    for _ in range(5):
        study.enqueue_trial({**SMALL_MLP, "train.lr": 1e-2})
    study.enqueue_trial({**SMALL_MLP, "train.lr": 1e-6})
    study.optimize(Objective(config, plan.families, plan.data), n_trials=6)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 6
    hopeless = study.trials[-1]
    assert hopeless.values[0] < min(t.values[0] for t in study.trials[:-1]), "the one a pruner would have stopped"
    assert hopeless.intermediate_values == {1: pytest.approx(hopeless.values[0], abs=1e-5)}
