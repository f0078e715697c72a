"""Grouped multivariate TPE that samples only the parameter groups a trial asks for.

In a search over families every trial suggests the shared parameters (family, training) and its own
family's, so the study's parameters fall into groups that always appear together. Optuna's grouped
TPE (``TPESampler(multivariate=True, group=True)``) samples every group when the trial first
suggests, and works the groups out again from every finished trial each time: most of that is
thrown away, since a trial uses its own family's groups alone. At 1,000 trials this was most of
the sampler's time (benchmarks/search_efficiency.py prints both side by side). Here the groups are
kept across trials (a finished trial's parameters never change), and a group is sampled the first
time the trial asks for one of its parameters, by TPE over that group's parameters jointly, as
Optuna's grouped TPE does per group.

TPE's model of a group (its split of the trials into good and bad, and a Parzen estimator of each)
is fit again for every trial until the study has 100 finished trials, and after that once it has
5% more finished trials than at the last fit, the model being reused in between. One more trial
among hundreds barely moves the estimators, while a fit reads every trial's parameters in Python:
at 1,000 trials that was most of the sampler's time. Each trial still draws its own candidates and
scores them on the model. Optuna has no such schedule: it fits at every sample. (Below 100 trials,
a fit is cheap, and reusing one made a toy study measurably worse on its lr objective.)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from automl.storage._optuna import cached_trials, study_id_of, trial_id_of

Group = dict[str, BaseDistribution]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# From this many finished trials on, a model is fit again only once they have grown by REFIT_GROWTH.
REUSE_FROM = 100
REFIT_GROWTH = 0.05


class ParamGroups:
    """The study's parameters split into groups that appear in exactly the same finished trials.

    Each finished trial refines the split once; distributions are the ones first seen.
    """

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self._seen: set[int] = set()
        self._study_id: int | None = None

    def update(self, study: optuna.Study) -> list[Group]:
        if self._study_id != study_id_of(study):
            self.groups, self._seen, self._study_id = [], set(), study_id_of(study)
        for trial in _finished(study):
            if trial_id_of(trial) not in self._seen:
                self._seen.add(trial_id_of(trial))
                self._refine(trial.distributions)
        return self.groups

    def _refine(self, distributions: dict[str, BaseDistribution]) -> None:
        new = dict(distributions)
        refined: list[Group] = []
        for group in self.groups:
            inside = {name: dist for name, dist in group.items() if name in distributions}
            outside = {name: dist for name, dist in group.items() if name not in distributions}
            refined += [part for part in (inside, outside) if part]
            for name in inside:
                del new[name]
        self.groups = refined + ([new] if new else [])


class _SampledOnDemand(dict[str, Any]):
    """Relative params that fill in one group at a time: when the trial first asks for one of its
    names (Optuna's Trial only tests ``name in`` and reads ``[name]``)."""

    def __init__(self, groups: list[Group], sample: Callable[[Group], dict[str, Any]]) -> None:
        super().__init__()
        self._pending = {name: group for group in groups for name in group}
        self._sample = sample

    def _fill(self, name: str) -> None:
        group = self._pending.get(name)
        if group is not None:
            for member in group:
                del self._pending[member]
            self.update(self._sample(group))

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._fill(name)
        return super().__contains__(name)

    def __getitem__(self, name: str) -> Any:
        self._fill(name)
        return super().__getitem__(name)


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return cached_trials(study, FINISHED)


@dataclass
class _Model:
    below: Any  # Optuna's Parzen estimators of the good and the bad trials
    above: Any
    refit_at: int  # the number of finished trials at which to fit again


class GroupTPESampler(optuna.samplers.TPESampler):
    """Multivariate TPE over each group of parameters that appear together, sampled on demand,
    with each group's model fit again only as the study grows by 5% (see module)."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        # group=False: this class does the grouping; TPE then samples the one group it is given.
        super().__init__(multivariate=True, group=False, seed=seed, **kwargs)
        self._groups = ParamGroups()
        self._models: dict[tuple[int, frozenset[tuple[str, BaseDistribution]]], _Model] = {}
        self._fitted: list[Any] = []  # the estimators built by the fit in progress
        # Trials sampled in threads (Study.optimize with n_jobs) take turns: a fit collects its
        # estimators in _fitted, and models are shared.
        self._fitting = threading.Lock()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {name: dist for group in self._groups.update(study)
                for name, dist in group.items() if not dist.single()}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        groups = [{name: dist for name, dist in group.items() if name in search_space}
                  for group in self._groups.groups]
        # Names of the space no finished trial has yet (a space given without inferring it first,
        # as Optuna's sampler contract allows) are sampled together, as one more group.
        grouped = {name for group in groups for name in group}
        groups.append({name: dist for name, dist in search_space.items() if name not in grouped})
        sample_group = super().sample_relative
        return _SampledOnDemand([group for group in groups if group],
                                lambda group: sample_group(study, trial, group))

    # Optuna's TPE samples a space (a group, or one parameter on its own) through _sample, which
    # fits the model with _build_parzen_estimator and then draws from it.
    def _sample(self, study: optuna.Study, trial: FrozenTrial,
                search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        with self._fitting:
            return self._sample_group(study, trial, search_space)

    def _sample_group(self, study: optuna.Study, trial: FrozenTrial,
                      search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        key = (study_id_of(study), frozenset(search_space.items()))
        finished = len(_finished(study))
        model = self._models.get(key)
        if model is None or finished >= model.refit_at:
            self._fitted = []
            params = super()._sample(study, trial, search_space)
            below, above = self._fitted
            reuse = math.ceil(finished * REFIT_GROWTH) if finished >= REUSE_FROM else 1
            self._models[key] = _Model(below, above, refit_at=finished + reuse)
            return params
        candidates = model.below.sample(self._rng.rng, self._n_ei_candidates)
        best = self._compare(candidates, self._compute_acquisition_func(candidates, model.below, model.above))
        return {name: dist.to_external_repr(best[name]) for name, dist in search_space.items()}

    def _build_parzen_estimator(self, *args: Any, **kwargs: Any) -> Any:
        estimator = super()._build_parzen_estimator(*args, **kwargs)
        self._fitted.append(estimator)
        return estimator
