"""Training one model with Lightning: a generic classifier module around any backbone."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from automl.batches import TensorBatches
from automl.data import PreparedData
from automl.failures import StopOnNonFiniteLoss

EVAL_BATCH_SIZE = 1024

for _name in ("lightning.pytorch", "lightning.fabric"):
    # Lightning announces the accelerator on every Trainer; one per trial drowns the progress bar.
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning's own use of a torch API deprecated in newer releases; nothing a user can change.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)


@dataclass(frozen=True)
class TrainingParams:
    """The training hyperparameters sampled for one trial."""

    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int


class Classifier(L.LightningModule):
    """Cross-entropy training and accuracy for a backbone mapping ``[B, ...]`` to logits."""

    def __init__(self, backbone: nn.Module, num_classes: int, params: TrainingParams) -> None:
        super().__init__()
        self.backbone = backbone
        self.params = params
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.val_curve: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.backbone(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        x, y = batch
        self.val_accuracy.update(self.backbone(x), y)

    def on_validation_epoch_end(self) -> None:
        accuracy = self.val_accuracy.compute()
        self.val_accuracy.reset()
        self.log("val_accuracy", accuracy)
        self.val_curve.append(float(accuracy))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        x, y = batch
        self.test_accuracy.update(self.backbone(x), y)

    def on_test_epoch_end(self) -> None:
        self.log("test_accuracy", self.test_accuracy.compute())
        self.test_accuracy.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        p = self.params
        if p.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=p.lr, momentum=0.9, nesterov=True,
                                   weight_decay=p.weight_decay)
        optimizer = torch.optim.AdamW if p.optimizer == "adamw" else torch.optim.Adam
        return optimizer(self.parameters(), lr=p.lr, weight_decay=p.weight_decay)


@dataclass
class TrainResult:
    val_accuracy: float
    test_accuracy: float
    epochs: int
    val_curve: list[float] = field(default_factory=list)


def resolve_device(accelerator: str) -> torch.device:
    """The device trials run on: a GPU when asked for or, with "auto", when one is present."""
    if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def trainer_kwargs(device: torch.device, precision: str, max_epochs: int) -> dict[str, Any]:
    """A Trainer that spends nothing per step beyond the step itself."""
    return dict(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=resolve_precision(precision, device),
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[StopOnNonFiniteLoss()],
    )


def train(model: nn.Module, data: PreparedData, params: TrainingParams, device: torch.device,
          precision: str, max_epochs: int, seed: int) -> TrainResult:
    """Train ``model`` on ``data.train``, validate every epoch, and test the final weights once."""
    train_split, val_split, test_split = (s.to(device) for s in (data.train, data.val, data.test))
    module = Classifier(model, data.task.num_classes, params)
    trainer = L.Trainer(**trainer_kwargs(device, precision, max_epochs))
    trainer.fit(
        module,
        train_dataloaders=TensorBatches(train_split.x, train_split.y, params.batch_size, True, seed),
        val_dataloaders=TensorBatches(val_split.x, val_split.y, EVAL_BATCH_SIZE, False),
    )
    tested = trainer.test(module, TensorBatches(test_split.x, test_split.y, EVAL_BATCH_SIZE, False),
                          verbose=False)
    return TrainResult(
        val_accuracy=module.val_curve[-1],
        test_accuracy=float(tested[0]["test_accuracy"]),
        epochs=trainer.current_epoch,
        val_curve=list(module.val_curve),
    )
