"""Checks that a family keeps the plugin contract; shared by automl.testing and `automl plugins check`.

Each check raises ConformanceError naming the family, the task and the config that broke it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from torch import nn
from torch.nn import functional

from automl.training.efficiency import count_parameters, flops_per_sample
from automl.errors import PluginError
from automl.plugin.registry import FAMILY_ATTRIBUTES
from automl.plugin.space import replay_params, sample_params
from automl.plugin.task import TASK_KINDS, Task

# One small task per kind; families are checked on every kind they declare.
DEFAULT_TASKS = {
    "image": Task("image", (1, 8, 8), 10),
    "sequence": Task("sequence", (12, 3), 5),
    "tabular": Task("tabular", (20,), 3),
    "tokens": Task("tokens", (16,), 4, vocab_size=50),
}
BATCH = 4
# Building is cheap next to training, so the size range is judged on a larger sample.
SIZE_RANGE_CONFIGS = 24


class ConformanceError(AssertionError):
    """A family broke the contract; the message says how and with which params."""


@dataclass(frozen=True)
class Config:
    """One sampled configuration: the study's stored params and the dict ``build`` receives."""

    stored: dict[str, Any]
    params: dict[str, Any]


def example_inputs(task: Task, batch: int, seed: int = 0) -> torch.Tensor:
    """Random inputs of ``task``'s shape: token ids for tokens tasks, floats otherwise."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, *task.input_shape)
    if task.kind == "tokens":
        return torch.randint(0, task.vocab_size, shape, generator=generator)
    return torch.randn(shape, generator=generator)


def learnable_batch(task: Task, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs whose labels a model can learn: a fixed random linear map of the input (of the
    first token, for tokens tasks)."""
    inputs = example_inputs(task, count, seed)
    if task.kind == "tokens":
        return inputs, inputs[:, 0] % task.num_classes
    weights = torch.randn(math.prod(task.input_shape), task.num_classes,
                          generator=torch.Generator().manual_seed(seed + 1))
    return inputs, (inputs.flatten(1) @ weights).argmax(dim=1)


def check_contract(family: Any) -> None:
    """The attributes the registry needs are there and well formed."""
    missing = [attr for attr in FAMILY_ATTRIBUTES if not hasattr(family, attr)]
    if missing:
        raise ConformanceError(f"{type(family).__name__} lacks {', '.join(missing)}")
    if not isinstance(family.name, str) or not family.name.isidentifier():
        raise ConformanceError(f"name {family.name!r} is not an identifier such as 'mixer'")
    kinds = family.task_kinds
    if isinstance(kinds, str) or not kinds or not set(kinds) <= set(TASK_KINDS):
        raise ConformanceError(f"task_kinds={kinds!r}; expected a non-empty tuple from {TASK_KINDS}")


def sample_configs(family: Any, task: Task, count: int, seed: int = 0) -> list[Config]:
    """``count`` configs from one random-sampler study, which also catches a parameter whose
    choices change between trials (Optuna refuses that)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(count):
        trial = study.ask()
        try:
            params = sample_params(family, trial, task)
        except PluginError as exc:
            raise ConformanceError(str(exc)) from None
        configs.append(Config(dict(trial.params), params))
        study.tell(trial, 0.0)
    return configs


def _build(family: Any, config: Config, task: Task, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = family.build(config.params, task)
    if not isinstance(model, nn.Module):
        raise ConformanceError(f"build returned {type(model).__name__}, expected a torch.nn.Module "
                               f"(params {config.params})")
    return model


def check_build_and_forward(family: Any, task: Task, configs: list[Config]) -> None:
    """Every config builds a module whose logits are ``[B, num_classes]`` and finite."""
    inputs = example_inputs(task, BATCH)
    for config in configs:
        model = _build(family, config, task).eval()
        with torch.no_grad():
            logits = model(inputs)
        if tuple(logits.shape) != (BATCH, task.num_classes):
            raise ConformanceError(
                f"family {family.name}: expected logits [B, {task.num_classes}], got "
                f"[B, {', '.join(map(str, logits.shape[1:]))}] for params {config.params}")
        if not torch.isfinite(logits).all():
            raise ConformanceError(f"non-finite logits for params {config.params}")


def check_flops(family: Any, task: Task, configs: list[Config]) -> None:
    """FLOPs per sample are counted and positive for every config."""
    inputs = example_inputs(task, 1)
    for config in configs:
        if flops_per_sample(_build(family, config, task), inputs) <= 0:
            raise ConformanceError(f"0 FLOPs counted for params {config.params}; the model must "
                                   "compute with torch operations the FLOP counter can see")


def check_size_range(family: Any, task: Task, min_ratio: float) -> None:
    """The space spans small to large models: of SIZE_RANGE_CONFIGS sampled, the largest has
    ``min_ratio``x the parameters of the smallest."""
    configs = sample_configs(family, task, SIZE_RANGE_CONFIGS, seed=1)
    sizes = [count_parameters(_build(family, config, task)) for config in configs]
    if max(sizes) < min_ratio * max(min(sizes), 1):
        raise ConformanceError(f"sampled models span {min(sizes):,} to {max(sizes):,} parameters, "
                               f"less than {min_ratio:g}x; widen the search space")


def check_replay(family: Any, task: Task, configs: list[Config]) -> None:
    """A model rebuilt from stored params alone is the same model."""
    for config in configs:
        replayed = replay_params(family, config.stored, task)
        if replayed != config.params:
            raise ConformanceError(f"replaying stored params {config.stored} gave {replayed}, "
                                   f"not {config.params}; search_space must depend only on the trial")
        original = _build(family, config, task).state_dict()
        rebuilt = _build(family, Config(config.stored, replayed), task).state_dict()
        differing = [key for key in original
                     if key not in rebuilt or not torch.equal(original[key], rebuilt[key])]
        if differing or set(rebuilt) != set(original):
            raise ConformanceError(f"rebuilding params {config.params} gave different weights or "
                                   f"shapes for {differing or sorted(set(rebuilt) ^ set(original))}")


def smallest(family: Any, task: Task, configs: list[Config]) -> Config:
    """The config with the fewest parameters: the cheapest one to train in a check."""
    return min(configs, key=lambda config: count_parameters(_build(family, config, task)))


def check_training_lowers_loss(family: Any, task: Task, config: Config, samples: int = 512,
                               batch_size: int = 32) -> None:
    """One short epoch of Adam lowers the training loss, with finite losses throughout."""
    inputs, labels = learnable_batch(task, samples)
    model = _build(family, config, task)

    def loss_now() -> float:
        model.eval()
        with torch.no_grad():
            return functional.cross_entropy(model(inputs), labels).item()

    before = loss_now()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for start in range(0, samples, batch_size):
        loss = functional.cross_entropy(model(inputs[start:start + batch_size]),
                                        labels[start:start + batch_size])
        if not torch.isfinite(loss):
            raise ConformanceError(f"non-finite training loss for params {config.params}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = loss_now()
    if not after < before:
        raise ConformanceError(f"one epoch did not lower the loss ({before:.4f} -> {after:.4f}) "
                               f"for params {config.params}")


@dataclass(frozen=True)
class CheckResult:
    check: str
    kind: str
    error: str | None

    @property
    def passed(self) -> bool:
        return self.error is None


def run_checks(family: Any, tasks: dict[str, Task] | None = None, n_configs: int = 3,
               min_size_ratio: float = 10.0) -> list[CheckResult]:
    """Every check on every task kind the family declares, collecting failures instead of raising."""
    tasks = tasks or DEFAULT_TASKS

    def attempt(name: str, kind: str, check: Callable[[], None]) -> CheckResult:
        try:
            check()
        except Exception as exc:  # a broken plugin may raise anything; report it, go on
            return CheckResult(name, kind, f"{type(exc).__name__}: {exc}")
        return CheckResult(name, kind, None)

    contract = attempt("contract", "-", lambda: check_contract(family))
    if not contract.passed:
        return [contract]
    results = [contract]
    for kind in family.task_kinds:
        task = tasks[kind]
        configs: list[Config] = []
        sampled = attempt("search space", kind, lambda: configs.extend(sample_configs(family, task, n_configs)))
        results.append(sampled)
        if not sampled.passed:
            continue
        results += [
            attempt("build and forward", kind, lambda: check_build_and_forward(family, task, configs)),
            attempt("FLOPs", kind, lambda: check_flops(family, task, configs)),
            attempt("size range", kind, lambda: check_size_range(family, task, min_size_ratio)),
            attempt("replay", kind, lambda: check_replay(family, task, configs)),
            attempt("training", kind, lambda: check_training_lowers_loss(
                family, task, smallest(family, task, configs))),
        ]
    return results
