"""A new study's first trials: architectures spread over each family's cost, trained at the centre of the ranges."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
import torch

from automl.config import BudgetConfig, DataConfig, TrainConfig
from automl.data.prepare import PreparedData, prepare
from automl.plugin.build import build_model
from automl.plugin.contract import Family
from automl.plugin.registry import registry
from automl.plugin.space import sample_params
from automl.search.startup import PER_FAMILY, default_training, startup_configs
from automl.search.time_budget import Deadline, OverTimeBudget, guard_trial
from automl.storage.schema import FAMILY_PARAM, TrialAttr
from automl.training.efficiency import flops_per_sample
from automl.training.throughput import fastest_epoch_seconds, peak_flops_per_second


@pytest.fixture(scope="module")
def digits() -> PreparedData:
    return prepare(DataConfig(dataset="digits"), registry(), 0)


def test_training_hyperparameters_start_at_the_centre_of_their_ranges() -> None:
    train = TrainConfig(lr=(1e-4, 1e-2), weight_decay=(1e-6, 1e-2), batch_size=[128, 16, 64, 32],
                        optimizer=["adamw", "sgd"])
    assert default_training(train) == {"train.optimizer": "adamw", "train.lr": pytest.approx(1e-3),
                                       "train.weight_decay": pytest.approx(1e-4), "train.batch_size": 32}


def test_startup_queues_each_family_cheapest_first_within_a_budget(digits: PreparedData) -> None:
    families = {name: registry().family(name) for name in ("mlp", "cnn")}
    train = TrainConfig()
    budget = BudgetConfig(max_flops=2e6)
    configs = startup_configs(families, digits.task, digits.train.x, train, seed=3, budget=budget)
    assert {config[FAMILY_PARAM] for config in configs} == {"mlp", "cnn"}
    assert len(configs) <= PER_FAMILY * len(families)
    assert all({key: config[key] for key in default_training(train)} == default_training(train) for config in configs)
    flops = [_flops(families[config[FAMILY_PARAM]], config, digits) for config in configs]
    assert flops == sorted(flops) and flops[-1] <= 2e6


def _flops(family: Family, config: dict[str, Any], data: PreparedData) -> int:
    trial = optuna.trial.FixedTrial(config)
    model = build_model(family, sample_params(family, trial, data.task), data.task, data.train.x[:2])
    return flops_per_sample(model, data.train.x[:1])


def test_the_device_peak_refuses_a_huge_first_model_before_it_trains() -> None:
    cpu = torch.device("cpu")
    assert peak_flops_per_second(cpu) > 1e8  # any CPU of this century does 0.1 GFLOP/s in fp32
    assert fastest_epoch_seconds(2e6, 1000, cpu) == pytest.approx(2 * fastest_epoch_seconds(1e6, 1000, cpu))
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    deadline = Deadline.after(60)
    with pytest.raises(OverTimeBudget, match="peak FLOP rate"):
        guard_trial(trial, deadline, "cnn", flops=1e13, train_samples=1000, epochs_to_decision=1, device=cpu)
    assert "peak FLOP rate" in trial.user_attrs[TrialAttr.OVER_BUDGET]
    # A small model passes, with its bound as the estimate until its first steps are timed.
    guard = guard_trial(study.ask(), deadline, "cnn", flops=1e4, train_samples=1000, epochs_to_decision=1, device=cpu)
    assert 0 < guard.estimate < math.inf
