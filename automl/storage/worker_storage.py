"""A worker's storage: Optuna's public storage contract around an RDBStorage, with the parts that
make a worker cheap and able to ride out a troubled database.

As Optuna's own _CachedStorage does, it holds an RDBStorage and implements ``BaseStorage`` (and
``BaseHeartbeat``, delegated) around it, without subclassing it. The parts it owns, one module each:
retries (automl.storage.retry: every call rides out a database outage for ``storage_retry_s``), held
writes (automl.storage.held_writes: a running trial's parameters and attributes committed
together), reads once (automl.storage.read_once: a trial loaded in full only when it may have
changed), the queue (automl.storage.trial_queue: a study automl created runs only the trials queued
for it, queued a window in one transaction; automl.storage.pops: a pop in one transaction, its first
heartbeat with it) and lost storage (automl.storage.lost: the study deleted, or the SQLite file
deleted or replaced, under a worker stops it with one message).

The batched SQL these need, which Optuna's public API lacks, is in automl.storage.optuna_tables.
Optuna's storage conformance suite runs on this storage (tests/storage/test_optuna_suites.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

from automl.storage._optuna import BaseHeartbeat
from automl.storage.held_writes import PARAM, SYSTEM, USER, HeldWrites
from automl.storage.lost import DatabaseFile, StorageLost, StudyDeleted, study_deleted
from automl.storage.optuna_tables import OptunaTables, reading
from automl.storage.pops import PopLoop
from automl.storage.read_once import TrialCache, lists_queued_only
from automl.storage.retry import DEFAULT_RETRY_S, Retry, retried
from automl.storage.schema import TrialAttr
from automl.storage.sqlite import is_file_sqlite
from automl.storage.trial_queue import QueueEmpty, runs_queued_only, stale_reason
from automl.storage.trial_states import StaleCheck, change_state, queue_in, record_heartbeat, unpop
from automl.storage.urls import Heartbeat, open_storage, redact

T = TypeVar("T")


class WorkerStorage(BaseStorage, BaseHeartbeat):
    """A worker's storage around ``backend`` (see module); thread-safe, as Optuna's heartbeat
    thread and ``Study.optimize(n_jobs=...)`` need: its calls run one at a time (``lock``)."""

    def __init__(self, backend: RDBStorage, retry_s: float = DEFAULT_RETRY_S) -> None:
        self.backend = backend
        self.retry = Retry(retry_s)
        self._tables = OptunaTables(backend.engine)
        self._file = DatabaseFile(backend.url) if is_file_sqlite(backend.url) else None
        self.lock = threading.RLock()  # held through each call (automl.storage.retry.retried)
        self._held = HeldWrites()
        self._cache = TrialCache(fresh_s=backend.heartbeat_interval or 0)
        self._names: dict[int, str] = {}  # study id -> name, for the studies seen here
        self._directions: dict[int, list[StudyDirection]] = {}
        self._queued_only: dict[int, bool] = {}  # its config comes before any worker, or through this storage
        self._pops = PopLoop()
        self._heartbeats = StaleCheck(backend.heartbeat_interval or 0)  # and when each trial was beaten here

    # Pickled (sent to another process) with what it holds committed; a lock and an engine are not.
    def __getstate__(self) -> dict[str, Any]:
        self.commit_held()
        state = self.__dict__.copy()
        del state["lock"], state["_tables"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()
        self._tables = OptunaTables(self.backend.engine)

    # Studies.

    @retried
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        study_id = self.backend.create_new_study(directions, study_name)
        self._names[study_id] = self.backend.get_study_name_from_id(study_id) if study_name is None else study_name
        self._directions[study_id] = list(directions)
        return study_id

    @retried
    def delete_study(self, study_id: int) -> None:
        self._commit()
        self.backend.delete_study(study_id)
        for seen in (self._names, self._directions, self._queued_only):
            seen.pop(study_id, None)
        self._cache.forget(study_id)

    @retried
    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        with self._noticing_deletion(study_id):
            self.backend.set_study_user_attr(study_id, key, value)
        self._queued_only.pop(study_id, None)

    @retried
    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        with self._noticing_deletion(study_id):
            self.backend.set_study_system_attr(study_id, key, value)

    @retried
    def set_study_system_attrs(self, study_id: int, attrs: Mapping[str, Any]) -> None:
        """Set each of ``attrs`` on the study in one transaction (Optuna writes one a transaction)."""
        if not self._tables.set_study_system_attrs(study_id, attrs):
            raise self._deleted(study_id) or KeyError(f"no study with id {study_id}")

    @retried
    def get_study_id_from_name(self, study_name: str) -> int:
        seen = next((known for known, name in self._names.items() if name == study_name), None)
        with self._noticing_deletion(seen):
            study_id = self.backend.get_study_id_from_name(study_name)
        self._names[study_id] = study_name
        return study_id

    @retried
    def get_study_name_from_id(self, study_id: int) -> str:
        if study_id not in self._names:
            self._names[study_id] = self.backend.get_study_name_from_id(study_id)
        return self._names[study_id]

    @retried
    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        if study_id not in self._directions:
            with self._noticing_deletion(study_id):
                self._directions[study_id] = self.backend.get_study_directions(study_id)
        return self._directions[study_id]

    @retried
    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        with self._noticing_deletion(study_id):
            return self.backend.get_study_user_attrs(study_id)

    @retried
    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        with self._noticing_deletion(study_id):
            return self.backend.get_study_system_attrs(study_id)

    @retried
    def get_all_studies(self) -> list[Any]:  # Optuna's FrozenStudy, which it keeps in a private module
        return self.backend.get_all_studies()

    # Trials: created and written.

    @retried
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        self._put_back(self._pops.listed())  # a trial created now was not in the listing
        if template_trial is None and self._runs_queued_only(study_id):
            raise QueueEmpty()
        with self._noticing_deletion(study_id):
            trial_id = self.backend.create_new_trial(study_id, template_trial)
        self._cache.study_of[trial_id] = study_id
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._cache.known(study_id).ours.add(trial_id)
        return trial_id

    @retried
    def enqueue_trials(self, study_id: int, user_attrs: Sequence[Mapping[str, Any]]) -> None:
        """Queue a trial per ``user_attrs`` (each its user attrs) in one transaction (trial_states.queue_in)."""
        self._put_back(self._pops.listed())  # the trials created now were not in the listing
        if not self._commit(lambda connection: queue_in(connection, self._tables, study_id, user_attrs)):
            raise self._deleted(study_id) or KeyError(f"no study with id {study_id}")

    def _runs_queued_only(self, study_id: int) -> bool:
        if study_id not in self._queued_only:
            self._queued_only[study_id] = runs_queued_only(self.get_study_user_attrs(study_id))
        return self._queued_only[study_id]

    @retried
    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        study_id, running = self._running(trial_id)
        if running is not None and param_name not in running.params:
            assert study_id is not None  # a trial known to run here has a known study
            self._cache.check_distribution(self._tables, study_id, param_name, distribution)
            self._held.hold(PARAM, trial_id, param_name, (param_value_internal, distribution_to_json(distribution)))
            running.params[param_name] = distribution.to_external_repr(param_value_internal)
            running.distributions[param_name] = distribution
            return
        with self._noticing_deletion(study_id):
            self.backend.set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._written(trial_id)

    @retried
    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        # A pop gets its first heartbeat with it (automl.storage.trial_states): Optuna's heartbeat
        # thread beats only once the trial runs, and Optuna never takes a running trial without any
        # heartbeat as stale, so a worker killed between the two would leave it running forever.
        popping = state == TrialState.RUNNING
        beat = popping and self.get_heartbeat_interval() is not None
        if popping and self._pops.passes_over(trial_id):
            return False  # optuna.Study pops by trying the queued trials in order (automl.storage.pops)
        changed = self._pops.claim(trial_id) if popping else None  # popped ahead for this pop
        study_id = self._cache.study_of.get(trial_id)
        if changed is None:
            self._put_back(self._pops.popped_ahead())
            ahead_to = self._pops.listed_up_to if popping else None
            with self._noticing_deletion(study_id):  # the trial's writes land with its state change, at once
                changed = self._commit(lambda connection: change_state(connection, self._tables, trial_id, state,
                                                                       values, beat, ahead_to))
            assert changed is not None
            if popping:
                self._pops.tried(trial_id, changed)
        if (beat and changed.changed) or state.is_finished():
            self._heartbeats.beaten(trial_id, state)
        if changed.changed and study_id is not None:
            self._cache.known(study_id).move(trial_id, state, values, changed.datetime_start, changed.datetime_complete)
        return changed.changed

    def _put_back(self, popped_ahead: int | None) -> None:
        if popped_ahead is not None:
            self._commit(lambda connection: unpop(connection, popped_ahead))

    @retried
    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._commit()
        study_id, running = self._running(trial_id)
        with self._noticing_deletion(study_id):
            self.backend.set_trial_intermediate_value(trial_id, step, intermediate_value)
        if running is not None:
            running.intermediate_values[step] = float(intermediate_value)
        self._written(trial_id)

    @retried
    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(USER, trial_id, key, value)

    @retried
    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(SYSTEM, trial_id, key, value)

    def _set_attr(self, kind: str, trial_id: int, key: str, value: Any) -> None:
        study_id, running = self._running(trial_id)
        if running is not None:
            stored = json.dumps(value)  # refused here (TypeError) as Optuna's write would be
            self._held.hold(kind, trial_id, key, stored)
            (running.user_attrs if kind == USER else running.system_attrs)[key] = json.loads(stored)
            return
        write = self.backend.set_trial_user_attr if kind == USER else self.backend.set_trial_system_attr
        with self._noticing_deletion(study_id):
            write(trial_id, key, value)
        self._written(trial_id)

    def _running(self, trial_id: int) -> tuple[int | None, FrozenTrial | None]:
        """The trial's study (if seen), and its copy if this process runs it and may hold its writes."""
        study_id = self._cache.study_of.get(trial_id)
        if study_id is None:
            return study_id, None
        known = self._cache.known(study_id)
        running = known.ours_copy(trial_id)
        if running is None and trial_id in known.ours:  # created running here, not read yet
            self._commit()
            if not self._cache.load(self._tables, [trial_id]):
                raise self._deleted(study_id) or KeyError(f"no trial with id {trial_id}")
            running = known.ours_copy(trial_id)
        return study_id, running

    def _written(self, trial_id: int) -> None:
        known = self._cache.of_trial(trial_id)
        if known is not None and trial_id not in known.ours:
            known.outdate(trial_id)

    # Trials: read.

    @retried
    def get_trial(self, trial_id: int) -> FrozenTrial:
        known = self._cache.of_trial(trial_id)
        cached = None if known is None else known.cached(trial_id)
        if cached is not None:
            return cached
        self._commit()
        loaded = self._cache.load(self._tables, [trial_id])
        if not loaded:
            raise self._deleted(self._cache.study_of.get(trial_id)) or KeyError(f"no trial with id {trial_id}")
        return self._cache.known(self._cache.study_of[trial_id]).cached(trial_id) or loaded[0]

    @retried
    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        self._put_back(self._pops.listed())
        self._commit(held_s=self.backend.heartbeat_interval or 0)  # else the heartbeat commits (held_writes)
        outline = lists_queued_only(states) and self._runs_queued_only(study_id)  # a pop's (read_once)
        known = self._cache.refresh(self._tables, study_id, states, outline)
        if known is None:
            raise self._deleted(study_id) or KeyError(f"no study with id {study_id}")
        trials = known.listing(states)
        if states is not None and TrialState.WAITING in states:  # as optuna.Study lists the trials it pops
            queued = next((trial for trial in reversed(trials) if trial.state == TrialState.WAITING), None)
            self._pops.listed_up_to = None if queued is None else known.id_of(queued.number)
        return copy.deepcopy(trials) if deepcopy else trials

    @retried
    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        found = self._cache.studies[study_id].id_of(trial_number) if study_id in self._cache.studies else None
        if found is not None:
            return found
        with self._noticing_deletion(study_id):
            return self.backend.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    # Held writes, and storage lost.

    @retried
    def commit_held(self) -> None:
        """Commit every write held for this process's running trials, in one transaction."""
        self._commit()

    def _commit(self, then: Callable[[Connection], T] | None = None, held_s: float = 0.0) -> T | None:
        """Commit what is held (see HeldWrites.commit for ``held_s``), and in the same transaction ``then``;
        first, on SQLite, check the file is still the one opened (most calls commit first: a worker
        whose file was deleted stops at its next one)."""
        if self._file is not None:
            self._file.check()
        missing, done = self._held.commit(self._tables, then, held_s)
        for study_id in {self._cache.study_of.get(trial_id) for trial_id in missing}:
            deleted = self._deleted(study_id)
            if deleted is not None:
                raise deleted
        if missing:
            raise KeyError(f"trials {sorted(missing)} were deleted")
        return done

    @contextlib.contextmanager
    def _noticing_deletion(self, study_id: int | None) -> Iterator[None]:
        """A KeyError (or, for a heartbeat, a foreign key error) on a study this storage has seen
        becomes StudyDeleted when the study is gone."""
        try:
            yield
        except StudyDeleted:
            raise
        except (KeyError, sqlalchemy.exc.IntegrityError):
            deleted = self._deleted(study_id)
            if deleted is not None:
                raise deleted from None
            raise

    def _deleted(self, study_id: int | None) -> StudyDeleted | None:
        """StudyDeleted if ``study_id`` names a study seen here that no longer exists."""
        if study_id is None or study_id not in self._names:
            return None
        with reading(self._tables.engine) as connection:
            if self._tables.study_exists(connection, study_id):
                return None
        trials, finished = self._cache.counts(study_id)
        return study_deleted(self._names[study_id], redact(self.backend.url), trials, finished)

    # The heartbeat, delegated.

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            with self.lock:
                self.retry.run(lambda: self._beat(trial_id))
        except StorageLost:
            pass  # a missed beat is enough (the worker's next call reports the loss); Optuna's thread would die

    def _beat(self, trial_id: int) -> None:
        with self._noticing_deletion(self._cache.study_of.get(trial_id)):
            if not self._heartbeats.due(trial_id):  # Optuna's thread beats as the trial starts, just after its pop
                self._commit()
                return
            self._commit(lambda connection: record_heartbeat(connection, self._tables, trial_id))
            self._heartbeats.beaten(trial_id)

    # Optuna's fail_stale_trials fails each trial this names, then calls the stale-trial callback
    # with the trial already finished, when it takes no more writes: the reason goes on before.
    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        grace_period = self.backend.grace_period or 2 * (self.backend.heartbeat_interval or 0)  # Optuna's default
        with self.lock:
            stale_ids = self.retry.run(lambda: self._heartbeats.ids(self._tables.engine, study_id, grace_period))
        for trial_id in stale_ids:
            with contextlib.suppress(UpdateFinishedTrialError):  # another worker failed it first
                self.set_trial_user_attr(trial_id, TrialAttr.FAIL_REASON, stale_reason(grace_period))
        return stale_ids

    def get_heartbeat_interval(self) -> int | None:
        return self.backend.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.backend.get_heartbeat_stale_trial_callback()

    def remove_session(self) -> None:
        self.backend.remove_session()


def open_worker_storage(url: str, heartbeat: Heartbeat) -> WorkerStorage:
    """A worker's storage on ``url`` (see automl.storage.urls.open_storage for the errors)."""
    return WorkerStorage(open_storage(url, heartbeat), retry_s=heartbeat.retry_s)


def commit_trial_writes(trial: optuna.Trial) -> None:
    """Commit what the trial's storage holds now, if it is a worker's; nothing to do on any other."""
    if isinstance(trial.storage, WorkerStorage):
        trial.storage.commit_held()
