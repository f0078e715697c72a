"""Optuna's own conformance suites on automl's worker storage and on the grouped TPE.

The storage suite (optuna.testing.pytest_storages) runs on the storage a worker uses, opened as
workers open it (heartbeats, SQLite's BEGIN IMMEDIATE), on a real SQLite file and on the real
PostgreSQL server (.ci/postgres.sh starts one; the cases skip without it, fail in CI), with no case
skipped. Its parts (retries, held writes, reads once, the queue) are not storages of their own:
the suite runs on the storage that has them all, and its cases reach each (a trial created running
is one of the storage's own, so its writes are held and it is read from memory). The queue's
refusal to create a trial without a template applies to the studies automl creates, not to the
suite's. The sampler suite (optuna.testing.pytest_samplers) runs on GroupTPESampler.

One database per module and backend, emptied before each case (the suite expects an empty
storage): creating Optuna's tables for each of the ~120 cases cost most of the suite's time.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator

import optuna
import pytest
import sqlalchemy
from conftest import postgres_database
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase, RelativeSamplerTestCase
from optuna.testing.pytest_storages import StorageTestCase

from automl.search.group_tpe import GroupTPESampler
from automl.storage.trial_queue import Requeue
from automl.storage.urls import Heartbeat, open_storage
from automl.storage.worker_storage import WorkerStorage

# About 120 storage cases and 120 sampler cases: a minute on two cores, out of the everyday run.
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats outside Study.optimize, experimental features
        yield


@pytest.fixture(scope="module")
def _postgres_database() -> Iterator[str]:
    """One database on the test PostgreSQL server for the module (conftest's postgres_url makes one per test)."""
    with postgres_database("automl_suite") as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage as a worker opens it, on one database for the module."""
    if request.param == "postgresql":
        url = str(request.getfixturevalue("_postgres_database"))
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('suite') / 'suite.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_storage(url, Heartbeat(60, 120, Requeue(0)))


@pytest.fixture(scope="module")
def study_tables(backend: optuna.storages.RDBStorage) -> list[sqlalchemy.Table]:
    """The backend's tables that hold studies and trials (not Optuna's version records), children
    first: read from the database once for the backend, as no case changes the schema (read before
    each case, they cost a query per table each time: seconds over the suite)."""
    tables = sqlalchemy.MetaData()
    tables.reflect(backend.engine)
    kept = {"version_info", "alembic_version"}
    return [table for table in reversed(tables.sorted_tables) if table.name not in kept]


def _emptied(engine: sqlalchemy.engine.Engine, tables: list[sqlalchemy.Table]) -> None:
    """Delete every study and trial, as a fresh database has none."""
    with engine.begin() as connection:
        for table in tables:
            connection.execute(table.delete())


class TestWorkerStorage(StorageTestCase):
    @pytest.fixture
    def storage(self, backend: optuna.storages.RDBStorage,
                study_tables: list[sqlalchemy.Table]) -> optuna.storages.BaseStorage:
        _emptied(backend.engine, study_tables)
        return WorkerStorage(backend)


class _GroupTPE:
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return functools.partial(GroupTPESampler, seed=0)


class TestGroupTPEBasic(_GroupTPE, BasicSamplerTestCase):
    pass


class TestGroupTPERelative(RelativeSamplerTestCase):
    # The relative cases ask sample_relative for every parameter after one finished trial; TPE (and
    # so the grouped TPE) samples relatively only after its startup trials, independently before.
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return functools.partial(GroupTPESampler, seed=0, n_startup_trials=0)


class TestGroupTPEMultiObjective(_GroupTPE, MultiObjectiveSamplerTestCase):
    pass
