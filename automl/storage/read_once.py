"""A worker's reads of its study: each trial loaded in full only when it may have changed.

Every Study wraps its storage in Optuna's _CachedStorage, which keeps finished trials and reloads
every unfinished one, with all its rows, at every read of the study. A worker reads the study
several times a trial (the pop, the sampler once per parameter group, the pruner at each rung,
the front check), and ``automl run`` queues its whole trial count up front: with 1,000 queued
trials a read took 30 times as long (benchmarks/worker_storage.py). Three kinds of trial cannot
have changed since this process last read them, so this storage reads only their states:

- a queued trial, until it is popped: queueing and retrying create it whole;
- a finished trial: nothing may change it;
- a trial this process is running: only this process writes to it, and this storage applies
  those writes to its copy; another worker failing it as stale changes its state, which is read.
"""

from __future__ import annotations

import copy
from collections.abc import Container
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from automl.storage._optuna import models, scoped_session, trial_id_of


class ReadOnceStorage(optuna.storages.RDBStorage):
    """An RDBStorage that reloads only the trials that may have changed (see module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: dict[int, FrozenTrial] = {}  # trial_id -> the trial as read while queued
        # trial_id -> a finished trial get_trial read, until the next read of the study takes it.
        self._finished: dict[int, FrozenTrial] = {}
        self._popped: set[int] = set()  # trials this process set running
        self._running: dict[int, FrozenTrial] = {}  # trial_id -> such a trial, with its writes since

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if trial_id in self._finished:
            return self._finished[trial_id]
        if trial_id in self._running:
            return copy.deepcopy(self._running[trial_id])
        trial = super().get_trial(trial_id)
        self._keep(trial)
        return trial

    # The _CachedStorage reads through this private method: the unfinished trials it holds, and
    # every trial created after the last finished one.
    def _get_trials(self, study_id: int, states: Container[TrialState] | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        if states is not None:
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        current = self._states(study_id, included_trial_ids, trial_id_greater_than)
        known = {trial_id: trial for trial_id, state in current.items()
                 if (trial := self._unchanged(trial_id, state)) is not None}
        load = set(current) - set(known)
        # Optuna's query loads the given ids and every id above its bound: with the highest id
        # just seen as the bound, only trials created since then come along.
        loaded = super()._get_trials(study_id, None, load, max(current)) if load else []
        for trial in loaded:
            self._keep(trial)
        return sorted([*loaded, *known.values()], key=trial_id_of)

    def _unchanged(self, trial_id: int, state: TrialState) -> FrozenTrial | None:
        """The trial as this process knows it, if ``state`` (its state now) shows it unchanged."""
        if state == TrialState.WAITING:
            return self._queued.get(trial_id)
        if state.is_finished():
            self._queued.pop(trial_id, None)
            self._running.pop(trial_id, None)  # failed as stale by another worker
            return self._finished.pop(trial_id, None)
        if trial_id in self._running:
            return copy.deepcopy(self._running[trial_id])
        return None

    def _keep(self, trial: FrozenTrial) -> None:
        """Remember a trial just loaded, if it is of a kind that this process need not load again."""
        self._queued.pop(trial_id_of(trial), None)
        if trial.state == TrialState.WAITING:
            self._queued[trial_id_of(trial)] = trial
        elif trial.state.is_finished():
            self._finished[trial_id_of(trial)] = trial
        elif trial.state == TrialState.RUNNING and trial_id_of(trial) in self._popped:
            self._running[trial_id_of(trial)] = copy.deepcopy(trial)

    def _states(self, study_id: int, included_trial_ids: set[int], trial_id_greater_than: int,
                ) -> dict[int, TrialState]:
        """The state of each trial in ``included_trial_ids`` or with an id above the bound."""
        lowest = min(included_trial_ids, default=trial_id_greater_than + 1)
        with scoped_session(self.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session)  # a KeyError, as Optuna's read
            # A range, not an IN list of every id: SQLite caps the number of bound variables.
            rows = (session.query(models.TrialModel.trial_id, models.TrialModel.state)
                    .filter(models.TrialModel.study_id == study_id, models.TrialModel.trial_id >= lowest)
                    .all())
        return {trial_id: state for trial_id, state in rows
                if trial_id in included_trial_ids or trial_id > trial_id_greater_than}

    # This process's writes to its running trials, applied to its copies as well.

    # A state change this process makes also moves its copy along: a trial it pops from the queue
    # becomes its running copy, and a running one it ends its finished copy, so neither is loaded
    # again in full (Optuna's Trial and its tell each read the trial just changed).
    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        known = self._running.pop(trial_id, None) or self._queued.pop(trial_id, None)
        self._popped.discard(trial_id)
        changed = super().set_trial_state_values(trial_id, state, values)
        if not changed:
            return changed
        if state == TrialState.RUNNING:
            self._popped.add(trial_id)
        if known is not None and (state == TrialState.RUNNING or state.is_finished()):
            self._keep(self._moved(known, state, values))
        return changed

    def _moved(self, trial: FrozenTrial, state: TrialState, values: Any) -> FrozenTrial:
        """``trial`` as it is stored now that it went to ``state`` with ``values``.

        Optuna stamps the start and end times with the writing process's clock; they are read back
        rather than guessed."""
        with scoped_session(self.scoped_session) as session:
            row = models.TrialModel.find_or_raise_by_id(trial_id_of(trial), session)
            started, completed = row.datetime_start, row.datetime_complete
        moved = copy.deepcopy(trial)
        moved.state, moved.datetime_start, moved.datetime_complete = state, started, completed
        if values is not None:
            moved.values = [float(value) for value in values]
        return moved

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        super().set_trial_user_attr(trial_id, key, value)
        if trial_id in self._running:
            self._running[trial_id].user_attrs[key] = copy.deepcopy(value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        super().set_trial_system_attr(trial_id, key, value)
        if trial_id in self._running:
            self._running[trial_id].system_attrs[key] = copy.deepcopy(value)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        if trial_id in self._running:
            self._running[trial_id].intermediate_values[step] = intermediate_value

    # RDBStorage.set_trial_param and the _CachedStorage both write parameters through this one.
    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: BaseDistribution, previous_distribution: BaseDistribution | None) -> None:
        super()._set_trial_param(trial_id, param_name, param_value_internal, distribution, previous_distribution)
        if trial_id in self._running:
            trial = self._running[trial_id]
            trial.params[param_name] = distribution.to_external_repr(param_value_internal)
            trial.distributions[param_name] = distribution
