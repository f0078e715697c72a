"""Budgets: limits on a config's cost, checked before it trains and fed to the sampler as constraints.

A config over budget is never trained. Its trial ends COMPLETE but infeasible: every sampler a
study file can name learns from a COMPLETE trial's constraint values (NSGA-II and GP read no other
state), and Optuna's ``best_trials`` leaves infeasible trials off the front.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import optuna
import torch

from automl.config import BudgetConfig
from automl.plugin.build import build_model
from automl.plugin.contract import Family
from automl.plugin.space import random_study, sample_params
from automl.plugin.task import Task
from automl.storage.schema import FLOPS, OBJECTIVES, PARAMS, TrialAttr
from automl.training.efficiency import Efficiency, count_parameters, flops_per_sample

# Each budget key and the trial user attr (also the Efficiency field) it limits.
LIMITED = {spec.budget_key: spec.attr for spec in OBJECTIVES.values() if spec.budget_key}
# Budget keys a survey can check without timing anything.
COUNTED = (PARAMS.budget_key, FLOPS.budget_key)


def constraint_values(costs: dict[str, float], limits: dict[str, float]) -> dict[str, float]:
    """log10(cost / limit) per budget key: above 0 means over budget, by that many orders of magnitude.

    A log ratio keeps FLOPs and milliseconds on one scale when a sampler sums the violations.
    """
    return {key: math.log10(max(costs[LIMITED[key]], 1e-12) / limit) for key, limit in limits.items()}


def over_budget_reasons(costs: dict[str, float], limits: dict[str, float]) -> list[str]:
    """One phrase per exceeded limit, naming the metric, its value and the budget key."""
    return [f"{LIMITED[key]} {costs[LIMITED[key]]:.4g} > {key} {limit:.4g}"
            for key, limit in limits.items() if costs[LIMITED[key]] > limit]


def screen(trial: optuna.Trial, budget: BudgetConfig, efficiency: Efficiency) -> list[str]:
    """Record the trial's constraint values; return why it is over budget (empty: within budget)."""
    limits = budget.limits()
    costs: dict[str, float] = {LIMITED[key]: float(getattr(efficiency, LIMITED[key])) for key in limits}
    for key, value in constraint_values(costs, limits).items():
        trial.set_constraint(key, value)
    reasons = over_budget_reasons(costs, limits)
    if reasons:
        trial.set_user_attr(TrialAttr.OVER_BUDGET, "; ".join(reasons))
    return reasons


@dataclass(frozen=True)
class DrawnCost:
    """What a drawn config costs, counted without training: FLOPs per sample and parameters."""

    flops: float
    n_params: int


def drawn_cost(family: Family, trial: optuna.trial.BaseTrial, task: Task, example: torch.Tensor) -> DrawnCost | None:
    """Draw a config of ``family`` through ``trial``, build it (checked on ``example[:2]``) and count
    its cost on ``example[:1]``; None when the plugin raises on it (its trials fail with the reason)."""
    try:
        with torch.random.fork_rng():
            model = build_model(family, sample_params(family, trial, task), task, example[:2])
        return DrawnCost(flops_per_sample(model, example[:1]), count_parameters(model))
    except Exception:  # noqa: BLE001 - a plugin may raise anything; its trials will say what
        return None


@dataclass(frozen=True)
class SpaceSurvey:
    """How much of a search space a budget rules out, from configs drawn at random."""

    sampled: int
    over: dict[str, int]  # budget key -> configs over that limit
    failed: dict[str, int] = field(default_factory=dict)  # family -> drawn configs it could not build or run
    cut_short: bool = False  # the deadline came before every draw was surveyed

    def warnings(self, threshold: float = 0.5) -> list[str]:
        over = [f"[budget] {key}: {count} of {self.sampled} randomly drawn configs "
                f"({count / self.sampled:.0%}) are over budget; most trials would be rejected "
                f"untrained. Raise {key}, or narrow [search] families to cheaper ones"
                for key, count in self.over.items() if count > threshold * self.sampled]
        failed = [f"family {name!r}: {count} of the configs drawn to survey the budget failed to build or run "
                  "a forward pass; its trials on such configs will fail and store why"
                  for name, count in self.failed.items() if count]
        return over + failed


def survey_space(families: dict[str, Family], task: Task, example: torch.Tensor, budget: BudgetConfig,
                 per_family: int = 8, seed: int = 0, deadline: float | None = None) -> SpaceSurvey:
    """Draw ``per_family`` configs of each family, build them and count params and FLOPs.

    Counting FLOPs takes tens of milliseconds per model, so a few draws per family keep the survey
    near a second; latency is left out, timing every draw would take far longer. A config the
    plugin cannot build or run is counted per family in ``failed``, not surveyed. No draw starts
    after ``deadline`` (``time.time()`` seconds): the survey is then cut short.
    """
    limits = {key: limit for key, limit in budget.limits().items() if key in COUNTED}
    over = dict.fromkeys(limits, 0)
    failed = dict.fromkeys(families, 0)
    sampled = 0
    if not limits:
        return SpaceSurvey(0, over)
    task_example = example[:2].cpu()
    study = random_study(seed)
    for name, family in families.items():
        for _ in range(per_family):
            if deadline is not None and time.time() >= deadline:
                return SpaceSurvey(sampled, over, failed, cut_short=True)
            trial = study.ask()
            cost = drawn_cost(family, trial, task, task_example)
            study.tell(trial, 0.0)
            if cost is None:
                failed[name] += 1
                continue
            costs = {PARAMS.budget_key: cost.n_params, FLOPS.budget_key: cost.flops}
            for key, limit in limits.items():
                over[key] += costs[key] > limit
            sampled += 1
    return SpaceSurvey(sampled, over, failed)
