"""Families for the training check: one that learns through BatchNorm, two that cannot learn.

Also a plugin module (``register_families``), so that a test can install it and run
``automl plugins check`` on it. When LEARNERS_BUILD_LOG names a file, every model MobileNetFamily
builds appends its params there as a JSON line: what a check run trained and measured.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import torch
from torch import nn

import automl

BUILD_LOG_ENV = "LEARNERS_BUILD_LOG"


class MobileNetFamily:
    """Depthwise-separable convolution blocks, each convolution followed by BatchNorm and ReLU6."""

    name = "mobilenet"
    task_kinds = ("image",)

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        return {"width": trial.suggest_categorical("width", [8, 16, 32, 64]),
                "blocks": trial.suggest_int("blocks", 1, 3)}

    def build(self, params: dict[str, Any], task: automl.Task) -> nn.Module:
        if os.environ.get(BUILD_LOG_ENV):
            with open(os.environ[BUILD_LOG_ENV], "a", encoding="utf-8") as log:
                log.write(json.dumps(params, sort_keys=True) + "\n")
        width = params["width"]
        layers: list[nn.Module] = [nn.Conv2d(task.input_shape[0], width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU6()]
        for _ in range(params["blocks"]):
            layers += [nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU6(), nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6()]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, task.num_classes)]
        return nn.Sequential(*layers)


class _Blind(nn.Module):
    """Logits from a learned bias alone: it learns the class frequencies (from a random start, so
    its loss goes down), never anything about the inputs."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.unused = nn.Linear(features, 1)
        self.bias = nn.Parameter(torch.randn(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1) + 0 * self.unused(x.flatten(1)).sum()


class _Frozen(nn.Module):
    """Logits from a fixed random projection; its parameters reach the logits multiplied by 0."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.register_buffer("projection", torch.randn(features, classes))
        self.head = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.projection + 0 * self.head(x.flatten(1))


class _Tabular:
    """A one-parameter space on tabular tasks, building ``module(features, classes)``."""

    task_kinds = ("tabular",)
    module: type[nn.Module]

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        return {"seed": trial.suggest_int("seed", 0, 3)}

    def build(self, params: dict[str, Any], task: automl.Task) -> nn.Module:
        return self.module(math.prod(task.input_shape), task.num_classes)


class BlindFamily(_Tabular):
    name = "blind"
    module = _Blind


class FrozenFamily(_Tabular):
    name = "frozen"
    module = _Frozen


@automl.hookimpl
def register_families(register: Any) -> None:
    register(MobileNetFamily())
