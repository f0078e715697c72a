"""Checks that a family or a dataset keeps the plugin contract; shared by automl.testing and
`automl plugins check`.

The contract's own checks (``automl.plugin.contract.check_family`` / ``check_dataset``, which the
registry runs too, and ``automl.plugin.build.build_model``) are run here as they are; the checks
added here go further: finite logits, counted FLOPs, a real range of sizes, replay, training that
learns from the inputs, datasets that load the same arrays twice and split into a task. Each
raises ConformanceError saying what broke, with which params or options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping
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
from automl.errors import AutomlError, plural
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
# The training check's data: samples, and samples per optimizer step.
TRAIN_SAMPLES = 512
TRAIN_BATCH = 32
# Building is cheap next to training, so the size range is judged on a larger sample.
SIZE_RANGE_CONFIGS = 24
# How far each class's pattern stands out of the noise in learnable_batch (its standard deviation,
# the noise's being 1): enough that the smallest built-in models learn it within an epoch or two.
PATTERN_SCALE = 2.0


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


@dataclass(frozen=True)
class FamilySettings:
    """What the family checks run with. ``automl plugins check`` runs these defaults; a
    ``FamilyConformance`` subclass overrides any of them with a class attribute of the same name."""

    # The task each kind is checked on.
    tasks: Mapping[str, Task] = dataclasses.field(default_factory=lambda: DEFAULT_TASKS)
    # Configs sampled (seed 0) for the build, FLOPs and replay checks; the smallest of them trains.
    n_configs: int = 8
    # How many times more parameters the largest of SIZE_RANGE_CONFIGS sampled models must have.
    min_size_ratio: float = 10.0
    # The training check's budget: epochs of Adam at this learning rate over TRAIN_SAMPLES samples.
    max_epochs: int = 5
    learning_rate: float = 1e-3


def learnable_batch(task: Task, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` inputs and balanced labels that a model can learn from the inputs alone: each class
    adds its own fixed random pattern to standard normal noise (rescaled to unit variance), or,
    for tokens tasks, puts its own token id (``2 + label``, below ``vocab_size``) at a random half
    of the positions."""
    generator = torch.Generator().manual_seed(seed + 1)
    labels = torch.randperm(count, generator=generator) % task.num_classes
    inputs = example_inputs(task, count, seed)
    if task.kind == "tokens":
        marked = torch.rand(inputs.shape, generator=generator) < 0.5
        assert task.vocab_size is not None  # Task requires one of a tokens task
        marks = 2 + labels % (task.vocab_size - 2)  # past padding (0) and unknown (1)
        return torch.where(marked, marks[:, None].expand_as(inputs), inputs), labels
    patterns = torch.randn(task.num_classes, *task.input_shape, generator=generator)
    return (inputs + PATTERN_SCALE * patterns[labels]) / math.sqrt(1 + PATTERN_SCALE**2), labels


def label_entropy(labels: torch.Tensor) -> float:
    """Entropy (nats) of the labels' class frequencies: the lowest cross-entropy any prediction
    that ignores the inputs can reach on them (predicting the frequencies themselves)."""
    frequencies = torch.bincount(labels).double() / len(labels)
    frequencies = frequencies[frequencies > 0]
    return float(-(frequencies * frequencies.log()).sum())


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


def _training_mode_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Cross-entropy of ``model`` in training mode, as the optimizer sees it: BatchNorm normalizes
    with the batch's statistics, not running ones that lag behind the weights, and dropout draws
    the same masks at every call (fixed seed), so two calls differ only by what training changed."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        return functional.cross_entropy(model.train()(inputs), labels).item()


def check_training_learns(family: Family, task: Task, config: Config,
                          max_epochs: int = FamilySettings.max_epochs,
                          learning_rate: float = FamilySettings.learning_rate) -> None:
    """Training with Adam lowers the training-mode loss on learnable_batch below its label entropy
    within ``max_epochs`` epochs (batches of TRAIN_BATCH; it stops at the first epoch that does),
    with finite losses throughout.

    The label entropy is the lowest loss a model can reach without looking at its inputs, so a
    model whose forward ignores them, or whose parameters training cannot move, fails however
    long it trains; the loss is measured in training mode (see _training_mode_loss) so that
    BatchNorm's running statistics do not decide it.
    """
    inputs, labels = learnable_batch(task, TRAIN_SAMPLES)
    model = _build(family, config, task)
    before, floor = _training_mode_loss(model, inputs, labels), label_entropy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    after = before
    for _ in range(max_epochs):
        model.train()
        for start in range(0, TRAIN_SAMPLES, TRAIN_BATCH):
            loss = functional.cross_entropy(model(inputs[start:start + TRAIN_BATCH]),
                                            labels[start:start + TRAIN_BATCH])
            if not torch.isfinite(loss):
                raise ConformanceError(f"non-finite training loss for params {config.params}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        after = _training_mode_loss(model, inputs, labels)
        if after < min(before, floor):
            return
    raise ConformanceError(
        f"{plural(max_epochs, 'epoch')} of Adam (lr {learning_rate:g}) took the training loss from {before:.4f} to "
        f"{after:.4f}, not below {floor:.4f}, the loss of predicting the class frequencies without looking at "
        f"the inputs, for params {config.params}; check that forward uses its input and that gradients reach "
        "the parameters (or raise max_epochs / learning_rate in your FamilyConformance subclass)")


@dataclass(frozen=True)
class CheckResult:
    check: str
    kind: str
    error: str | None

    @property
    def passed(self) -> bool:
        return self.error is None


# The checks run on each task kind, in order, after its configs are sampled: (family, task, the
# sampled configs, settings). run_checks and automl.testing.FamilyConformance both run this table.
TaskCheck = Callable[[Family, Task, list[Config], FamilySettings], None]
TASK_CHECKS: dict[str, TaskCheck] = {
    "build and forward": lambda family, task, configs, _: check_build_and_forward(family, task, configs),
    "FLOPs": lambda family, task, configs, _: check_flops(family, task, configs),
    "size range": lambda family, task, _, settings: check_size_range(family, task, settings.min_size_ratio),
    "replay": lambda family, task, configs, _: check_replay(family, task, configs),
    "training": lambda family, task, configs, settings: check_training_learns(
        family, task, smallest(family, task, configs), settings.max_epochs, settings.learning_rate),
}


def run_checks(family: Family, settings: FamilySettings | None = None) -> list[CheckResult]:
    """Every check on every task kind the family declares, collecting failures instead of raising."""
    settings = settings or FamilySettings()
    contract = _attempt("contract", "-", lambda: check_family_contract(family))
    if not contract.passed:
        return [contract]
    results = [contract]
    for kind in family.task_kinds:
        results += _check_task(family, kind, settings)
    return results


def _check_task(family: Family, kind: str, settings: FamilySettings) -> list[CheckResult]:
    """The checks on one task kind; only the search-space check when the space cannot be sampled."""
    task = settings.tasks[kind]
    configs: list[Config] = []
    sampled = _attempt("search space", kind,
                       lambda: configs.extend(sample_configs(family, task, settings.n_configs)))
    if not sampled.passed:
        return [sampled]
    return [sampled, *(_attempt(name, kind, functools.partial(check, family, task, configs, settings))
                       for name, check in TASK_CHECKS.items())]


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
