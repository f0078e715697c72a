"""The Optuna objective: sample a family and its space, build, measure, train, score."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import optuna
import torch
from torch import nn

from automl.storage.artifacts import FileSystemArtifactStore, save_trial_artifacts
from automl.search.budget import screen
from automl.config import StudyConfig, TrainConfig
from automl.data.prepare import PreparedData
from automl.training.efficiency import Efficiency, measure, peak_memory_mb
from automl.errors import PluginError
from automl.storage.held_writes import commit_trial_writes
from automl.storage.schema import CURVE_ATTR
from automl.search.pruners import EpochPruning
from automl.plugin.space import sample_params
from automl.plugin.task import Task
from automl.training.device import resolve_device
from automl.training.loop import TrainingParams, train

DIRECTIONS = {"val_accuracy": "maximize", "flops": "minimize", "params": "minimize",
              "latency_ms": "minimize"}
# The accuracy objective of a config rejected over budget: it never trained, so it is worst-case.
# The trial is infeasible, so no front shows it; the value only lets samplers read it as COMPLETE.
UNTRAINED_ACCURACY = 0.0


def sample_training(trial: optuna.trial.BaseTrial, config: TrainConfig) -> TrainingParams:
    """The training hyperparameters, drawn from the study file's ranges."""
    return TrainingParams(
        optimizer=trial.suggest_categorical("train.optimizer", list(config.optimizer)),
        lr=trial.suggest_float("train.lr", *config.lr, log=True),
        weight_decay=trial.suggest_float("train.weight_decay", *config.weight_decay, log=True),
        batch_size=trial.suggest_categorical("train.batch_size", list(config.batch_size)),
    )


def build_model(family: Any, params: dict[str, Any], task: Task, example: torch.Tensor) -> nn.Module:
    """Build through the plugin and check the module and its output shape on ``example``."""
    model = family.build(params, task)
    if not isinstance(model, nn.Module):
        raise PluginError(f"family {family.name}: build returned {type(model).__name__}, "
                          "expected a torch.nn.Module")
    with torch.no_grad():
        logits = model.eval()(example)
    expected = (len(example), task.num_classes)
    if tuple(logits.shape) != expected:
        raise PluginError(f"family {family.name}: expected logits [B, {task.num_classes}], got "
                          f"[B, {', '.join(str(d) for d in logits.shape[1:])}] for params {params}")
    return model.train()


def objective_values(objectives: list[str], efficiency: Efficiency, val_accuracy: float) -> list[float]:
    available = {"val_accuracy": val_accuracy, "flops": float(efficiency.flops),
                 "params": float(efficiency.n_params), "latency_ms": efficiency.latency_ms}
    return [available[name] for name in objectives]


class Objective:
    """Callable handed to ``study.optimize``; one call is one trial."""

    def __init__(self, config: StudyConfig, families: dict[str, Any], data: PreparedData,
                 artifacts: FileSystemArtifactStore | None = None) -> None:
        self.config = config
        self.artifacts = artifacts
        self.families = families
        self.data = data
        self.device = resolve_device(config.train.accelerator)
        self.serving_device = torch.device("cpu") if config.search.latency_device == "cpu" else self.device

    def __call__(self, trial: optuna.Trial) -> list[float]:
        started = time.perf_counter()
        family = self.families[trial.suggest_categorical("family", list(self.families))]
        trial.set_user_attr("family", family.name)
        trial.set_user_attr("device", str(self.device))
        try:
            values = self._run(trial, family)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        finally:
            trial.set_user_attr("wall_time_s", round(time.perf_counter() - started, 3))
        return values

    def _run(self, trial: optuna.Trial, family: Any) -> list[float]:
        task, config = self.data.task, self.config
        started = time.perf_counter()
        params = sample_params(family, trial, task)
        training = sample_training(trial, config.train)
        seed = config.seed + trial.number
        L.seed_everything(seed, verbose=False)
        model = build_model(family, params, task, self.data.train.x[:2])
        measuring = time.perf_counter()
        example = self.data.train.x[:1]
        efficiency = measure(model, example, self.serving_device, config.search.latency_batch_size)
        trial.set_user_attr("n_params", efficiency.n_params)
        trial.set_user_attr("flops", efficiency.flops)
        trial.set_user_attr("latency_ms", round(efficiency.latency_ms, 4))
        objectives = list(config.search.objectives)
        if screen(trial, config.budget, efficiency):
            trial.set_user_attr("epochs", 0)
            trial.set_user_attr("time_measure_s", round(time.perf_counter() - measuring, 4))
            return objective_values(objectives, efficiency, UNTRAINED_ACCURACY)
        memory = peak_memory_mb(model.to(self.device), example.to(self.device), training.batch_size)
        if memory is not None:
            trial.set_user_attr("peak_memory_mb", round(memory, 2))
        # The trial's parameters and cost reach the storage before it trains: a worker killed
        # while training leaves a trial that names its worker, and a retry with its parameters.
        commit_trial_writes(trial.study)
        training_started = time.perf_counter()
        result = train(model, self.data, training, self.device, config.train.precision,
                       config.train.max_epochs, seed, augment=config.train.augment,
                       compile=config.train.compile, callbacks=[EpochPruning(trial)],
                       data_on_device=config.train.data_on_device, loader_workers=config.train.loader_workers)
        finished = time.perf_counter()
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("val_accuracy", result.val_accuracy)
        trial.set_user_attr("test_accuracy", result.test_accuracy)
        trial.set_user_attr(CURVE_ATTR, [round(v, 5) for v in result.val_curve])
        # Where the trial's time went, so framework overhead shows next to the training itself.
        phases = {"build": measuring - started, "measure": training_started - measuring,
                  "train": result.train_s, "validate": result.validate_s,
                  "other": finished - training_started - result.train_s - result.validate_s}
        for phase, seconds in phases.items():
            trial.set_user_attr(f"time_{phase}_s", round(seconds, 4))
        values = objective_values(objectives, efficiency, result.val_accuracy)
        if self.artifacts is not None:
            save_trial_artifacts(self.artifacts, trial, model, result, values)
        return values
