"""What a training has reached: the state of its last validated epoch, to keep or to resume from.

A trial can stop between validations: at a study's deadline, or on Ctrl-C or SIGTERM. What it
trained up to its last validation is not thrown away: the loop keeps a copy of the model and
optimizer state after every validation (on the device: a copy of the weights and the optimizer's
moments, small next to an epoch), and the caller reads it from ``Progress`` however the
training ended.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
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
    [0, 1], mean training loss).
    """

    epochs: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    val_curve: list[float]
    train_loss_curve: list[float]

    @classmethod
    def capture(cls, model: torch.nn.Module, optimizer: torch.optim.Optimizer, val_curve: list[float],
                train_loss_curve: list[float]) -> Checkpoint:
        return cls(len(val_curve), copy_state(model.state_dict()), copy_state(optimizer.state_dict()),
                   list(val_curve), list(train_loss_curve))

    def to_bytes(self) -> bytes:
        """The checkpoint as a ``torch.save`` file, its tensors on the CPU."""
        buffer = io.BytesIO()
        torch.save({"epochs": self.epochs, "model_state": self.model_state, "optimizer_state":
                    self.optimizer_state, "val_curve": self.val_curve,
                    "train_loss_curve": self.train_loss_curve}, buffer)
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
