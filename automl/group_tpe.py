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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

Group = dict[str, BaseDistribution]


class ParamGroups:
    """The study's parameters split into groups that appear in exactly the same finished trials.

    Each finished trial refines the split once; distributions are the ones first seen.
    """

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self._seen: set[int] = set()
        self._study_id: int | None = None

    def update(self, study: optuna.Study) -> list[Group]:
        if self._study_id != study._study_id:
            self.groups, self._seen, self._study_id = [], set(), study._study_id
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if trial._trial_id not in self._seen:
                self._seen.add(trial._trial_id)
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


class _SampledOnDemand(dict):
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
        self._fill(name)  # type: ignore[arg-type]
        return super().__contains__(name)

    def __getitem__(self, name: str) -> Any:
        self._fill(name)
        return super().__getitem__(name)


class GroupTPESampler(optuna.samplers.TPESampler):
    """Multivariate TPE over each group of parameters that appear together, sampled on demand."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        # group=False: this class does the grouping; TPE then samples the one group it is given.
        super().__init__(multivariate=True, group=False, seed=seed, **kwargs)
        self._groups = ParamGroups()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {name: dist for group in self._groups.update(study)
                for name, dist in group.items() if not dist.single()}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        groups = [{name: dist for name, dist in group.items() if name in search_space}
                  for group in self._groups.groups]
        sample_group = super().sample_relative
        return _SampledOnDemand([group for group in groups if group],
                                lambda group: sample_group(study, trial, group))
