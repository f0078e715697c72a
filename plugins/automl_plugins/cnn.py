"""Convolutional network: conv blocks that double the channels, global average pooling, linear head.

Images use 2-D convolutions; sequences ``[T, F]`` use 1-D convolutions over time with the ``F``
features as channels; tokens are embedded first, the embedding's features as channels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

import automl
from automl_plugins._layers import check_kind, embedding, suggest_embedding

BASE_CHANNELS = [8, 16, 32, 64, 128]
# Doubling stops here: four blocks from 128 channels would otherwise reach 1024 and ~60M parameters.
MAX_CHANNELS = 256
# Pool between blocks only while every spatial side is at least this long, so nothing shrinks
# below 2: the 8x8 digits get two poolings (8 -> 4 -> 2), 32x32 images three.
MIN_SIDE_TO_POOL = 4

Layer = Callable[..., nn.Module]

# Per spatial rank: convolution, batch norm, the poolings between blocks by name, global pooling.
LAYERS_BY_RANK: dict[int, tuple[Layer, Layer, dict[str, Layer], Layer]] = {
    2: (nn.Conv2d, nn.BatchNorm2d, {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}, nn.AdaptiveAvgPool2d),
    1: (nn.Conv1d, nn.BatchNorm1d, {"max": nn.MaxPool1d, "avg": nn.AvgPool1d}, nn.AdaptiveAvgPool1d),
}


class TimeAsLastAxis(nn.Module):
    """``[B, T, F]`` to the ``[B, F, T]`` layout that ``Conv1d`` expects."""

    def forward(self, sequences: Tensor) -> Tensor:
        return sequences.transpose(1, 2)


def _sides(task: automl.Task) -> tuple[int, ...]:
    """The spatial sides convolutions slide over: ``(H, W)`` or ``(T,)``."""
    return task.input_shape[1:] if task.kind == "image" else task.input_shape[:1]


def _input_layers(task: automl.Task, params: dict[str, Any]) -> tuple[list[nn.Module], int]:
    """Layers from ``task``'s inputs to what the first convolution reads, and its channels."""
    if task.kind == "image":
        return [], task.input_shape[0]
    if task.kind == "tokens":
        return [embedding(task, params["embedding"]), TimeAsLastAxis()], params["embedding"]
    return [TimeAsLastAxis()], task.input_shape[1]


def _poolings(blocks: int, sides: tuple[int, ...]) -> int:
    """How many of the gaps between blocks get a 2x pooling: the first ones, while sides allow."""
    count = 0
    while count < blocks - 1 and min(sides) >= MIN_SIDE_TO_POOL:
        sides = tuple(side // 2 for side in sides)
        count += 1
    return count


class CNNFamily:
    """1 to 4 conv blocks of 8 to 256 channels: 170 to about four million parameters on the digits."""

    name = "cnn"
    task_kinds: tuple[str, ...] = ("image", "sequence", "tokens")

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        check_kind(self, task)
        params = {
            **suggest_embedding(trial, task),
            "blocks": trial.suggest_int("blocks", 1, 4),
            "channels": trial.suggest_categorical("channels", BASE_CHANNELS),
            "kernel": trial.suggest_categorical("kernel", [3, 5]),
            "norm": trial.suggest_categorical("norm", ["none", "batch"]),
        }
        if _poolings(params["blocks"], _sides(task)):
            params["pool"] = trial.suggest_categorical("pool", ["max", "avg"])
        return params

    def build(self, params: dict[str, Any], task: automl.Task) -> nn.Module:
        check_kind(self, task)
        sides = _sides(task)
        layers, in_channels = _input_layers(task, params)
        conv, batch_norm, pools, global_pool = LAYERS_BY_RANK[len(sides)]
        poolings = _poolings(params["blocks"], sides)
        kernel, use_batch_norm = params["kernel"], params["norm"] == "batch"
        for block in range(params["blocks"]):
            out_channels = min(params["channels"] * 2**block, MAX_CHANNELS)
            # A bias right before batch norm is cancelled by its mean subtraction.
            layers.append(conv(in_channels, out_channels, kernel, padding=kernel // 2,
                               bias=not use_batch_norm))
            if use_batch_norm:
                layers.append(batch_norm(out_channels))
            layers.append(nn.ReLU())
            if block < poolings:
                layers.append(pools[params["pool"]](2))
            in_channels = out_channels
        layers += [global_pool(1), nn.Flatten(), nn.Linear(in_channels, task.num_classes)]
        return nn.Sequential(*layers)


@automl.hookimpl
def register_families(register: Callable[[automl.Family], None]) -> None:
    register(CNNFamily())
