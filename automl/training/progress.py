"""What a training has reached: the state of its last validated epoch, to keep or to resume from.

A trial can stop between validations: at a study's deadline, or on Ctrl-C or SIGTERM. What it
trained up to its last validation is not thrown away: the loop keeps a copy of the model and
optimizer state after every validation (on the device: a copy of the weights and the optimizer's
moments, small next to an epoch), and the caller reads it from ``Progress`` however the
training ended.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


def copy_state(state: Any) -> Any:
    """A state dict with every tensor cloned (detached), so later steps do not change it."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {key: copy_state(value) for key, value in state.items()}
    if isinstance(state, list):
        return [copy_state(value) for value in state]
    return state


@dataclass
class Checkpoint:
    """A training as of the end of its ``epochs``-th validated epoch.

    ``model_state``: the backbone's ``state_dict``; ``optimizer_state``: the optimizer's (Adam's
    moments, SGD's momentum); the curves hold one value per epoch so far (validation accuracy in
    [0, 1], mean training loss). With cross-validation these are the first fold's states, and
    ``other_folds`` holds the (model, optimizer) states of the others, in fold order.
    """

    epochs: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    val_curve: list[float]
    train_loss_curve: list[float]
    other_folds: list[tuple[dict[str, torch.Tensor], dict[str, Any]]] = field(default_factory=list)
    val_loss_curve: list[float] = field(default_factory=list)  # mean validation cross-entropy per epoch

    @classmethod
    def capture(cls, models: Sequence[torch.nn.Module], optimizers: Sequence[torch.optim.Optimizer],
                val_curve: list[float], train_loss_curve: list[float], val_loss_curve: list[float]) -> Checkpoint:
        """The states of one model and its optimizer per fold (one without cross-validation)."""
        states = [(copy_state(model.state_dict()), copy_state(optimizer.state_dict()))
                  for model, optimizer in zip(models, optimizers, strict=True)]
        (model_state, optimizer_state), *others = states
        return cls(len(val_curve), model_state, optimizer_state, list(val_curve), list(train_loss_curve), others,
                   list(val_loss_curve))

    def fold_states(self) -> list[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
        """The (model, optimizer) state of each fold, the first fold's first."""
        return [(self.model_state, self.optimizer_state), *self.other_folds]

    def to_bytes(self) -> bytes:
        """The checkpoint as a ``torch.save`` file, its tensors on the CPU."""
        buffer = io.BytesIO()
        torch.save({"epochs": self.epochs, "model_state": self.model_state, "optimizer_state":
                    self.optimizer_state, "val_curve": self.val_curve,
                    "train_loss_curve": self.train_loss_curve, "other_folds": self.other_folds,
                    "val_loss_curve": self.val_loss_curve}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        return cls(**torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))


@dataclass
class Progress:
    """Filled in by ``train`` as it goes; the caller keeps a reference to read after any stop.

    ``checkpoint``: the last validated epoch (None before the first). ``stopped``: why the
    training ended before ``max_epochs``, if it did on its own (``"deadline"``).
    """

    checkpoint: Checkpoint | None = None
    stopped: str | None = None
