"""A new study's first trials: architectures spread over each family's cost, trained at the centre of the ranges."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from datafiles import labels, write_table

from automl.config import BudgetConfig, DataConfig, StudyConfig, TrainConfig
from automl.data.prepare import PreparedData, prepare
from automl.plugin.build import build_model
from automl.plugin.contract import Family
from automl.plugin.registry import Registered, Registry, registry
from automl.plugin.space import sample_params
from automl.runner import run_plan
from automl.search.plan import plan_study
from automl.search.startup import PER_FAMILY, default_training, known_good, startup_configs
from automl.search.time_budget import Deadline, EpochTimeGuard, OverTimeBudget, guard_trial
from automl.storage.schema import FAMILY_PARAM, TrialAttr
from automl.training.efficiency import flops_per_sample
from automl.training.throughput import fastest_epoch_seconds, fastest_forward_seconds, peak_flops_per_second


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


def test_a_family_s_known_good_configs_come_first_within_a_budget(tmp_path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 64, 1)).astype(np.float32)
    np.savez(tmp_path / "s.npz", x=x, y=labels(2, 20))
    series = prepare(DataConfig(dataset="npz", path=str(tmp_path / "s.npz")), registry(), 0)
    families = {name: registry().family(name) for name in ("mlp", "cnn")}
    configs = startup_configs(families, series.task, series.train.x, TrainConfig(), seed=3)
    fcn = {"cnn.blocks": 3, "cnn.channels": 32, "cnn.kernel": "8-5-3", "cnn.norm": "batch", "cnn.convs": 1,
           "cnn.residual": False, "cnn.pool": "none"}
    assert {key: configs[0].get(key) for key in fcn} == fcn and configs[0][FAMILY_PARAM] == "cnn"
    assert len(configs) == 1 + PER_FAMILY * len(families)
    fcn_flops = _flops(families["cnn"], configs[0], series)
    tight = startup_configs(families, series.task, series.train.x, TrainConfig(), seed=3,
                            budget=BudgetConfig(max_flops=fcn_flops - 1))
    assert fcn not in [{key: config.get(key) for key in fcn} for config in tight]
    assert known_good(families["cnn"], prepare(DataConfig(), registry(), 0).task) == []  # images: none named
    assert known_good(families["mlp"], series.task) == []  # the MLP names one for texts only
    assert known_good(registry().family("rnn"), series.task) == []  # a family without starting_points


def test_the_fcn_pools_on_long_sequences_to_stay_within_its_cost(tmp_path) -> None:
    from automl_plugins.cnn import FCN_POOLED_ABOVE_FLOPS, fcn_flops

    cnn = registry().family("cnn")
    for steps, pool in ((1460, "max"), (361, "none")):  # ACSF1's length, PickupGestureWiimoteZ's
        x = np.random.default_rng(0).normal(size=(12, steps, 1)).astype(np.float32)
        np.savez(tmp_path / f"{steps}.npz", x=x, y=labels(2, 6))
        series = prepare(DataConfig(dataset="npz", path=str(tmp_path / f"{steps}.npz")), registry(), 0)
        (fcn,) = known_good(cnn, series.task)
        assert fcn["pool"] == pool and fcn["channels"] == 32 and fcn["kernel"] == "8-5-3"
        config = {FAMILY_PARAM: "cnn", **{f"cnn.{key}": value for key, value in fcn.items()}, **default_training(
            TrainConfig())}
        unpooled = _flops(cnn, {**config, "cnn.pool": "none"}, series)
        # The closed form counts what torch's counter counts, to 1%.
        assert fcn_flops(series.task, 32) == pytest.approx(unpooled, rel=0.01)
        assert (unpooled > FCN_POOLED_ABOVE_FLOPS) == (pool == "max")
        assert _flops(cnn, config, series) <= FCN_POOLED_ABOVE_FLOPS


def test_a_text_study_starts_from_a_bag_of_embeddings(tmp_path) -> None:
    rows = [[f"a {'fine' if label else 'dull'} film, {i}", label] for i, label in enumerate(labels(2, 20))]
    texts = prepare(DataConfig(dataset="text", path=str(write_table(tmp_path / "t.csv", ["text", "label"], rows))),
                    registry(), 0)
    families = {name: registry().family(name) for name in ("cnn", "mlp")}
    configs = startup_configs(families, texts.task, texts.train.x, TrainConfig(), seed=3)
    assert {key: value for key, value in configs[0].items() if key.startswith("mlp.")} == {
        "mlp.embedding": 16, "mlp.depth": 0}, "fastText's linear bag, with no hidden layer's params"
    assert configs[0][FAMILY_PARAM] == "mlp"
    assert len(configs) == 1 + PER_FAMILY * len(families)


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


class SlowForward(torch.nn.Module):
    """Batch norm and dropout over 4 features; each forward pass sleeps ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.calls = seconds, 0
        self.layers = torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.seconds)
        return self.layers(x)


def test_a_timed_forward_pass_refuses_a_model_its_flops_let_through() -> None:
    cpu = torch.device("cpu")
    model = SlowForward(0.05)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    seconds = fastest_forward_seconds(model, torch.randn(2, 4))
    assert 0.05 <= seconds < 1 and model.calls == 2
    # Timed in eval mode without gradients: the model is left as it was, batch norm's statistics too.
    assert model.training and all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    study = optuna.create_study(directions=["maximize", "minimize"])
    deadline = Deadline.after(60)
    assert deadline is not None
    trial = study.ask()
    # 100 steps of at least 0.05 s, 2 epochs to the first rung: at least 10 s, over 8% of 60 s. The
    # message gives the time measured, which a busy machine stretches past the 0.05 s slept (0.121 s at load 36).
    timed = re.escape(f"2 epochs of 100 steps, each at least a forward pass timed at {seconds:.3g} s")
    with pytest.raises(OverTimeBudget, match=timed):
        guard_trial(trial, deadline, "cnn", flops=1e4, train_samples=1000, epochs_to_decision=2, device=cpu,
                    forward=lambda: (seconds, 100))
    assert "forward pass" in trial.user_attrs[TrialAttr.OVER_BUDGET]
    guard = guard_trial(study.ask(), deadline, "cnn", flops=1e4, train_samples=1000, epochs_to_decision=2, device=cpu,
                        forward=lambda: (seconds, 10))
    assert guard.estimate >= 2 * 10 * 0.05  # within the time allowed, the bound is its estimate until it trains
    # A configuration its FLOPs refuse is not timed.
    with pytest.raises(OverTimeBudget, match="peak FLOP rate"):
        guard_trial(study.ask(), deadline, "cnn", flops=1e13, train_samples=1000, epochs_to_decision=1, device=cpu,
                    forward=lambda: pytest.fail("timed"))


class SlowInference:
    """A family of one model whose forward pass sleeps 0.1 s (in training too)."""

    name = "slowinference"
    task_kinds = ("image",)

    def search_space(self, trial: Any, task: Any) -> dict[str, Any]:
        return {"bias": trial.suggest_categorical("bias", [True])}

    def build(self, params: dict[str, Any], task: Any) -> torch.nn.Module:
        model = SlowForward(0.1)
        model.layers = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, task.num_classes))
        return model


def test_a_trial_is_refused_on_its_timed_forward_pass_before_its_first_step(tmp_path) -> None:
    real = registry()
    families = Registry({"slowinference": Registered(SlowInference(), real.families["mlp"].source)}, real.datasets)
    config = StudyConfig(name="slow", storage=f"sqlite:///{tmp_path / 's.db'}", n_trials=1,
                         search={"families": ["slowinference"]}, train={"batch_size": [64], "max_epochs": 2})
    plan = plan_study(config, "study 'slow'", families)
    # 20 steps of at least 0.1 s to the first rung: 2 s, over 8% of the 20 s budget.
    study = run_plan(plan, timeout=20, progress=False)
    trial, = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert trial.user_attrs[TrialAttr.EPOCHS] == 0
    assert "20 steps, each at least a forward pass timed at 0.1" in trial.user_attrs[TrialAttr.OVER_BUDGET]


def test_an_epoch_too_short_to_time_its_steps_is_judged_after_it() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    deadline = Deadline.after(60)
    assert deadline is not None

    def first_epoch(guard: EpochTimeGuard) -> None:
        time.sleep(0.03)  # the first epoch: 4 epochs to the first rung project to 0.12 s > 0.05 s
        guard.on_validation_epoch_end(0, 0.5)

    trial = study.ask()
    with pytest.raises(OverTimeBudget, match="4 epoch"):
        first_epoch(EpochTimeGuard(trial, deadline, allowed=0.05, epochs_to_decision=4))
    assert "at the pace of its first" in trial.user_attrs[TrialAttr.OVER_BUDGET]
    paced = EpochTimeGuard(study.ask(), deadline, allowed=0.05, epochs_to_decision=4)
    paced.on_epoch_time_estimate(0, 0.001)  # its steps were timed and passed: it goes on to its rung
    first_epoch(paced)
    first_epoch(EpochTimeGuard(study.ask(), deadline, allowed=0.05, epochs_to_decision=1))  # at its decision
