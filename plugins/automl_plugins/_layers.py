"""Pieces the built-in families share: kind checks, activations by name, inputs read as sequences."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

import automl
from automl import PAD

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
EMBEDDING_SIZES = [16, 32, 64, 128]


def check_kind(family: automl.Family, task: automl.Task) -> None:
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


def suggest_embedding(trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
    """The searched embedding width, for tokens tasks only."""
    if task.kind != "tokens":
        return {}
    return {"embedding": trial.suggest_categorical("embedding", EMBEDDING_SIZES)}


def embedding(task: automl.Task, width: int) -> nn.Embedding:
    """Token ids to vectors; the padding id maps to a zero vector that training leaves at zero."""
    if task.vocab_size is None:
        raise ValueError(f"a {task.kind!r} task has no vocab_size: only tokens tasks are embedded.")
    return nn.Embedding(task.vocab_size, width, padding_idx=PAD)


class BagOfEmbeddings(nn.Module):
    """Token ids ``[B, T]`` to the mean of their embeddings ``[B, width]``, padding left out."""

    def __init__(self, task: automl.Task, width: int) -> None:
        super().__init__()
        self.embedding = embedding(task, width)

    def forward(self, tokens: Tensor) -> Tensor:
        # Padding embeds to zero, so the sum is over real tokens; divide by how many there are.
        count = (tokens != PAD).sum(dim=1, keepdim=True).clamp(min=1)
        return self.embedding(tokens).sum(dim=1) / count


def as_sequence(task: automl.Task, embedding_width: int | None = None) -> tuple[nn.Module, int, int]:
    """A module turning one batch of ``task`` inputs into ``[B, steps, features]``, and both sizes.

    Tokens are embedded, ``embedding_width`` features per step (required for them).
    """
    if task.kind == "tokens":
        if embedding_width is None:
            raise ValueError("a tokens task is read as a sequence through an embedding: give embedding_width.")
        (steps,) = task.input_shape
        return embedding(task, embedding_width), steps, embedding_width
    if task.kind == "image":
        channels, height, width = task.input_shape
        return ImageRows(), height, channels * width
    if task.kind == "sequence":
        steps, features = task.input_shape
        return nn.Identity(), steps, features
    raise ValueError(f"a {task.kind!r} task cannot be read as a sequence of feature vectors.")
