"""A worker's writes to its trials, held in memory and committed together.

Optuna's RDBStorage commits each parameter and attribute in a transaction of its own; a trial
records about ten parameters and twenty attributes. Optuna has no batched write, so this storage
holds those writes and commits them in one transaction: before it reads trials from the database
or changes a trial's state, at each heartbeat, and when asked (automl.search.objective does before a
trial trains). benchmarks/worker_storage.py times a trial's storage work against Optuna's. This
process always reads its own writes (automl.storage.read_once applies them to its copy of a running
trial), other processes (other workers, the dashboard) see them within a heartbeat interval, and
a trial's end commits them before its state changes. A worker killed meanwhile loses what it
held since the last commit, as it loses the trial.

Only writes to a trial this storage set running are held; any other goes through at once, as
Optuna's (with its checks: a missing trial is a KeyError, a finished one refuses the write). A
commit that fails (the database unreachable) holds its writes again; the next commit retries them
(automl.storage.retry retries the call itself).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Container
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution, check_distribution_compatibility, distribution_to_json
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects import postgresql, sqlite

from automl.storage._optuna import models, scoped_session, storage_backend

LOG = logging.getLogger(__name__)
_PARAM = "param"
_ATTR_MODELS = {"user": models.TrialUserAttributeModel, "system": models.TrialSystemAttributeModel}
# The dialects whose insert statement can update on conflict, as Optuna's own attribute writes do.
_UPSERTS: dict[str, Callable[[Any], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert, "postgresql": postgresql.insert}


class HeldWritesStorage(optuna.storages.RDBStorage):
    """An RDBStorage whose trial parameters and attributes are committed in batches (see module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (kind, trial_id, key) -> value; a key written again before the commit keeps its last value.
        self._held: dict[tuple[str, int, str], Any] = {}
        # The heartbeat thread commits too; the lock is held through the commit, so a later value
        # of a key never reaches the database before an earlier one. Reentrant: when a trial
        # cannot be updated, Optuna's check inside the commit reads it through get_trial, which
        # commits first (nothing is held by then).
        self._held_lock = threading.RLock()
        self._writable: set[int] = set()  # trials this storage set running and has not ended

    # Pickled (sent to another process) with what it holds committed; a lock cannot be pickled.
    def __getstate__(self) -> dict[Any, Any]:
        self.commit_held()
        state = super().__getstate__()
        del state["_held_lock"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._held_lock = threading.RLock()

    def commit_held(self) -> None:
        """Commit every held write in one transaction; if that fails, hold them again and raise."""
        with self._held_lock:
            if not self._held:
                return
            held, self._held = self._held, {}
            try:
                self._commit(held)
            except BaseException:
                self._held = {**held, **self._held}  # never dropped: the next commit retries them
                raise

    def _commit(self, held: dict[tuple[str, int, str], Any]) -> None:
        with scoped_session(self.scoped_session, True) as session:
            states = {trial_id: models.TrialModel.find_or_raise_by_id(trial_id, session).state
                      for trial_id in {trial_id for _, trial_id, _ in held}}
            # A trial another worker ended takes no more writes: drop them here rather than
            # fail the whole commit, and with it whatever read or heartbeat asked for it.
            finished = {trial_id: state.name for trial_id, state in states.items() if state.is_finished()}
            if finished:
                LOG.warning(f"writes to trial(s) {finished} dropped: another worker ended them "
                            "(a heartbeat gone stale?) while this one was running them")
                held = {key: value for key, value in held.items() if key[1] not in finished}
            params: list[dict[str, Any]] = []
            attrs: dict[str, list[tuple[int, str, Any]]] = {kind: [] for kind in _ATTR_MODELS}
            for (kind, trial_id, key), value in held.items():
                if kind != _PARAM:
                    attrs[kind].append((trial_id, key, value))
                elif value[2] is None:
                    # No earlier distribution known here: Optuna's write looks the study's up
                    # and checks against it (once per name and worker).
                    self._set_trial_param_without_commit(session, trial_id, key, *value)
                else:
                    params.append({"trial_id": trial_id, "param_name": key, "param_value": value[0],
                                   "distribution_json": distribution_to_json(value[1])})
            if params:
                session.execute(sqlalchemy.insert(models.TrialParamModel), params)
            for kind, rows in attrs.items():
                self._upsert_attrs(session, _ATTR_MODELS[kind], rows)

    def _upsert_attrs(self, session: Any, model: Any, rows: list[tuple[int, str, Any]]) -> None:
        """Write attributes in one statement on SQLite and PostgreSQL, else one by one as Optuna does.

        Optuna's per-attribute write looks the trial up and upserts, about 1 ms a time on SQLite.
        """
        if not rows:
            return
        insert = _UPSERTS.get(self.engine.name)
        if insert is None:
            for trial_id, key, value in rows:
                self._set_trial_attr_without_commit(session, model, trial_id, key, value)
            return
        statement = insert(model).values([{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                          for trial_id, key, value in rows])
        session.execute(statement.on_conflict_do_update(index_elements=[model.trial_id, model.key],
                                                        set_={"value_json": statement.excluded.value_json}))

    # Writes that are held: those to a trial this storage runs. Any other goes through at once.

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if trial_id in self._writable:
            self._hold("user", trial_id, key, value)
        else:
            self.commit_held()
            super().set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if trial_id in self._writable:
            self._hold("system", trial_id, key, value)
        else:
            self.commit_held()
            super().set_trial_system_attr(trial_id, key, value)

    # RDBStorage.set_trial_param and the _CachedStorage around every Study both write parameters
    # through this private method, the latter with the distribution it has seen for the name; a
    # mismatch with that one is refused now, where the trial suggests it.
    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: BaseDistribution, previous_distribution: BaseDistribution | None) -> None:
        if trial_id not in self._writable:
            self.commit_held()
            super()._set_trial_param(trial_id, param_name, param_value_internal, distribution, previous_distribution)
            return
        if previous_distribution is not None:
            check_distribution_compatibility(previous_distribution, distribution)
        self._hold(_PARAM, trial_id, param_name, (param_value_internal, distribution, previous_distribution))

    def _hold(self, kind: str, trial_id: int, key: str, value: Any) -> None:
        with self._held_lock:
            self._held[(kind, trial_id, key)] = value

    # Everything that reads trials, or changes one otherwise, comes after the held writes.

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        self.commit_held()
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed and state == TrialState.RUNNING:
            self._writable.add(trial_id)
        elif changed:
            self._writable.discard(trial_id)
        return changed

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.commit_held()
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def record_heartbeat(self, trial_id: int) -> None:
        self.commit_held()
        super().record_heartbeat(trial_id)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        self.commit_held()
        return super().get_trial(trial_id)

    def _get_trials(self, study_id: int, states: Container[TrialState] | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        self.commit_held()
        return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        self.commit_held()
        return super().get_trial_user_attrs(trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        self.commit_held()
        return super().get_trial_system_attrs(trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        self.commit_held()
        return super().get_trial_param(trial_id, param_name)


def commit_trial_writes(study: optuna.Study) -> None:
    """Commit what the study's worker storage holds now; nothing to do on any other storage."""
    backend = storage_backend(study)
    if isinstance(backend, HeldWritesStorage):
        backend.commit_held()
