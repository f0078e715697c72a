"""Checks that a family or a dataset keeps the plugin contract; shared by automl.testing and
`automl plugins check`.

The contract's own checks (``automl.plugin.contract.check_family`` / ``check_dataset``, which the
registry runs too, and ``automl.plugin.build.build_model``) are run here as they are; the checks
added here go further: finite logits, counted FLOPs, a real range of sizes, replay, training,
datasets that load the same arrays twice and split into a task. Each raises ConformanceError
saying what broke, with which params or options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import torch
from torch import nn
from torch.nn import functional

from automl.config import DataConfig
from automl.data.prepare import split_arrays
from automl.errors import AutomlError
from automl.plugin.build import build_model, example_inputs
from automl.plugin.contract import BASE_DIR, Dataset, DatasetOptions, Family, LabeledArrays, check_dataset, check_family
from automl.plugin.space import random_study, replay_params, sample_params
from automl.plugin.task import Task
from automl.training.efficiency import count_parameters, flops_per_sample

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
    """A family or dataset broke the contract; the message says how, with which params or options."""


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """automl's own errors (PluginError, UsageError), raised as the failed check they are."""
    try:
        yield
    except AutomlError as exc:
        raise ConformanceError(str(exc)) from None


@dataclass(frozen=True)
class Config:
    """One sampled configuration: the study's stored params and the dict ``build`` receives."""

    stored: dict[str, Any]
    params: dict[str, Any]


def learnable_batch(task: Task, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs whose labels a model can learn: a fixed random linear map of the input (of the
    first token, for tokens tasks)."""
    inputs = example_inputs(task, count, seed)
    if task.kind == "tokens":
        return inputs, inputs[:, 0] % task.num_classes
    weights = torch.randn(math.prod(task.input_shape), task.num_classes,
                          generator=torch.Generator().manual_seed(seed + 1))
    return inputs, (inputs.flatten(1) @ weights).argmax(dim=1)


def check_family_contract(family: Any) -> None:
    """The members of ``automl.Family`` are there and well formed, as the registry checks them."""
    with _reported():
        check_family(family)


def sample_configs(family: Family, task: Task, count: int, seed: int = 0) -> list[Config]:
    """``count`` configs from one random-sampler study, which also catches a parameter whose
    choices change between trials (Optuna refuses that)."""
    study = random_study(seed)
    configs = []
    for _ in range(count):
        trial = study.ask()
        with _reported():
            params = sample_params(family, trial, task)
        configs.append(Config(dict(trial.params), params))
        study.tell(trial, 0.0)
    return configs


def _build(family: Family, config: Config, task: Task, seed: int = 0) -> nn.Module:
    """The checked module (automl.plugin.build), with weights fixed by ``seed``."""
    with torch.random.fork_rng(), _reported():
        torch.manual_seed(seed)
        return build_model(family, config.params, task, example_inputs(task, BATCH))


def check_build_and_forward(family: Family, task: Task, configs: list[Config]) -> None:
    """Every config builds a module whose logits are ``[B, num_classes]`` and finite."""
    inputs = example_inputs(task, BATCH)
    for config in configs:
        model = _build(family, config, task).eval()
        with torch.no_grad():
            logits = model(inputs)
        if not torch.isfinite(logits).all():
            raise ConformanceError(f"family {family.name}: non-finite logits for params {config.params}")


def check_flops(family: Family, task: Task, configs: list[Config]) -> None:
    """FLOPs per sample are counted and positive for every config."""
    inputs = example_inputs(task, 1)
    for config in configs:
        if flops_per_sample(_build(family, config, task), inputs) <= 0:
            raise ConformanceError(f"0 FLOPs counted for params {config.params}; the model must "
                                   "compute with torch operations the FLOP counter can see")


def check_size_range(family: Family, task: Task, min_ratio: float) -> None:
    """The space spans small to large models: of SIZE_RANGE_CONFIGS sampled, the largest has
    ``min_ratio``x the parameters of the smallest."""
    configs = sample_configs(family, task, SIZE_RANGE_CONFIGS, seed=1)
    sizes = [count_parameters(_build(family, config, task)) for config in configs]
    if max(sizes) < min_ratio * max(min(sizes), 1):
        raise ConformanceError(f"sampled models span {min(sizes):,} to {max(sizes):,} parameters, "
                               f"less than {min_ratio:g}x; widen the search space")


def check_replay(family: Family, task: Task, configs: list[Config]) -> None:
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


def smallest(family: Family, task: Task, configs: list[Config]) -> Config:
    """The config with the fewest parameters: the cheapest one to train in a check."""
    return min(configs, key=lambda config: count_parameters(_build(family, config, task)))


def check_training_lowers_loss(family: Family, task: Task, config: Config, samples: int = 512,
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


def run_checks(family: Family, tasks: dict[str, Task] | None = None, n_configs: int = 3,
               min_size_ratio: float = 10.0) -> list[CheckResult]:
    """Every check on every task kind the family declares, collecting failures instead of raising."""
    tasks = tasks or DEFAULT_TASKS
    contract = _attempt("contract", "-", lambda: check_family_contract(family))
    if not contract.passed:
        return [contract]
    results = [contract]
    for kind in family.task_kinds:
        results += _check_task(family, kind, tasks[kind], n_configs, min_size_ratio)
    return results


def _check_task(family: Family, kind: str, task: Task, n_configs: int, min_size_ratio: float) -> list[CheckResult]:
    """The checks on one task kind; only the search-space check when the space cannot be sampled."""
    configs: list[Config] = []
    sampled = _attempt("search space", kind, lambda: configs.extend(sample_configs(family, task, n_configs)))
    if not sampled.passed:
        return [sampled]
    return [
        sampled,
        _attempt("build and forward", kind, lambda: check_build_and_forward(family, task, configs)),
        _attempt("FLOPs", kind, lambda: check_flops(family, task, configs)),
        _attempt("size range", kind, lambda: check_size_range(family, task, min_size_ratio)),
        _attempt("replay", kind, lambda: check_replay(family, task, configs)),
        _attempt("training", kind, lambda: check_training_lowers_loss(family, task, smallest(family, task, configs))),
    ]


def _attempt(name: str, kind: str, check: Callable[[], None]) -> CheckResult:
    try:
        check()
    except Exception as exc:  # a broken plugin may raise anything; report it, go on
        return CheckResult(name, kind, f"{type(exc).__name__}: {exc}")
    return CheckResult(name, kind, None)


# A key no dataset reads: its options model must refuse it, as a study file's typo would be.
UNKNOWN_OPTION = "no_such_option"


def check_dataset_contract(dataset: Any) -> None:
    """The members of ``automl.Dataset`` are there and well formed, as the registry checks them."""
    with _reported():
        check_dataset(dataset)


def _validate(dataset: Dataset[Any], raw: dict[str, Any], base_dir: Path) -> DatasetOptions:
    return dataset.options.model_validate(raw, context={BASE_DIR: base_dir})


def validate_options(dataset: Dataset[Any], raw: dict[str, Any], base_dir: Path) -> DatasetOptions:
    """``raw`` (a study file's ``[data]`` keys) as the dataset's options; relative paths are
    relative to ``base_dir``, as they are to a study file's folder."""
    try:
        return _validate(dataset, raw, base_dir)
    except pydantic.ValidationError as exc:
        raise ConformanceError(f"dataset {dataset.name}: options {raw} do not validate: {exc}") from None


def check_refuses_unknown_option(dataset: Dataset[Any], raw: dict[str, Any], base_dir: Path) -> None:
    """The options model refuses a key it does not declare, so a study file's typo is an error."""
    try:
        _validate(dataset, {**raw, UNKNOWN_OPTION: 1}, base_dir)
    except pydantic.ValidationError:
        return
    raise ConformanceError(f"dataset {dataset.name}: its options ({dataset.options.__name__}) accept the "
                           f"unknown key {UNKNOWN_OPTION!r}; keep DatasetOptions' extra='forbid' so a "
                           "misspelled [data] key is an error, not a silent default")


def load_arrays(dataset: Dataset[Any], options: DatasetOptions, seed: int) -> LabeledArrays:
    """``dataset.load(seed, options)``, checked as automl checks every dataset it loads."""
    arrays = dataset.load(seed, options)
    if not isinstance(arrays, LabeledArrays):
        raise ConformanceError(f"dataset {dataset.name}: load returned {type(arrays).__name__}, "
                               "expected automl.LabeledArrays")
    with _reported():
        return arrays.checked(f"dataset {dataset.name!r} with {options!r}")


def _same(first: Any, second: Any) -> bool:
    return np.array_equal(first, second) if isinstance(first, np.ndarray) else first == second


def check_same_seed_same_arrays(dataset: Dataset[Any], options: DatasetOptions, seed: int) -> None:
    """Two loads with one seed give equal arrays: a study and its retrained trials see the same data."""
    first, second = (load_arrays(dataset, options, seed) for _ in range(2))
    differing = [field.name for field in dataclasses.fields(LabeledArrays)
                 if not _same(getattr(first, field.name), getattr(second, field.name))]
    if differing:
        raise ConformanceError(f"dataset {dataset.name}: two loads with seed {seed} differ in "
                               f"{', '.join(differing)}; draw random numbers from the seed "
                               "(numpy.random.default_rng(seed))")


def check_splits_into_task(dataset: Dataset[Any], arrays: LabeledArrays, seed: int) -> Task:
    """The arrays split into train, validation and test as a study splits them (default sizes),
    every class in each, and define a task of at least 2 classes; returns that task."""
    with _reported():
        task = split_arrays(arrays, DataConfig(dataset=dataset.name), seed).task
    if task.num_classes < 2:
        raise ConformanceError(f"dataset {dataset.name}: {task.num_classes} class; a classification "
                               "task needs at least 2")
    return task
