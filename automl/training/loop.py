"""The lean training loop for trials: Lightning Fabric driving the Classifier, no per-step syncs.

Lightning's Trainer runs a hook chain, a result collection and a closure on every step: over a
tiny model on in-memory data that costs more than the step itself. Fabric keeps what a trial
needs (device placement, precision and autocast, gradient scaling) and the loop stays plain.
"""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric

from automl.data.prepare import PreparedData, fold_data
from automl.training.augment import random_crop_flip
from automl.training.batches import LoaderBatches, TensorBatches
from automl.training.classifier import Classifier, TrainingParams
from automl.training.device import Precision, fits_on_device, on_device, resolve_precision
from automl.training.progress import Checkpoint, Progress, copy_state

EVAL_BATCH_SIZE = 1024
AUGMENT_PADDING = 2
# How far past the deadline the test pass of a trial stopped there may go: a small model's takes
# milliseconds; a large one's is left out (the trial counts with its validation accuracy).
TEST_GRACE_S = 2.0

__all__ = ["NonFiniteLoss", "StopTraining", "TrainResult", "TrainingParams", "step_function", "train"]

Batches = TensorBatches | LoaderBatches


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; nothing after it can be trusted."""


class StopTraining(Exception):
    """Raised by a callback after a validation: the training ends there, with that epoch's model,
    and its result says ``stopped = reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class TrainResult:
    """What a training reached. With cross-validation the accuracies and losses are means over the
    folds (``fold_accuracies``: each fold's validation accuracy at the end); ``test_accuracy`` is
    None when there is no test split, or when the deadline (plus TEST_GRACE_S) came before the test
    pass finished."""

    val_accuracy: float
    test_accuracy: float | None
    epochs: int
    val_curve: list[float] = field(default_factory=list)
    train_loss_curve: list[float] = field(default_factory=list)
    val_loss_curve: list[float] = field(default_factory=list)
    fold_accuracies: list[float] = field(default_factory=list)
    train_s: float = 0.0
    validate_s: float = 0.0
    # Why training ended before max_epochs, when nothing raised: "deadline", or a callback's StopTraining.
    stopped: str | None = None


def make_batches(data: PreparedData, batch_size: int, device: torch.device, seed: int,
                 data_on_device: Literal["auto"] | bool = "auto", loader_workers: int = 2,
                 ) -> tuple[Batches, Batches, Batches]:
    """Training, validation and test batches: slices of the splits on the device when they fit
    there (or ``data_on_device`` says so), else streamed to it by a DataLoader with workers."""
    if fits_on_device(data, device) if data_on_device == "auto" else data_on_device:
        train_split, val_split, test_split = on_device(data, device)
        return (TensorBatches(train_split.x, train_split.y, batch_size, shuffle=True, seed=seed),
                TensorBatches(val_split.x, val_split.y, EVAL_BATCH_SIZE, shuffle=False),
                TensorBatches(test_split.x, test_split.y, EVAL_BATCH_SIZE, shuffle=False))
    return (LoaderBatches(data.train.x, data.train.y, batch_size, True, device, loader_workers, seed),
            LoaderBatches(data.val.x, data.val.y, EVAL_BATCH_SIZE, False, device, loader_workers),
            LoaderBatches(data.test.x, data.test.y, EVAL_BATCH_SIZE, False, device, loader_workers))


def _evaluate(fabric: L.Fabric, module: Classifier, batches: Batches,
              step: Callable[[tuple[torch.Tensor, torch.Tensor], int], None], metrics: Sequence[Metric],
              deadline: float | None = None) -> list[float] | None:
    """The metrics' values over ``batches`` (NaN for a split with no rows); None when ``deadline``
    (``time.time()`` seconds) came first: no batch starts after it, so a slow model's evaluation
    never holds a run past its time budget."""
    if not len(batches):
        return [math.nan] * len(metrics)
    module.eval()
    with torch.inference_mode(), fabric.autocast():
        for index, batch in enumerate(batches):
            if deadline is not None and time.time() >= deadline:
                for metric in metrics:
                    metric.reset()
                return None
            step(batch, index)
    values = [float(metric.compute()) for metric in metrics]  # the host syncs of an evaluation
    for metric in metrics:
        metric.reset()
    return values


def _prepare_inputs(x: torch.Tensor, augment: bool, channels_last: bool) -> torch.Tensor:
    if augment:
        x = random_crop_flip(x, AUGMENT_PADDING)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def step_function(fabric: L.Fabric, classifier: Classifier, optimizer: Any,
                  precision: str) -> Callable[[tuple[torch.Tensor, torch.Tensor], int], torch.Tensor]:
    """One optimization step on a batch, returning the loss (detached, still on the device).

    ``optimizer`` is the one Fabric set up (its wrapper class is private to Lightning). The step is
    called on the bare module: the Fabric wrapper would route it through forward() for strategies
    that hook forward, which one device has none of. Only mixed precision needs Fabric's autocast,
    and only 16-mixed the gradient scaler behind its backward and optimizer wrappers; other steps
    call torch directly, skipping a fixed cost per step that shows only on the smallest models (on
    the median digits models benchmarks/trial_parts.py finds the two steps level).
    """
    mixed = precision.endswith("-mixed")
    scaled = precision == "16-mixed"
    autocast = fabric.autocast if mixed else contextlib.nullcontext
    direct_optimizer = optimizer if scaled else optimizer.optimizer

    def step(batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        with autocast():
            loss = classifier.training_step(batch, index)
        direct_optimizer.zero_grad(set_to_none=True)
        if scaled:
            fabric.backward(loss)
        else:
            loss.backward()
        direct_optimizer.step()
        return loss.detach()

    return step


class StepPace:
    """Times the first steps of an epoch to project the epoch's seconds.

    The first steps of a process's first training pay one-time warm-ups (kernel selection, thread
    pools, allocator growth): a few times the steady pace, so the first ``WARMUP`` steps are left
    out. On the CPU each step is timed and the median taken, which a step delayed by other
    processes does not move; on a GPU steps are queued, so the device is waited for twice and the
    mean taken. A step of ``LONG_STEP_S`` or more is timed alone, the first one too: its warm-ups
    (milliseconds, paid once) are a small part of it, and a model that slow must not spend ten
    such steps before its epoch can be judged. So is a step that long in an epoch too short to
    time its steps (small data): else a slow model trained its whole first epoch over every fold
    before it was judged (an attention model over 1,460 steps: 9 steps of about 19 s a fold).
    """

    WARMUP = 2
    STEPS = 8
    LONG_STEP_S = 1.0

    def __init__(self, device: torch.device, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.on_gpu = device.type == "cuda"
        self.enough = steps_per_epoch > 2 * (self.WARMUP + self.STEPS)
        self.done = 0
        self.last = time.perf_counter()
        self.seconds: list[float] = []
        self.long_step: float | None = None

    def stepped(self, loss_sum: torch.Tensor) -> bool:
        """Count a finished step; True once the pace is known (never for an epoch too short to time)."""
        self.done += 1
        if self.on_gpu and (self.done == 1 or self.enough and self.done in (self.WARMUP, self.WARMUP + self.STEPS)):
            float(loss_sum)  # wait for the device: the steps are timed, not their launches
        now, last = time.perf_counter(), self.last
        self.last = now
        # On a GPU only the first step is waited for alone; later ones are launches until the next wait.
        if (not self.on_gpu or self.done == 1) and now - last >= self.LONG_STEP_S:
            self.long_step = now - last
            return True
        if not self.enough:
            return False
        if self.done > self.WARMUP:
            self.seconds.append(now - last)
        return len(self.seconds) == self.STEPS

    def epoch_seconds(self) -> float:
        if self.long_step is not None:
            per_step = self.long_step
        else:
            per_step = sum(self.seconds) / self.STEPS if self.on_gpu else statistics.median(self.seconds)
        return per_step * self.steps_per_epoch


def _as_built(fabric: L.Fabric, module: Classifier, data: PreparedData, data_on_device: Literal["auto"] | bool,
              loader_workers: int, deadline: float | None) -> TrainResult:
    """A model with nothing to train (a pooling baseline, a fixed feature map) is scored as it was
    built: validation and test accuracy after 0 epochs. (torch's optimizers refuse an empty
    parameter list, so the trial would fail instead.)"""
    fabric.setup(module)
    _, val_batches, test_batches = make_batches(data, EVAL_BATCH_SIZE, fabric.device, 0, data_on_device,
                                                loader_workers)
    validated = _evaluate(fabric, module, val_batches, module.validation_step,
                          (module.val_accuracy, module.val_loss), deadline)
    if validated is None:
        return TrainResult(0.0, None, epochs=0, stopped="deadline")
    val_accuracy, val_loss = validated
    tested = _evaluate(fabric, module, test_batches, module.test_step, (module.test_accuracy,),
                       _test_deadline(deadline))
    return TrainResult(val_accuracy, tested[0] if tested and len(data.test.y) else None, epochs=0,
                       val_loss_curve=[val_loss])


def _test_deadline(deadline: float | None) -> float | None:
    return None if deadline is None else deadline + TEST_GRACE_S


@dataclass
class _Fold:
    """One model in training: with cross-validation one per fold, trained in lockstep."""

    model: nn.Module
    module: Any  # the Classifier as Fabric set it up (its wrapper class is private to Lightning)
    classifier: Classifier
    optimizer: torch.optim.Optimizer  # torch's own, whose state a checkpoint keeps
    step: Callable[[tuple[torch.Tensor, torch.Tensor], int], torch.Tensor]
    batches: Batches
    val_batches: Batches
    test_batches: Batches


def _set_up(fabric: L.Fabric, model: nn.Module, data: PreparedData, params: TrainingParams, precision: Precision,
            seed: int, state: tuple[dict[str, Any], dict[str, Any]] | None, compile: bool,
            data_on_device: Literal["auto"] | bool, loader_workers: int) -> _Fold:
    channels_last = data.task.kind == "image" and fabric.device.type == "cuda"
    if compile:
        model.compile()  # in place: the state_dict keeps its keys for export
    module = Classifier(model, data.task.num_classes, params)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    torch_optimizer = module.configure_optimizers()
    if state is not None:
        model.load_state_dict(state[0])
        # A copy: the optimizer steps its loaded tensors in place, and the checkpoint must not change.
        torch_optimizer.load_state_dict(copy_state(state[1]))
    wrapped, optimizer = fabric.setup(module, torch_optimizer)
    batches = make_batches(data, params.batch_size, fabric.device, seed, data_on_device, loader_workers)
    classifier: Classifier = wrapped.module
    return _Fold(model, wrapped, classifier, torch_optimizer, step_function(fabric, classifier, optimizer, precision),
                 *batches)


def scheduled_lr(lr: float, schedule: Literal["constant", "cosine"], epoch: int, epochs: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based) of ``epochs``: ``lr``, or with "cosine" ``lr``
    decayed along a half cosine towards 0 at the end (Loshchilov and Hutter, 2017, without restarts)."""
    return lr if schedule == "constant" else lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def train(model: nn.Module, data: PreparedData, params: TrainingParams, device: torch.device,
          precision: Precision | Literal["auto"], max_epochs: int, seed: int, augment: bool = False,
          compile: bool = False,
          callbacks: Sequence[object] = (), data_on_device: Literal["auto"] | bool = "auto",
          loader_workers: int = 2, deadline: float | None = None, progress: Progress | None = None,
          resume: Checkpoint | None = None, lr_schedule: Literal["constant", "cosine"] = "constant") -> TrainResult:
    """Train ``model`` on ``data.train``, validate each epoch, test the final weights once.

    With cross-validation (``data.folds``) a copy of ``model`` per fold trains on that fold's
    training rows, all in lockstep: each epoch trains every fold, then validates each on its own
    rows, and the epoch's accuracy and loss are the means over the folds; ``model`` itself is the
    first fold's. The test accuracy is the mean of the fold models'.

    ``callbacks`` are Fabric callbacks: ``on_validation_loss(epoch, val_loss)`` and then
    ``on_validation_epoch_end(epoch, val_accuracy)`` are called after each validation, and the
    latter may raise (a pruner does) to stop the trial there; ``on_epoch_time_estimate(epoch,
    seconds)`` is called once, a few steps into the first epoch trained, with that epoch's
    projected time (every fold's), and may raise to stop before the epoch is spent.
    ``data_on_device`` and ``loader_workers``: see make_batches. ``lr_schedule``: the learning rate
    of each epoch, over ``max_epochs`` (scheduled_lr).

    ``deadline`` (``time.time()`` seconds): no training or validation step starts after it; the
    models go back to their last validated epoch, which the result reports (``stopped =
    "deadline"``), and their test pass may go on TEST_GRACE_S past the deadline, else the result
    has no test accuracy. ``progress``, when
    given, holds the last validated epoch's state whatever ends the training (an interrupt too);
    ``resume`` continues from such a state instead of from epoch 0.
    """
    # A Fabric per trial: setup() registers the LightningModule as one of the Fabric's callbacks,
    # so a Fabric kept for the next trial would keep every trial's model alive.
    precision = resolve_precision(precision, device)
    fabric = L.Fabric(accelerator="cuda" if device.type == "cuda" else "cpu", devices=1,
                      precision=precision, loggers=[], callbacks=list(callbacks))
    images = data.task.kind == "image"
    channels_last = images and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per trial: autotuning pays off
    if not any(parameter.requires_grad for parameter in model.parameters()):
        module = Classifier(model, data.task.num_classes, params)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        return _as_built(fabric, module, fold_data(data)[0], data_on_device, loader_workers, deadline)
    fold_data_ = fold_data(data)
    models = [model, *(copy.deepcopy(model) for _ in fold_data_[1:])]
    states = resume.fold_states() if resume is not None else [None] * len(models)
    start_epoch = resume.epochs if resume is not None else 0
    # A resumed training draws new shuffles: the same seed would repeat epoch 0's order.
    folds = [_set_up(fabric, fold_model, part, params, precision, seed + start_epoch, state, compile,
                     data_on_device, loader_workers)
             for fold_model, part, state in zip(models, fold_data_, states, strict=True)]
    keep = progress is not None or deadline is not None
    progress = progress if progress is not None else Progress()
    result = TrainResult(0.0, None, start_epoch)
    if resume is not None:
        result.val_curve, result.train_loss_curve = list(resume.val_curve), list(resume.train_loss_curve)
        result.val_loss_curve = list(resume.val_loss_curve)
        progress.checkpoint = resume
    for epoch in range(start_epoch, max_epochs):
        started = time.perf_counter()
        losses = []
        # Set from the epoch's number (torch's schedulers count their own steps instead), so that a
        # training resumed from a checkpoint's optimizer state goes on along the same schedule.
        lr = scheduled_lr(params.lr, lr_schedule, epoch, max_epochs)
        for index, fold in enumerate(folds):
            for group in fold.optimizer.param_groups:
                group["lr"] = lr
            fold.module.train()
            loss_sum = torch.zeros((), device=fabric.device)
            pace = StepPace(fabric.device, len(fold.batches)) if epoch == start_epoch and index == 0 else None
            for step_index, (x, y) in enumerate(fold.batches):
                if deadline is not None and time.time() >= deadline:
                    progress.stopped = "deadline"
                    break
                loss_sum += fold.step((_prepare_inputs(x, augment and images, channels_last), y), step_index)
                if pace is not None and pace.stepped(loss_sum):
                    fabric.call("on_epoch_time_estimate", epoch=epoch, seconds=pace.epoch_seconds() * len(folds))
                    pace = None
            if progress.stopped:
                break
            # Read once per epoch: a finiteness test per step would be a host sync per step. A loss
            # that went NaN or infinite stays so in the sum, so a diverged trial ends within one epoch.
            losses.append(float(loss_sum) / len(fold.batches))
        if progress.stopped:
            result.train_s += time.perf_counter() - started
            break
        mean_loss = statistics.fmean(losses)
        if not math.isfinite(mean_loss):
            raise NonFiniteLoss(f"non-finite training loss in epoch {epoch}")
        validating = time.perf_counter()
        result.train_s += validating - started
        evaluated = [_evaluate(fabric, fold.classifier, fold.val_batches, fold.classifier.validation_step,
                               (fold.classifier.val_accuracy, fold.classifier.val_loss), deadline) for fold in folds]
        result.validate_s += time.perf_counter() - validating
        validated = [values for values in evaluated if values is not None]
        if len(validated) < len(folds):  # the deadline came while validating: the epoch does not count
            progress.stopped = "deadline"
            break
        result.fold_accuracies = [accuracy for accuracy, _ in validated]
        accuracy = statistics.fmean(result.fold_accuracies)
        val_loss = statistics.fmean(loss for _, loss in validated)
        result.val_curve.append(accuracy)
        result.val_loss_curve.append(val_loss)
        result.train_loss_curve.append(mean_loss)
        result.epochs = epoch + 1
        if keep:
            progress.checkpoint = Checkpoint.capture(models, [fold.optimizer for fold in folds], result.val_curve,
                                                     result.train_loss_curve, result.val_loss_curve)
        try:
            fabric.call("on_validation_loss", epoch=epoch, val_loss=val_loss)
            fabric.call("on_validation_epoch_end", epoch=epoch, val_accuracy=accuracy)
        except StopTraining as stop:
            progress.stopped = stop.reason
            break
    result.stopped = progress.stopped
    if not result.val_curve:
        return result  # stopped before its first validation: nothing to test
    if progress.stopped and progress.checkpoint is not None:
        for fold_model, (state, _) in zip(models, progress.checkpoint.fold_states(), strict=True):
            fold_model.load_state_dict(state)  # back to the last validated epoch
    result.val_accuracy = result.val_curve[-1]
    tested = [_evaluate(fabric, fold.classifier, fold.test_batches, fold.classifier.test_step,
                        (fold.classifier.test_accuracy,), _test_deadline(deadline)) for fold in folds]
    whole = [values[0] for values in tested if values is not None]
    result.test_accuracy = statistics.fmean(whole) if len(whole) == len(folds) and len(data.test.y) else None
    return result
