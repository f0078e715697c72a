"""Building a family's module and checking it against the contract, with inputs of a task's shape.

The objective, rebuilt trials (``automl.results``) and the conformance checks all build through
``build_model``, so what a built module must do is checked in one place.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automl.errors import PluginError
from automl.plugin.contract import Family
from automl.plugin.task import Task


def example_inputs(task: Task, batch: int, seed: int = 0) -> torch.Tensor:
    """``[batch, *task.input_shape]`` inputs as a family receives them, fixed by ``seed``: int64
    token ids in ``0..vocab_size-1`` for tokens tasks (padding and unknown ids included), float32
    standard normal (standardized data) otherwise."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, *task.input_shape)
    if task.kind == "tokens":
        assert task.vocab_size is not None  # Task requires one of a tokens task
        return torch.randint(0, task.vocab_size, shape, generator=generator, dtype=torch.int64)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def build_model(family: Family, params: dict[str, Any], task: Task, example: torch.Tensor) -> nn.Module:
    """``family.build(params, task)`` in training mode, after checking that it is a
    ``torch.nn.Module`` whose logits on ``example`` (``[B, *task.input_shape]``) are
    ``[B, task.num_classes]``; PluginError names the family and the params otherwise."""
    model = family.build(params, task)
    if not isinstance(model, nn.Module):
        raise PluginError(f"family {family.name}: build returned {type(model).__name__}, "
                          f"expected a torch.nn.Module (params {params})")
    with torch.no_grad():
        logits = model.eval()(example)
    if tuple(logits.shape) != (len(example), task.num_classes):
        raise PluginError(f"family {family.name}: expected logits [B, {task.num_classes}], got "
                          f"[B, {', '.join(str(d) for d in logits.shape[1:])}] for params {params}")
    return model.train()
