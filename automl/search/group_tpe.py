"""Grouped multivariate TPE that samples only the parameter groups a trial asks for.

In a search over families every trial suggests the shared parameters (family, training) and its own
family's, so the study's parameters fall into groups that always appear together. Optuna's grouped
TPE (``TPESampler(multivariate=True, group=True)``) samples every group when the trial first
suggests, and works the groups out again from every finished trial each time: most of that is
thrown away, since a trial uses its own family's groups alone (benchmarks/search_efficiency.py
prints both side by side, at 1,000 finished trials). Here the groups are kept across trials (a
finished trial's parameters never change), and a group is sampled the first time the trial asks
for one of its parameters, by Optuna's multivariate TPE over that group's parameters jointly.

TPE reads the study's finished trials for every group it samples (and, with the constant liar,
which Optuna's TPE has on by default since 5.0, reads them from storage again each time and writes
each trial's sampled params back). Here they are read once: each finished trial is copied, as it
is first seen, into a history that holds only what TPE reads of it (state, values, parameters, how
far it is infeasible, the last intermediate value), and TPE samples every group from an in-memory
Study of that history (automl.search.tpe_history). Up to MAX_TRIALS_FITTED finished trials TPE
sees the same trials as on the study itself, so it samples the same; past it, the history is
capped (the study's best, the latest, a sample of the rest), so a sample costs the same however
large the study grows. Optuna's sampler API takes a Study, not a list of trials, and no library
keeps such a copy. The constant liar is off: it would need the running trials too, and workers
sample apart through their seeds.

Built on Optuna's public sampler API by composition: a BaseSampler holding a TPESampler, whose
``sample_relative`` samples one group, and whose ``sample_independent``, ``before_trial`` and
``after_trial`` serve the rest, so any Optuna release that keeps that API keeps this sampler.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from automl.search.tpe_history import MAX_TRIALS_FITTED, HistoryStorage, TPEHistory

Group = dict[str, BaseDistribution]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_UNUSED = optuna.samplers.RandomSampler()  # the sampler of the trials' in-memory copy, which nothing asks


class ParamGroups:
    """The study's parameters split into groups that appear in exactly the same finished trials,
    and those trials, as TPE reads them, capped (see module).

    Each finished trial refines the split once; distributions are the ones first seen.
    """

    def __init__(self, max_trials: int | None = MAX_TRIALS_FITTED) -> None:
        self.groups: list[Group] = []
        self.study: str | None = None  # the name of the study the groups are of
        self.max_trials = max_trials
        self._seen: set[int] = set()  # numbers of the finished trials taken in
        self._history = TPEHistory([], max_trials)  # those trials, as TPE reads them, capped
        self._storage = HistoryStorage([])
        self.finished = self._view()

    def update(self, study: optuna.Study) -> list[Group]:
        other_study = self.study != study.study_name
        if other_study:
            self.groups, self._seen, self.study = [], set(), study.study_name
            self._history = TPEHistory(study.directions, self.max_trials)
            self._storage = HistoryStorage(study.directions)
        new = [trial for trial in study.get_trials(deepcopy=False, states=FINISHED) if trial.number not in self._seen]
        for trial in new:
            self._seen.add(trial.number)
            self._refine(trial.distributions)
            self._history.add(_as_tpe_reads(trial))
        if new or other_study:
            self._storage.history = self._history.trials()
            self.finished = self._view()
        return self.groups

    def below(self, fitted: int) -> int:
        return self._history.below(fitted)

    def _view(self) -> optuna.Study:
        """A new Study on the history's storage: a Study may keep what it listed of its trials until
        its next ask or tell, which this one never has."""
        return optuna.Study(self._storage.study_name, self._storage, sampler=_UNUSED)

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


def _as_tpe_reads(trial: FrozenTrial) -> FrozenTrial:
    """What TPE reads of a finished trial: its number (TPE orders trials by it), of its constraints,
    how far it is infeasible (their sum above 0; a feasible trial's, read for every trial at every
    sample, is then empty), of its intermediate values the last one (a pruned trial's rank), and
    no attrs."""
    last = max(trial.intermediate_values.items(), default=None)
    infeasible = sum(value for value in trial.constraints.values() if value > 0)
    if infeasible > 0:  # constraints go into system attrs in Optuna's own layout, which create_trial knows
        copied = create_trial(state=trial.state, values=trial.values, params=trial.params,
                              distributions=trial.distributions, constraints={"infeasible": infeasible},
                              intermediate_values=dict([last]) if last else None)
        copied.number = trial.number
        return copied
    # A stored trial is valid already: the constructor skips create_trial's checks, a millisecond a
    # trial, which a worker joining a study of 10,000 would spend on its first sample.
    return FrozenTrial(number=trial.number, state=trial.state, value=None, values=trial.values,
                       datetime_start=None, datetime_complete=None, params=trial.params,
                       distributions=trial.distributions, user_attrs={}, system_attrs={},
                       intermediate_values=dict([last]) if last else {}, trial_id=trial.number)


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
    """Multivariate TPE over each group of parameters that appear together, sampled on demand from
    the finished trials read once (see module). ``max_trials_fitted``: the most finished trials TPE
    fits on (None: all; automl.search.tpe_history). ``seed`` and ``kwargs`` go to the TPESampler
    that samples each group; ``constant_liar=True`` raises ValueError (see module)."""

    def __init__(self, seed: int | None = None, max_trials_fitted: int | None = MAX_TRIALS_FITTED,
                 **kwargs: Any) -> None:
        if kwargs.pop("constant_liar", False):
            raise ValueError("GroupTPESampler samples from the finished trials only: constant_liar=True is not "
                             "supported; optuna.samplers.TPESampler(multivariate=True, group=True) has it")
        # group=False: the groups are worked out here; TPE samples the one group it is given.
        self._groups = ParamGroups(max_trials_fitted)
        kwargs.setdefault("gamma", self._groups.below)
        with warnings.catch_warnings():  # gamma is deprecated, to go in Optuna 6 (pyproject keeps <6): not the user's
            warnings.filterwarnings("ignore", "`gamma` has been deprecated", FutureWarning)
            self._tpe = optuna.samplers.TPESampler(multivariate=True, group=False, constant_liar=False, seed=seed,
                                                   **kwargs)
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
            if self._groups.study != study.study_name:  # a space given without inferring it first
                self._groups.update(study)
            groups = [{name: dist for name, dist in group.items() if name in search_space}
                      for group in self._groups.groups]
            finished = self._groups.finished  # as of this trial's inference, which Optuna calls first
        # Names of the space no finished trial has yet (a space given without inferring it first,
        # as Optuna's sampler contract allows) are sampled together, as one more group.
        grouped = {name for group in groups for name in group}
        groups.append({name: dist for name, dist in search_space.items() if name not in grouped})
        return _SampledOnDemand([group for group in groups if group],
                                lambda group: self._tpe.sample_relative(finished, trial, group))

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        with self._grouping:
            if self._groups.study != study.study_name:
                self._groups.update(study)
            finished = self._groups.finished
        return self._tpe.sample_independent(finished, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)
