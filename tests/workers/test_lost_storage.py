"""Storage that disappears under a working worker: its study deleted, its SQLite file deleted or
replaced. The worker stops with one error naming the study and the storage, and nothing else: no
traceback from Optuna's trial loop or the heartbeat thread."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import optuna
import pytest
import torch

from automl.config import WorkersConfig
from automl.storage._optuna import study_storage
from automl.storage.lost import DatabaseFileGone, StudyDeleted
from automl.storage.schema import CONFIG_ATTR
from automl.storage.trial_queue import Requeue, queue_trials
from automl.storage.urls import Heartbeat, open_storage
from automl.storage.worker_storage import open_worker_storage
from automl.workers.worker import TrialCallback, run_worker

STUDY = "to-delete"


@pytest.fixture(autouse=True)
def _thread_errors() -> Iterator[list[str]]:
    """Errors that end a thread (Optuna's heartbeat thread): none may."""
    errors: list[str] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(repr(args.exc_value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental heartbeat
        yield errors
    threading.excepthook = hook
    assert errors == []


def _work(url: str, objective: Callable[[optuna.Trial], float], callbacks: Sequence[TrialCallback] = ()) -> None:
    """Queue three trials in an automl study at ``url`` and run them in a worker, as `automl run` does."""
    created = optuna.create_study(study_name=STUDY, storage=open_storage(url), directions=["maximize"])
    created.set_user_attr(CONFIG_ATTR, {"name": STUDY})
    queue_trials(created, 3)
    config = WorkersConfig(heartbeat_interval=1, grace_period=3)
    requeue = Requeue(config.max_retry)
    storage = open_worker_storage(url, Heartbeat(config.heartbeat_interval, config.grace_period, requeue))
    study = optuna.load_study(study_name=STUDY, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    run_worker(study, objective, config, requeue, torch.device("cpu"), callbacks=callbacks)


def _training(when: int, then: Callable[[], None]) -> Callable[[optuna.Trial], float]:
    """An objective whose trial number ``when`` calls ``then`` while it trains, then reads the study
    (as the pruner does after each epoch)."""

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("curve", [0.5])
        if trial.number == when:
            then()
            trial.set_user_attr("curve", [0.5, 0.6])
            trial.study.get_trials(deepcopy=False)
        return 0.5

    return objective


def test_a_study_deleted_under_a_training_trial_stops_the_worker_with_one_error_naming_study_storage_and_trials(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(StudyDeleted) as deleted:
        _work(url, _training(2, lambda: optuna.delete_study(study_name=STUDY, storage=url)))
    assert str(deleted.value).startswith(f"study '{STUDY}' was deleted from {url} while this worker was working "
                                         "on it; 3 trials were lost (2 finished). This worker stops")
    assert "Traceback" not in capfd.readouterr().err


def test_a_study_deleted_between_trials_stops_the_worker_where_it_next_looks_the_study_up(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def dashboard(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Deletes the study after trial 0, then looks it up by name, as the dashboard's updater does."""
        if trial.number == 0:
            optuna.delete_study(study_name=STUDY, storage=url)
        study_storage(study).get_study_id_from_name(study.study_name)

    with pytest.raises(StudyDeleted, match="3 trials were lost \\(1 finished\\)"):
        _work(url, _training(-1, lambda: None), callbacks=[dashboard])
    assert "Traceback" not in capfd.readouterr().err


def test_a_database_file_deleted_under_a_worker_stops_it_with_one_error(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "study.db"
    with pytest.raises(DatabaseFileGone, match=f"the study's database {path} was deleted while this worker"):
        _work(f"sqlite:///{path}", _training(1, lambda: os.remove(path)))
    assert "Traceback" not in capfd.readouterr().err


def test_a_database_file_replaced_under_a_worker_stops_it_with_one_error(tmp_path: Path) -> None:
    path = tmp_path / "study.db"

    def replace() -> None:  # what `mv restored.db study.db` does
        (tmp_path / "restored.db").write_bytes(path.read_bytes())
        os.replace(tmp_path / "restored.db", path)

    with pytest.raises(DatabaseFileGone, match="was replaced by another file while this worker"):
        _work(f"sqlite:///{path}", _training(1, replace))
