"""The lean training loop for trials: Lightning Fabric driving the Classifier, no per-step syncs.

Lightning's Trainer runs a hook chain, a result collection and a closure on every step: over a
tiny model on in-memory data that costs more than the step itself. Fabric keeps what a trial
needs (device placement, precision and autocast, gradient scaling) and the loop stays plain.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import lightning as L
import torch
from torch import nn

from automl.training.augment import random_crop_flip
from automl.training.batches import LoaderBatches, TensorBatches
from automl.training.classifier import Classifier, TrainingParams
from automl.data.prepare import PreparedData, Split
from automl.training.device import fits_on_device, on_device, resolve_device, resolve_precision

EVAL_BATCH_SIZE = 1024
AUGMENT_PADDING = 2

for _name in ("lightning.pytorch", "lightning.fabric"):
    # Lightning announces the accelerator on every start; one line per trial drowns the progress bar.
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning's own use of a torch API deprecated in newer releases; nothing a user can change.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)

__all__ = ["NonFiniteLoss", "TrainResult", "TrainingParams", "step_function", "train"]

Batches = TensorBatches | LoaderBatches


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; nothing after it can be trusted."""


@dataclass
class TrainResult:
    val_accuracy: float
    test_accuracy: float
    epochs: int
    val_curve: list[float] = field(default_factory=list)
    train_loss_curve: list[float] = field(default_factory=list)
    train_s: float = 0.0
    validate_s: float = 0.0


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


def _accuracy(fabric: L.Fabric, module: Classifier, batches: Batches, step: Callable, metric) -> float:
    module.eval()
    with torch.inference_mode(), fabric.autocast():
        for index, batch in enumerate(batches):
            step(batch, index)
    value = float(metric.compute())  # the one host sync of an evaluation
    metric.reset()
    return value


def _prepare_inputs(x: torch.Tensor, augment: bool, channels_last: bool) -> torch.Tensor:
    if augment:
        x = random_crop_flip(x, AUGMENT_PADDING)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def step_function(fabric: L.Fabric, classifier: Classifier, optimizer: torch.optim.Optimizer,
                  precision: str) -> Callable[[tuple[torch.Tensor, torch.Tensor], int], torch.Tensor]:
    """One optimization step on a batch, returning the loss (detached, still on the device).

    ``optimizer`` is the one Fabric set up. The step is called on the bare module: the Fabric
    wrapper would route it through forward() for strategies that hook forward, which one device has
    none of. Only mixed precision needs Fabric's autocast, and only 16-mixed the gradient scaler
    behind its backward and optimizer wrappers; other steps call torch directly, skipping a fixed
    cost per step that shows only on the smallest models (on the median digits models
    benchmarks/trial_parts.py finds the two steps level).
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


def train(model: nn.Module, data: PreparedData, params: TrainingParams, device: torch.device,
          precision: str, max_epochs: int, seed: int, augment: bool = False, compile: bool = False,
          callbacks: Sequence[object] = (), data_on_device: Literal["auto"] | bool = "auto",
          loader_workers: int = 2) -> TrainResult:
    """Train ``model`` on ``data.train``, validate each epoch, test the final weights once.

    ``callbacks`` are Fabric callbacks; ``on_validation_epoch_end(epoch, val_accuracy)`` is called
    after each validation and may raise (a pruner does) to stop the trial there.
    ``data_on_device`` and ``loader_workers``: see make_batches.
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
    if compile:
        model.compile()  # in place: the state_dict keeps its keys for export
    module = Classifier(model, data.task.num_classes, params)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    optimizer = module.configure_optimizers()
    module, optimizer = fabric.setup(module, optimizer)
    batches, val_batches, test_batches = make_batches(data, params.batch_size, fabric.device, seed,
                                                      data_on_device, loader_workers)
    classifier: Classifier = module.module
    step = step_function(fabric, classifier, optimizer, precision)
    result = TrainResult(0.0, 0.0, 0)
    for epoch in range(max_epochs):
        started = time.perf_counter()
        module.train()
        loss_sum = torch.zeros((), device=fabric.device)
        for index, (x, y) in enumerate(batches):
            loss_sum += step((_prepare_inputs(x, augment and images, channels_last), y), index)
        # Read once per epoch: a finiteness test per step would be a host sync per step. A loss
        # that went NaN or infinite stays so in the sum, so a diverged trial ends within one epoch.
        mean_loss = float(loss_sum) / len(batches)
        if not math.isfinite(mean_loss):
            raise NonFiniteLoss(f"non-finite training loss in epoch {epoch}")
        validating = time.perf_counter()
        result.train_s += validating - started
        accuracy = _accuracy(fabric, classifier, val_batches, classifier.validation_step, classifier.val_accuracy)
        result.validate_s += time.perf_counter() - validating
        result.val_curve.append(accuracy)
        result.train_loss_curve.append(mean_loss)
        result.epochs = epoch + 1
        fabric.call("on_validation_epoch_end", epoch=epoch, val_accuracy=accuracy)
    result.val_accuracy = result.val_curve[-1]
    result.test_accuracy = _accuracy(fabric, classifier, test_batches, classifier.test_step,
                                     classifier.test_accuracy)
    return result
