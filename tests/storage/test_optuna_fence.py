"""Optuna's private names stay behind automl.storage._optuna: at most five, each checked here against
the installed Optuna, so a release that changes one fails a test naming it."""

from __future__ import annotations

import datetime
import importlib
import inspect
import pkgutil
import re
import tomllib
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy
from conftest import REPO
from optuna.trial import TrialState

import automl
import automl_plugins
from automl.storage import _optuna
from automl.storage.trial_queue import Requeue
from automl.storage.urls import Heartbeat, open_storage
from automl.storage.worker_storage import WorkerStorage

# A private Optuna module imported, or a private attribute of a Study, trial, storage or sampler
# read; a method's own attributes (self._x) are not reads. (optuna-dashboard is another package.)
PRIVATE_USE = re.compile(
    r"^\s*(from|import)\s+optuna(\.\w+)*\._|optuna\.\w+(\.\w+)*\._\w|(?<!self)(?<!super\(\))\._("
    r"storage|backend|study_id|trial_id|get_trials|get_stale_trial_ids|cached_frozen_trial|thread_local|rng|"
    r"n_ei_candidates|sample|build_parzen_estimator|compute_acquisition_func|compare|create_new_trial|"
    r"set_trial_param|get_best_trial_id|log_completed_trial|is_multi_objective|filter_study)\b")


def _modules() -> list[str]:
    names = []
    for package in (automl, automl_plugins):
        names += [info.name for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
                  if not info.name.endswith("__main__")]  # that one runs the CLI
    return names


def test_the_fence_holds_at_most_five_private_names() -> None:
    print(f"\nprivate Optuna names automl uses: {len(_optuna.PRIVATE_NAMES)}: {', '.join(_optuna.PRIVATE_NAMES)}")
    assert len(_optuna.PRIVATE_NAMES) <= 5


def test_no_module_but_the_fence_uses_a_private_optuna_name() -> None:
    users = {}
    sources = [*(REPO / "automl").rglob("*.py"), *(REPO / "plugins" / "automl_plugins").rglob("*.py")]
    for path in sorted(sources):
        if path.name == "_optuna.py":
            continue
        code = [line.split("#")[0] for line in path.read_text().splitlines()]
        found = [m.group(0).strip() for line in code for m in PRIVATE_USE.finditer(line)]
        if found:
            users[str(path.relative_to(REPO))] = found
    assert users == {}


def test_no_class_overrides_a_private_optuna_method_the_fence_does_not_list() -> None:
    listed = {name.rsplit(".", 1)[-1] for name in _optuna.PRIVATE_NAMES}
    unlisted = []
    for name in _modules():
        for cls in vars(importlib.import_module(name)).values():
            if not inspect.isclass(cls) or not cls.__module__.startswith(("automl.", "automl_plugins.")):
                continue
            bases = [base for base in cls.__mro__[1:] if base.__module__.startswith("optuna")]
            unlisted += [f"{cls.__qualname__}.{attr}" for attr in vars(cls)
                         if attr.startswith("_") and not attr.startswith("__") and attr != "_abc_impl"
                         and any(hasattr(base, attr) for base in bases) and attr not in listed]
    assert unlisted == []


def test_optunas_heartbeat_sees_the_worker_storage_and_fails_its_stale_trials(tmp_path: Path) -> None:
    """BaseHeartbeat and its _get_stale_trial_ids: Optuna's public fail_stale_trials finds the
    worker's storage a heartbeat storage and fails a trial whose last beat is an hour old."""
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = WorkerStorage(open_storage(url, Heartbeat(60, 120, Requeue(0))))
        study = optuna.create_study(study_name="fence", storage=storage)
        trial = study.ask()
        storage.record_heartbeat(trial_id := storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name("fence"), trial.number))
        hour_ago = datetime.datetime.now() - datetime.timedelta(hours=1)
        with storage.backend.engine.begin() as connection:
            connection.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = :t WHERE trial_id = :i"),
                               {"t": hour_ago, "i": trial_id})
        optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.FAIL


def test_a_study_reads_and_writes_through_the_storage_it_was_given_and_finds_the_database_under_it(
        tmp_path: Path) -> None:
    """Study._storage, and the RDBStorage inside the cache Optuna puts around it (_backend)."""
    memory = optuna.storages.InMemoryStorage()
    assert _optuna.study_storage(optuna.create_study(storage=memory)) is memory
    assert _optuna.storage_backend(optuna.create_study(storage=memory)) is memory
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    by_url = optuna.create_study(study_name="fence", storage=url)
    backend = _optuna.storage_backend(by_url)
    assert isinstance(backend, optuna.storages.RDBStorage) and backend.url == url
    worker = WorkerStorage(open_storage(url))
    assert _optuna.storage_backend(optuna.load_study(study_name="fence", storage=worker)) is worker.backend


def test_optunas_hypervolume_gives_a_known_answer() -> None:
    points = np.array([[1.0, 2.0], [2.0, 1.0]])  # two boxes of 2 up to (3, 3), overlapping in 1
    assert _optuna.compute_hypervolume(points, np.array([3.0, 3.0])) == pytest.approx(3.0)


def test_optuna_dashboards_private_note_layout_is_what_its_public_reader_reads() -> None:
    """optuna-dashboard's _note (through dashboard_internals): a long note written in batches, as
    automl.results.dashboard_store computes its keys and chunks, reads back whole through the
    dashboard's public get_note."""
    from optuna_dashboard import get_note

    from automl.results.dashboard_store import StudyAttrs

    study = optuna.create_study()
    storage = _optuna.study_storage(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    body = "a note longer than one chunk " * 200
    attrs = StudyAttrs(storage.get_study_system_attrs(study_id))
    attrs.save_note(None, body)
    for key, value in attrs.take_writes().items():
        storage.set_study_system_attr(study_id, key, value)
    assert get_note(study) == body


def test_an_older_optuna_is_refused_and_one_past_the_range_warned_about() -> None:
    with pytest.raises(ImportError, match=re.escape(f"pip install 'optuna{_optuna.SUPPORTED}'")):
        _optuna._check_version("4.9.0")
    with pytest.warns(UserWarning, match="newer than the range automl is tested on"):
        _optuna._check_version("6.0.0")
    _optuna._check_version(optuna.__version__)  # the installed one is in the range


def test_pyproject_requires_the_range_the_fence_supports() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"optuna{_optuna.SUPPORTED}" in project["dependencies"]
