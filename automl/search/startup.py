"""A new study's first trials: configurations spread from cheap to expensive, the cheapest first.

A sampler starts from random draws (TPE's first ten trials), and a random draw over families can
be the most expensive configuration of the space: with a time budget, a front would come late, or
not at all. Here each family's space is drawn a few times, every draw is built and its FLOPs per
sample counted (tens of milliseconds each, no training), and the draws at evenly spaced FLOPs
quantiles from the cheapest up are queued first, cheapest first whatever their family: a front of
cheap models exists within seconds, and a family whose cheapest model is expensive still gets
its trials before the sampler takes over. The sampler learns from their results as from its own
draws.

A family may also name configurations known to do well on a task (an optional method
``starting_points(task)`` returning build params, e.g. the time-series FCN for sequences): they
are queued before the spread draws, within the study's [budget] limits. On a small archive task a
run's budget trains a handful of trials, and a known-good architecture among them first matters
more than which of the cheap draws come next.

The draws spread the architectures; their training hyperparameters are the centre of the study's
ranges (default_training), as SMAC's initial design starts from a default configuration. A random
learning rate at either end of its range can make the cheapest model of a family look useless
(on 28x28 digits, startup CNNs drawn at lr 1e-4 stayed under 0.3 validation accuracy), and with
a time budget the front it should have given early comes late. The sampler draws the training
hyperparameters from the first trial after these.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import optuna
import torch

from automl.config import BudgetConfig, TrainConfig
from automl.plugin.contract import Family
from automl.plugin.space import CheckedFixedTrial, random_study
from automl.plugin.task import Task
from automl.search.budget import drawn_cost
from automl.search.objective import sample_training
from automl.search.plan import StudyPlan
from automl.storage.schema import FAMILY_PARAM
from automl.storage.trial_queue import Queued

# Draws per family, and how many of them (at FLOPs quantiles 0, 1/n, 2/n, ...) are queued.
DRAWS = 8
PER_FAMILY = 3


def startup_configs(families: dict[str, Family], task: Task, example: torch.Tensor, train: TrainConfig,
                    seed: int, budget: BudgetConfig | None = None, per_family: int = PER_FAMILY,
                    deadline: float | None = None) -> list[dict[str, Any]]:
    """Stored-params dicts (``{"family": ..., "FAMILY.KEY": ..., "train.KEY": ...}``) to queue first,
    cheapest first; ``example`` is one or more inputs of ``task``'s shape. Draws over a ``budget``
    limit on FLOPs or parameters are left out; the family's known-good configs (known_good) come
    first, in the families' order. No draw starts after ``deadline`` (``time.time()``
    seconds): the families drawn by then give their picks."""
    max_flops = budget.max_flops if budget and budget.max_flops else math.inf
    max_params = budget.max_params if budget and budget.max_params else math.inf
    study = random_study(seed)
    first: list[dict[str, Any]] = []
    chosen: list[tuple[float, dict[str, Any]]] = []
    for name, family in families.items():
        draws = []
        for _ in range(DRAWS):
            if deadline is not None and time.time() >= deadline:
                break
            trial = study.ask()
            cost = drawn_cost(family, trial, task, example)
            flops = math.inf if cost is None else cost.flops
            if cost is None or (cost.flops <= max_flops and cost.n_params <= max_params):
                draws.append((flops, {FAMILY_PARAM: name, **trial.params, **default_training(train)}))
            study.tell(trial, 0.0)
        for params in known_good(family, task):
            fixed = CheckedFixedTrial({f"{name}.{key}": value for key, value in params.items()})
            cost = drawn_cost(family, fixed, task, example)
            if cost is not None and not fixed.outside and cost.flops <= max_flops and cost.n_params <= max_params:
                first.append({FAMILY_PARAM: name, **fixed.params, **default_training(train)})
        built = sorted((pair for pair in draws if math.isfinite(pair[0])), key=lambda pair: pair[0])
        if built:
            picks = sorted({round(i * (len(built) - 1) / per_family) for i in range(per_family)})
            chosen += [built[index] for index in picks]
        elif draws:
            # A family that fails to build gets one trial, first: it fails at once and records why.
            chosen.append((-math.inf, draws[0][1]))
    return first + [config for _, config in sorted(chosen, key=lambda pair: pair[0])]


def known_good(family: Family, task: Task) -> list[dict[str, Any]]:
    """The build params ``family`` names as known to do well on ``task`` (its optional
    ``starting_points(task)``); none when it names none."""
    starting_points = getattr(family, "starting_points", None)
    return list(starting_points(task)) if callable(starting_points) else []


class _CentreTrial:
    """Answers sample_training's suggestions with the centre of each range, and keeps them as params.

    Optuna has no trial that suggests a distribution's centre (FixedTrial needs the values).
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.params[name] = math.sqrt(low * high) if log else (low + high) / 2
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        numbers = all(isinstance(choice, int | float) for choice in choices)
        self.params[name] = sorted(choices)[(len(choices) - 1) // 2] if numbers else choices[0]
        return self.params[name]


def default_training(train: TrainConfig) -> dict[str, Any]:
    """Stored training params at the centre of ``train``'s ranges: the geometric mean of a
    log-scale range, the middle of numeric choices in ascending order, else the first choice."""
    centre = _CentreTrial()
    sample_training(centre, train)  # type: ignore[arg-type]
    return centre.params


def first_configs(plan: StudyPlan, study: optuna.Study, deadline: float | None = None) -> list[Queued]:
    """The startup configurations to queue for ``study``; none once it has trials (a resumed study)."""
    if study.get_trials(deepcopy=False):
        return []
    config = plan.config
    return [Queued(params, {}) for params in startup_configs(plan.families, plan.data.task, plan.data.train.x,
                                                            config.train, config.seed, config.budget,
                                                            deadline=deadline)]
