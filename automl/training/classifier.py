"""The one LightningModule: cross-entropy training and accuracy around any family's backbone."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy


@dataclass(frozen=True)
class TrainingParams:
    """The training hyperparameters sampled for one trial."""

    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int


class Classifier(L.LightningModule):
    """Wraps a backbone mapping ``[B, ...]`` to logits; families never see Lightning.

    Steps return tensors and update metrics on the device; nothing here syncs with the host, so
    the loop that drives it decides when a number is read (once per epoch).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, params: TrainingParams) -> None:
        super().__init__()
        self.backbone = backbone
        self.params = params
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")
        # Mean cross-entropy per validation sample: it tells apart models whose accuracy ties.
        self.val_loss = MeanMetric()
        self.test_accuracy = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_accuracy.update(logits, y)
        self.val_loss.update(F.cross_entropy(logits.float(), y, reduction="none"))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        x, y = batch
        self.test_accuracy.update(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        p = self.params
        # PyTorch picks the multi-tensor (foreach) kernels on GPUs only; on the CPU they step small
        # models with many tensors up to 1.6x faster than the per-tensor loop, with the same math
        # (benchmarks/trial_parts.py).
        if p.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=p.lr, momentum=0.9, nesterov=True,
                                   weight_decay=p.weight_decay, foreach=True)
        optimizer = torch.optim.AdamW if p.optimizer == "adamw" else torch.optim.Adam
        return optimizer(self.parameters(), lr=p.lr, weight_decay=p.weight_decay, foreach=True)
