"""Grouped multivariate TPE that samples only the parameter groups a trial asks for.

In a search over families every trial suggests the shared parameters (family, training) and its own
family's, so the study's parameters fall into groups that always appear together. Optuna's grouped
TPE (``TPESampler(multivariate=True, group=True)``) samples every group when the trial first
suggests, and works the groups out again from every finished trial each time: most of that is
thrown away, since a trial uses its own family's groups alone (benchmarks/search_efficiency.py
prints both side by side, at 1,000 finished trials). Here the groups are kept across trials (a
finished trial's parameters never change), and a group is sampled the first time the trial asks
for one of its parameters, by Optuna's multivariate TPE over that group's parameters jointly, as
Optuna's grouped TPE does per group.

Built on Optuna's public sampler API by composition: a BaseSampler holding a TPESampler, whose
``sample_relative`` samples one group, and whose ``sample_independent``, ``before_trial`` and
``after_trial`` serve the rest, so any Optuna release that keeps that API keeps this sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

Group = dict[str, BaseDistribution]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class ParamGroups:
    """The study's parameters split into groups that appear in exactly the same finished trials.

    Each finished trial refines the split once; distributions are the ones first seen.
    """

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self._seen: set[int] = set()  # numbers of the finished trials the split has taken in
        self._study: str | None = None

    def update(self, study: optuna.Study) -> list[Group]:
        if self._study != study.study_name:
            self.groups, self._seen, self._study = [], set(), study.study_name
        for trial in study.get_trials(deepcopy=False, states=FINISHED):
            if trial.number not in self._seen:
                self._seen.add(trial.number)
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


class GroupTPESampler(optuna.samplers.BaseSampler):
    """Multivariate TPE over each group of parameters that appear together, sampled on demand
    (see module). ``seed`` and ``kwargs`` go to the TPESampler that samples each group."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        # group=False: the groups are worked out here; TPE samples the one group it is given.
        self._tpe = optuna.samplers.TPESampler(multivariate=True, group=False, seed=seed, **kwargs)
        self._groups = ParamGroups()
        self._grouping = threading.Lock()  # trials sampled in threads (Study.optimize with n_jobs)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        with self._grouping:
            return {name: dist for group in self._groups.update(study)
                    for name, dist in group.items() if not dist.single()}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        with self._grouping:
            groups = [{name: dist for name, dist in group.items() if name in search_space}
                      for group in self._groups.groups]
        # Names of the space no finished trial has yet (a space given without inferring it first,
        # as Optuna's sampler contract allows) are sampled together, as one more group.
        grouped = {name for group in groups for name in group}
        groups.append({name: dist for name, dist in search_space.items() if name not in grouped})
        return _SampledOnDemand([group for group in groups if group],
                                lambda group: self._tpe.sample_relative(study, trial, group))

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)
