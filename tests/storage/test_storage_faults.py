"""Faults a shared database has, on a real SQLite file: a commit that fails, an outage, a worker lost."""

from __future__ import annotations

import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from conftest import trial_id_of, worker_storage_of
from optuna.trial import TrialState

from automl.storage.held_writes import USER, HeldWrites
from automl.storage.optuna_tables import OptunaTables
from automl.storage.retry import StorageUnreachable, transient_cause
from automl.storage.schema import TrialAttr
from automl.storage.trial_queue import Requeue, queue_trials, stale_reason
from automl.storage.urls import Heartbeat, open_storage
from automl.storage.worker_storage import WorkerStorage, open_worker_storage

STUDY = "faults"
LOCKED = sqlite3.OperationalError("database is locked")


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns that heartbeats belong to Study.optimize
        yield


def _fail_statements(storage: optuna.storages.RDBStorage, matching: str, times: int) -> list[int]:
    """Make the next ``times`` statements that mention ``matching`` fail as a locked database does."""
    failed = [0]

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if matching in statement and failed[0] < times:
            failed[0] += 1
            raise sqlalchemy.exc.OperationalError(statement, None, LOCKED)

    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", fail)
    return failed


def _popped(url: str, grace_period: int = 60) -> tuple[optuna.Study, optuna.Trial]:
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url), load_if_exists=True), 1)
    heartbeat = Heartbeat(1, grace_period, Requeue(1), retry_s=30)
    study = optuna.load_study(study_name=STUDY, storage=open_worker_storage(url, heartbeat))
    return study, study.ask()


def _stored(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY, storage=open_storage(url)).trials


def _attrs(trial: optuna.Trial) -> dict[str, int]:
    attrs = {f"a{i}": i for i in range(20)}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return attrs


def test_a_held_commit_that_fails_keeps_its_writes_for_the_next(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    study, trial = _popped(url)
    backend = open_storage(url)
    held = HeldWrites()
    attrs = {f"a{i}": i for i in range(20)}
    for key, value in attrs.items():
        held.hold(USER, trial_id_of(study, trial.number), key, str(value))
    failed = _fail_statements(backend, "trial_user_attributes", times=1)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        held.commit(OptunaTables(backend.engine))
    assert failed[0] == 1 and held and _stored(url)[0].user_attrs == {}
    held.commit(OptunaTables(backend.engine))
    assert not held and _stored(url)[0].user_attrs == attrs


def test_a_worker_retries_a_commit_that_fails_once_and_stores_every_attribute(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    study, trial = _popped(url)
    attrs = _attrs(trial)
    failed = _fail_statements(worker_storage_of(study).backend, "trial_user_attributes", times=1)
    study.tell(trial, 0.5)
    assert failed[0] == 1
    stored = _stored(url)[0]
    assert stored.user_attrs == attrs and stored.state == TrialState.COMPLETE


def _timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except BaseException as error:  # noqa: BLE001  (the test looks at what was raised)
        return error, time.monotonic() - started
    return None, time.monotonic() - started


def test_an_outage_is_retried_until_storage_retry_s_then_every_call_fails_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    optuna.create_study(study_name=STUDY, storage=open_storage(url))
    storage = WorkerStorage(open_storage(url), retry_s=2)
    failed = _fail_statements(storage.backend, "studies", times=2)
    assert storage.get_study_id_from_name(STUDY) >= 0 and failed[0] == 2  # two failures ridden out

    _fail_statements(storage.backend, "", times=10**6)
    error, took = _timed(lambda: storage.get_study_id_from_name(STUDY))
    assert isinstance(error, StorageUnreachable) and 1 <= took < 10
    assert "storage_retry_s = 2" in str(error) and "database is locked" in str(error)
    error, took = _timed(lambda: storage.get_all_studies())
    assert isinstance(error, StorageUnreachable) and took < 0.5, "a later call waited again"
    storage.record_heartbeat(0)  # the heartbeat thread misses a beat and lives on


def test_only_connection_errors_are_retried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    storage = WorkerStorage(open_storage(url), retry_s=30)
    error, took = _timed(lambda: storage.get_study_name_from_id(12345))
    assert isinstance(error, KeyError) and took < 1
    missing_table = sqlalchemy.exc.OperationalError("SELECT", None, sqlite3.OperationalError("no such table: x"))
    assert transient_cause(missing_table) is None
    try:  # a failed commit, as Optuna's session raises it
        raise optuna.exceptions.StorageInternalError("commit failed") from sqlalchemy.exc.OperationalError(
            "COMMIT", None, LOCKED)
    except optuna.exceptions.StorageInternalError as wrapped:
        assert transient_cause(wrapped) == "database is locked"

def test_a_trial_whose_worker_stops_beating_says_why_and_keeps_its_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    study, trial = _popped(url, grace_period=2)
    trial.suggest_int("x", 1, 9)
    trial.set_user_attr(TrialAttr.WORKER, "lost-host:1")
    worker_storage_of(study).record_heartbeat(trial_id_of(study, trial.number))  # its last beat, with its writes
    time.sleep(3)
    other, _ = _popped(url, grace_period=2)  # another worker, which checks for stale trials
    optuna.storages.fail_stale_trials(other)
    lost = _stored(url)[0]
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs[TrialAttr.FAIL_REASON] == stale_reason(2) == "worker lost (no heartbeat for 2 s)"
    assert lost.user_attrs[TrialAttr.WORKER] == "lost-host:1"
    retry = [t for t in _stored(url) if t.params == lost.params and t.number != lost.number]
    assert retry and TrialAttr.FAIL_REASON not in retry[0].user_attrs
