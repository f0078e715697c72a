"""Pieces the built-in families share: kind checks, activations by name, images read as sequences."""

from __future__ import annotations

import automl
from torch import Tensor, nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def check_kind(family: object, task: automl.Task) -> None:
    """Raise ValueError unless ``family`` declares ``task.kind``."""
    if task.kind not in family.task_kinds:
        raise ValueError(f"family {family.name!r} builds for {', '.join(family.task_kinds)} tasks, "
                         f"not {task.kind!r} (input shape {task.input_shape}).")


def activation(name: str) -> nn.Module:
    """A fresh activation layer by its search-space name."""
    return ACTIVATIONS[name]()


class ImageRows(nn.Module):
    """Read an image ``[B, C, H, W]`` top to bottom: ``H`` steps of ``C * W`` features."""

    def forward(self, images: Tensor) -> Tensor:
        batch, channels, height, width = images.shape
        return images.permute(0, 2, 1, 3).reshape(batch, height, channels * width)


def as_sequence(task: automl.Task) -> tuple[nn.Module, int, int]:
    """A module turning one batch of ``task`` inputs into ``[B, steps, features]``, and both sizes."""
    if task.kind == "image":
        channels, height, width = task.input_shape
        return ImageRows(), height, channels * width
    if task.kind == "sequence":
        steps, features = task.input_shape
        return nn.Identity(), steps, features
    raise ValueError(f"a {task.kind!r} task cannot be read as a sequence of feature vectors.")
