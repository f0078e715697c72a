"""Optuna's own conformance suites on automl's storage layers and on the grouped TPE.

The storage suite (optuna.testing.pytest_storages) runs on each layer alone and on the stack a
worker uses, opened as workers open it (heartbeats, SQLite's BEGIN IMMEDIATE), on a real SQLite
file and on the real PostgreSQL server (.ci/postgres.sh starts one; the cases skip without it,
fail in CI). The sampler suite (optuna.testing.pytest_samplers) runs on GroupTPESampler.

One kind of case is skipped, where it happens and with its reason: on the queue layer, creating a
trial without a template raises QueueEmpty by design (a worker only pops queued trials, so N
queued trials end as N; automl.storage.trial_queue). The same cases pass on every other layer.
The sampler suite's relative cases run the grouped TPE without startup trials: TPE samples
relatively only after them (independently before), and those cases sample after one trial.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase, RelativeSamplerTestCase
from optuna.testing.pytest_storages import StorageTestCase

from automl.search.group_tpe import GroupTPESampler
from automl.storage.held_writes import HeldWritesStorage
from automl.storage.read_once import ReadOnceStorage
from automl.storage.trial_queue import QueueEmpty, QueueOnlyStorage, Requeue
from automl.storage.urls import Heartbeat, open_storage
from automl.storage.worker_storage import WorkerStorage

# About 600 cases, each on a fresh database: minutes on two cores, so out of the everyday run.
pytestmark = pytest.mark.slow

QUEUE_ONLY = ("the queue layer refuses a trial created without a template (QueueEmpty): workers run "
              "queued trials only, by design (automl.storage.trial_queue)")


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats outside Study.optimize, experimental features
        yield


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'suite.db'}"


def _worker_stack(url: str, layer: type[optuna.storages.RDBStorage]) -> optuna.storages.RDBStorage:
    return open_storage(url, Heartbeat(60, 120, Requeue(0)), storage_class=layer)


def _skipping_queue_refusals(case: Callable[..., Any]) -> Callable[..., Any]:
    """The case, skipped with QUEUE_ONLY where it creates a trial without a template."""

    @functools.wraps(case)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return case(*args, **kwargs)
        except QueueEmpty:
            pytest.skip(QUEUE_ONLY)

    return run


class _QueueSuite(StorageTestCase):
    """StorageTestCase with each case skipped where it meets the queue's refusal (see QUEUE_ONLY)."""


for _name in dir(StorageTestCase):
    if _name.startswith("test_"):
        setattr(_QueueSuite, _name, _skipping_queue_refusals(getattr(StorageTestCase, _name)))


class TestHeldWritesStorage(StorageTestCase):
    @pytest.fixture
    def storage(self, url: str) -> optuna.storages.BaseStorage:
        return _worker_stack(url, HeldWritesStorage)


class TestReadOnceStorage(StorageTestCase):
    @pytest.fixture
    def storage(self, url: str) -> optuna.storages.BaseStorage:
        return _worker_stack(url, ReadOnceStorage)


class TestQueueOnlyStorage(_QueueSuite):
    @pytest.fixture
    def storage(self, url: str) -> optuna.storages.BaseStorage:
        return _worker_stack(url, QueueOnlyStorage)


class TestWorkerStorage(_QueueSuite):
    @pytest.fixture
    def storage(self, url: str) -> optuna.storages.BaseStorage:
        return _worker_stack(url, WorkerStorage)


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
