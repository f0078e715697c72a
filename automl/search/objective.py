"""The Optuna objective: sample a family and its space, build, measure, train, score."""

from __future__ import annotations

import logging
import math
import statistics
import time
from typing import Any

import lightning as L
import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from automl.config import StudyConfig, TrainConfig
from automl.data.prepare import PreparedData, fold_data
from automl.plugin.build import build_model
from automl.plugin.contract import Family
from automl.plugin.space import CheckedFixedTrial, NamespacedTrial, in_namespace, sample_params
from automl.plugin.task import Task
from automl.search.budget import screen
from automl.search.pruners import EpochPruning, decision_epochs
from automl.search.signal import ranked_accuracy
from automl.search.time_budget import Deadline, EpochTimeGuard, Leaders, NextDecisionGuard, OverTimeBudget, guard_trial
from automl.search.trial_artifacts import FrontSoFar, load_checkpoint, save_checkpoint, save_trial_artifacts
from automl.storage.schema import DEADLINE, FAMILY_PARAM, LATENCY, TRAINING_NAMESPACE, TrialAttr, objective_values
from automl.storage.worker_storage import commit_trial_writes
from automl.training.device import resolve_device
from automl.training.efficiency import Efficiency, measure, peak_memory_mb
from automl.training.loop import TrainingParams, train
from automl.training.progress import Checkpoint, Progress
from automl.training.throughput import fastest_forward_seconds
from automl.workers.interrupts import DeadlineReached

LOG = logging.getLogger(__name__)
# The accuracy objective of a config rejected over budget: it never trained, so it is worst-case.
# The trial is infeasible, so no front shows it; the value only lets samplers read it as COMPLETE.
UNTRAINED_ACCURACY = 0.0


def sample_training(trial: optuna.trial.BaseTrial, config: TrainConfig) -> TrainingParams:
    """The training hyperparameters, drawn from the study file's ranges (stored as ``train.lr``, ...)."""
    training = NamespacedTrial(trial, TRAINING_NAMESPACE)
    return TrainingParams(
        optimizer=training.suggest_categorical("optimizer", list(config.optimizer)),
        lr=training.suggest_float("lr", *config.lr, log=True),
        weight_decay=training.suggest_float("weight_decay", *config.weight_decay, log=True),
        batch_size=training.suggest_categorical("batch_size", list(config.batch_size)),
    )


def replay_trial(family: Family, stored_params: dict[str, Any], task: Task, config: TrainConfig
                 ) -> tuple[dict[str, Any], TrainingParams, list[str]]:
    """Replay a trial's stored params through ``family``'s space and the training ranges.

    Returns the params ``build`` takes, the training params, and the stored keys of the family or
    training that neither asked for. Raises OutsideSpace (automl.plugin.space) naming each value
    outside its distribution, ValueError for a value the spaces ask for and ``stored_params`` lacks.
    """
    fixed = CheckedFixedTrial(stored_params)
    params = sample_params(family, fixed, task)
    training = sample_training(fixed, config)
    fixed.check()
    unused = sorted(key for key in stored_params
                    if in_namespace(key, family.name, TRAINING_NAMESPACE) and key not in fixed.params)
    return params, training, unused


def validation_samples(data: PreparedData) -> int:
    """The samples a trial's validation accuracy is measured on: every non-test row when it
    cross-validates, else the validation split's."""
    return len(data.train.y) + len(data.val.y) if data.folds else len(data.val.y)


def measured(efficiency: Efficiency, val_accuracy: float) -> dict[str, float]:
    """What a trial's objectives are read from (automl.storage.schema.objective_values), by trial
    attr; ``val_accuracy`` is the value samplers rank (automl.search.signal.ranked_accuracy)."""
    values = {TrialAttr.VAL_ACCURACY: val_accuracy, TrialAttr.FLOPS: efficiency.flops,
              TrialAttr.N_PARAMS: efficiency.n_params, TrialAttr.LATENCY_MS: efficiency.latency_ms}
    return {attr: value for attr, value in values.items() if value is not None}  # latency when timed


def _not_saved(trial: optuna.Trial, what: str, error: OSError) -> None:
    LOG.warning(f"trial {trial.number}: {what} could not be written to the artifact folder "
                f"({error.filename or ''}: {error.strerror or error}); its results are stored in the study")


class Objective:
    """Callable handed to ``study.optimize``; one call is one trial.

    With a ``deadline`` (automl.search.time_budget) a trial whose configuration would take too much
    of the time left is refused before it trains, and a training under way stops at the deadline
    with the epochs it validated. A trial interrupted (Ctrl-C, SIGTERM) leaves its last validated
    epoch in the artifact store, and its retry goes on from there.
    """

    def __init__(self, config: StudyConfig, families: dict[str, Family], data: PreparedData,
                 artifacts: FileSystemArtifactStore | None = None, deadline: Deadline | None = None) -> None:
        self.config = config
        self.artifacts = artifacts
        self.families = families
        self.data = data
        self.deadline = deadline
        self.device = resolve_device(config.train.accelerator)
        self.serving_device = torch.device("cpu") if config.search.latency_device == "cpu" else self.device
        # Efficiency by architecture (family and its params): see _measure.
        self._measured: dict[str, Efficiency] = {}
        self.front = FrontSoFar()  # whether a trial's weights are kept (automl.search.trial_artifacts)
        self.leaders = Leaders()  # which trials lead their rung (automl.search.time_budget)
        # Latency is timed only where the study ranks or limits it (automl.training.efficiency.measure).
        self.time_latency = LATENCY.name in config.search.objectives or config.budget.max_latency_ms is not None

    def __call__(self, trial: optuna.Trial) -> list[float]:
        started = time.perf_counter()
        family = self.families[trial.suggest_categorical(FAMILY_PARAM, list(self.families))]
        trial.set_user_attr(TrialAttr.FAMILY, family.name)
        trial.set_user_attr(TrialAttr.DEVICE, str(self.device))
        progress = Progress()
        try:
            values = self._run(trial, family, progress)
        except optuna.TrialPruned:
            raise
        except DeadlineReached:
            trial.set_user_attr(TrialAttr.FAIL_REASON, DEADLINE)
            raise
        except Exception as exc:
            trial.set_user_attr(TrialAttr.FAIL_REASON, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        except BaseException:
            # Ctrl-C or SIGTERM (automl.workers.interrupts): what was validated is kept for the retry.
            if progress.checkpoint is not None and self.artifacts is not None:
                try:
                    save_checkpoint(self.artifacts, trial, progress.checkpoint)
                except OSError as exc:  # the interrupt is recorded all the same; the retry starts over
                    _not_saved(trial, "the checkpoint of its last validated epoch", exc)
            raise
        finally:
            trial.set_user_attr(TrialAttr.WALL_TIME_S, round(time.perf_counter() - started, 3))
        return values

    def _run(self, trial: optuna.Trial, family: Family, progress: Progress) -> list[float]:
        task, config = self.data.task, self.config
        started = time.perf_counter()
        params = sample_params(family, trial, task)
        training = sample_training(trial, config.train)
        seed = config.seed + trial.number
        L.seed_everything(seed, verbose=False)
        model = build_model(family, params, task, self.data.train.x[:2])
        measuring = time.perf_counter()
        example = self.data.train.x[:1]
        efficiency = self._measure(family, params, model, example)
        trial.set_user_attr(TrialAttr.N_PARAMS, efficiency.n_params)
        trial.set_user_attr(TrialAttr.FLOPS, efficiency.flops)
        if efficiency.latency_ms is not None:
            trial.set_user_attr(TrialAttr.LATENCY_MS, round(efficiency.latency_ms, 4))
        trial.set_user_attr(TrialAttr.LATENCY_METHOD, efficiency.latency_method)
        guards: list[EpochTimeGuard] = []
        decisions = decision_epochs(config.search, config.train.max_epochs)
        folds = len(self.data.folds)
        # A trial's epoch trains every fold: its cost counts them all.
        samples_per_epoch = len(self.data.train.y) * max(folds, 1)
        if self.deadline is not None:
            try:
                guards.append(guard_trial(trial, self.deadline, family.name, efficiency.flops, samples_per_epoch,
                                          decisions[0], self.device, lambda: self._forward(model, training)))
            except OverTimeBudget:
                return self._untrained(trial, efficiency, measuring, guards)
        if screen(trial, config.budget, efficiency):
            return self._untrained(trial, efficiency, measuring, guards)
        memory = peak_memory_mb(model.to(self.device), example.to(self.device), training.batch_size)
        if memory is not None:
            trial.set_user_attr(TrialAttr.PEAK_MEMORY_MB, round(memory, 2))
        resume = self._resume_point(trial)
        if folds:
            trial.set_user_attr(TrialAttr.FOLDS, folds)
        trial.set_user_attr(TrialAttr.VAL_SAMPLES, validation_samples(self.data))
        # The trial's parameters and cost reach the storage before it trains: a worker killed
        # while training leaves a trial that names its worker, and a retry with its parameters.
        commit_trial_writes(trial)
        training_started = time.perf_counter()
        pruning = EpochPruning(trial, resume.val_curve if resume else None, config.train.max_epochs,
                               resume.val_loss_curve if resume else None)
        # After the pruner: a trial it stops is pruned, and one it lets go on must fit the time left.
        pacing = ([NextDecisionGuard(trial, self.deadline, decisions, resume.epochs if resume else 0, self.leaders)]
                  if self.deadline else [])
        try:
            result = train(model, self.data, training, self.device, config.train.precision,
                           config.train.max_epochs, seed, augment=config.train.augment,
                           compile=config.train.compile, callbacks=[*guards, pruning, *pacing],
                           data_on_device=config.train.data_on_device, loader_workers=config.train.loader_workers,
                           deadline=self.deadline.at if self.deadline else None, resume=resume,
                           lr_schedule=config.train.lr_schedule,
                           # The per-epoch copy is kept only where an interrupt's checkpoint can be stored.
                           progress=progress if self.artifacts is not None else None)
        except OverTimeBudget:
            return self._untrained(trial, efficiency, measuring, guards)
        finished = time.perf_counter()
        if result.stopped and not result.val_curve:
            raise DeadlineReached("the study's deadline came before its first epoch was validated")
        if result.stopped:
            trial.set_user_attr(TrialAttr.STOPPED, result.stopped)
        trial.set_user_attr(TrialAttr.EPOCHS, result.epochs)
        trial.set_user_attr(TrialAttr.VAL_ACCURACY, result.val_accuracy)
        val_loss = result.val_loss_curve[-1] if result.val_loss_curve else None
        if val_loss is not None:
            trial.set_user_attr(TrialAttr.VAL_LOSS, round(val_loss, 6))
        if result.test_accuracy is not None:
            trial.set_user_attr(TrialAttr.TEST_ACCURACY, result.test_accuracy)
        if folds:
            trial.set_user_attr(TrialAttr.FOLD_ACCURACIES, [round(v, 5) for v in result.fold_accuracies])
            trial.set_user_attr(TrialAttr.VAL_ACCURACY_STD, round(statistics.pstdev(result.fold_accuracies), 5))
        trial.set_user_attr(TrialAttr.VAL_CURVE, [round(v, 5) for v in result.val_curve])
        trial.set_user_attr(TrialAttr.VAL_LOSS_CURVE, [round(v, 5) for v in result.val_loss_curve])
        # Where the trial's time went, so framework overhead shows next to the training itself.
        phases = {TrialAttr.TIME_BUILD_S: measuring - started, TrialAttr.TIME_MEASURE_S: training_started - measuring,
                  TrialAttr.TIME_TRAIN_S: result.train_s, TrialAttr.TIME_VALIDATE_S: result.validate_s,
                  TrialAttr.TIME_OTHER_S: finished - training_started - result.train_s - result.validate_s}
        for attr, seconds in phases.items():
            trial.set_user_attr(attr, round(seconds, 4))
        ranked = ranked_accuracy(result.val_accuracy, val_loss, validation_samples(self.data))
        values = objective_values(list(config.search.objectives), measured(efficiency, ranked))
        if self.artifacts is not None:
            try:
                save_trial_artifacts(self.artifacts, trial, model, result, values, self.front)
            except OSError as exc:  # a by-product: the trial's results are stored all the same
                _not_saved(trial, "its artifacts (summary, learning curve, weights)", exc)
        return values

    def _measure(self, family: Family, params: dict[str, Any], model: torch.nn.Module,
                 example: torch.Tensor) -> Efficiency:
        """``model``'s efficiency, measured once per architecture in this process.

        FLOPs, parameters and latency depend on the architecture, not on the weights or the
        training: a configuration drawn again (a sampler converging, a retry, a warm start) gets the
        numbers its first draw measured, so one architecture has one latency and the timing runs
        once.
        """
        architecture = repr((family.name, sorted(params.items())))
        efficiency = self._measured.get(architecture)
        if efficiency is None:
            efficiency = self._measured[architecture] = measure(
                model, example, self.serving_device, self.config.search.latency_batch_size, self.time_latency)
        return efficiency

    def _forward(self, model: torch.nn.Module, training: TrainingParams) -> tuple[float, int]:
        """The fastest forward pass of ``model`` on the device on as many samples as a batch holds,
        two at most, and the steps of an epoch over every fold: each step takes at least that pass."""
        batch = self.data.train.x[:min(2, training.batch_size)].to(self.device)
        steps = sum(math.ceil(len(part.train.y) / training.batch_size) for part in fold_data(self.data))
        return fastest_forward_seconds(model.to(self.device), batch), steps

    def _untrained(self, trial: optuna.Trial, efficiency: Efficiency, measuring: float,
                   guards: list[EpochTimeGuard]) -> list[float]:
        """The values of a config refused before training (over a [budget] limit or the time allowed)."""
        for guard in guards:
            guard.settle()
        trial.set_user_attr(TrialAttr.EPOCHS, 0)
        trial.set_user_attr(TrialAttr.TIME_MEASURE_S, round(time.perf_counter() - measuring, 4))
        return objective_values(list(self.config.search.objectives), measured(efficiency, UNTRAINED_ACCURACY))

    def _resume_point(self, trial: optuna.Trial) -> Checkpoint | None:
        """The last validated epoch of the interrupted trial this one retries, if it left one."""
        if self.artifacts is None:
            return None
        study = trial.study
        frozen = next(t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                      if t.number == trial.number)
        for number in reversed(RetryHeartbeatStaleTrialCallback.retry_history(frozen)):
            checkpoint = load_checkpoint(self.artifacts, study, study.get_trials(deepcopy=False)[number])
            if checkpoint is not None:
                trial.set_user_attr(TrialAttr.RESUMED_FROM, number)
                return checkpoint
        return None
