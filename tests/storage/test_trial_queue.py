"""The trial queue on a real SQLite file: atomic pops across processes, settings, the local pool."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from automl.storage.schema import CONFIG_ATTR, TrialAttr
from automl.storage.trial_queue import (
    WINDOW,
    QueueEmpty,
    Requeue,
    queue_more,
    queue_trials,
    samples_until_deadline,
    still_queued,
)
from automl.storage.urls import STORAGE_ENV, Heartbeat, open_storage
from automl.storage.worker_storage import WorkerStorage, open_worker_storage
from automl.workers.pool import default_workers, share_gpu, threads_per_worker, worker_command, worker_environment

# A worker without training: pops queued trials as fast as it can, with heartbeats, until none is left.
POPPER = textwrap.dedent("""
    import os, sys, warnings
    import optuna
    from automl.storage.trial_queue import QueueEmpty, Requeue
    from automl.storage.urls import Heartbeat
    from automl.storage.worker_storage import open_worker_storage

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_worker_storage(sys.argv[1], Heartbeat(1, 3, Requeue(0)))
    study = optuna.load_study(study_name="pops", storage=storage, sampler=optuna.samplers.RandomSampler())
    def objective(trial):
        trial.set_user_attr("pid", os.getpid())
        return trial.suggest_float("x", 0, 1)
    try:
        study.optimize(objective)
    except QueueEmpty:
        pass
""")


def _worker_storage(url: str) -> WorkerStorage:
    return open_worker_storage(url, Heartbeat(1, 3, Requeue(0)))


def _automl_study(url: str, name: str) -> optuna.Study:
    """A study as automl creates it (with its config), whose workers run only queued trials."""
    study = optuna.create_study(study_name=name, storage=open_storage(url))
    study.set_user_attr(CONFIG_ATTR, {"name": name})
    return study


def test_an_empty_queue_refuses_new_trials_in_a_study_automl_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    _automl_study(url, "empty")
    study = optuna.load_study(study_name="empty", storage=_worker_storage(url))
    with pytest.raises(QueueEmpty):
        study.ask()
    queue_trials(study, 1)
    assert study.ask().number == 0
    with pytest.raises(QueueEmpty):
        study.ask()
    # Any other study on a worker's storage is served as Optuna serves it (its conformance suite
    # makes such studies): ask() creates a trial when none is queued.
    other = optuna.create_study(study_name="other", storage=_worker_storage(url))
    assert other.ask().number == 0


def test_sqlite_workers_use_wal_and_wait_for_the_lock(tmp_path: Path) -> None:
    storage = _worker_storage(f"sqlite:///{tmp_path / 'settings.db'}")
    with storage.backend.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000


def test_retries_keep_parameters_then_give_way_to_a_fresh_trial(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="retry", storage=open_storage(f"sqlite:///{tmp_path / 'r.db'}"))
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("fail_reason", "interrupted")
    study.tell(trial, state=TrialState.FAIL)
    requeue = Requeue(max_retry=1)
    requeue(study, study.trials[0])
    retry = study.trials[1]
    assert retry.state == TrialState.WAITING and retry.params == study.trials[0].params
    assert retry.user_attrs == {}, "the original's fail_reason would mislabel the retry"
    requeue(study, retry)  # the retry failed too: no retries left, a fresh trial takes its place
    assert study.trials[2].state == TrialState.WAITING and study.trials[2].params == {}


def test_workers_share_cores_and_gpus_and_get_the_url_from_the_environment() -> None:
    assert [threads_per_worker(n, 16) for n in (1, 2, 3, 32)] == [16, 8, 5, 1]
    url = "postgresql+psycopg://bob:s3cret@db/automl"
    env = worker_environment(index=3, n_workers=4, cpus=8, gpus=2, storage_url=url)
    assert env == {STORAGE_ENV: url, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "1"}
    assert "CUDA_VISIBLE_DEVICES" not in worker_environment(0, 4, 8, 1, url)
    assert "s3cret" not in " ".join(worker_command(Path("study.toml"), 2, None))


def test_trials_per_gpu_packs_workers_on_each_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_workers(gpus=0, trials_per_gpu=4) == 1, "on the CPU the setting changes nothing"
    assert default_workers(gpus=2, trials_per_gpu=3) == 6
    # Round robin over the GPUs: each of the 2 GPUs gets 3 of the 6 workers.
    placed = [worker_environment(i, 6, 12, 2, "sqlite:///x.db")["CUDA_VISIBLE_DEVICES"] for i in range(6)]
    assert sorted(placed) == ["0", "0", "0", "1", "1", "1"]
    # The memory cap, recorded where torch would apply it (tests/test_gpu.py applies it on a GPU).
    caps = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, device: caps.append((fraction, device)))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    share_gpu(torch.device("cpu"), 4)  # a CPU worker has no GPU memory to cap
    share_gpu(torch.device("cuda"), 1)  # one worker per GPU: nothing to share
    share_gpu(torch.device("cuda"), 4)
    share_gpu(torch.device("cuda", 1), 2)
    assert caps == [(0.25, 0), (0.5, 1)], "torch wants a GPU index, not a bare 'cuda' device"


LAZY_POPPER = POPPER.replace("from automl.storage.trial_queue import QueueEmpty, Requeue",
                             "from automl.storage.trial_queue import QueueEmpty, Requeue, queue_more").replace(
    'trial.set_user_attr("pid", os.getpid())',
    'trial.set_user_attr("pid", os.getpid()); queue_more(trial.study, trial, False)')


@pytest.mark.slow  # two processes pop 137 trials: a minute on a busy machine
def test_two_processes_pop_each_queued_trial_once_beside_a_reader_a_window_at_a_time(tmp_path: Path) -> None:
    """Without BEGIN IMMEDIATE two SQLite workers pop the same trial and one crashes telling it; a
    large count is queued a window at a time, and the workers queue the rest, exactly that count.
    One pair of processes shows both (each costs a second of imports and seconds of popping)."""
    url = f"sqlite:///{tmp_path / 'pops.db'}"
    study = _automl_study(url, "pops")
    n_trials = WINDOW + 37
    queue_trials(study, n_trials)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == WINDOW
    assert still_queued(study) == n_trials
    errors: list[str] = []
    reads = [0]
    poppers = [subprocess.Popen([sys.executable, "-c", LAZY_POPPER, url], stderr=subprocess.PIPE, text=True)
               for _ in range(2)]

    def read_like_the_dashboard() -> None:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        while any(popper.poll() is None for popper in poppers):
            try:
                storage.get_all_trials(storage.get_study_id_from_name("pops"), deepcopy=False)
                reads[0] += 1
            except Exception as exc:
                errors.append(repr(exc))
            # A pause between reads, as a dashboard's polling has: without it the reader took a
            # core from the poppers it reads beside.
            time.sleep(0.01)

    reader = threading.Thread(target=read_like_the_dashboard)
    reader.start()
    outputs = [popper.communicate(timeout=300)[1] for popper in poppers]
    reader.join()
    assert [popper.returncode for popper in poppers] == [0, 0], outputs
    assert errors == [] and reads[0] > 0
    trials = optuna.load_study(study_name="pops", storage=url).trials
    assert len(trials) == n_trials and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2, "one process did all the work"


def test_a_retried_window_marker_queues_the_next_window_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retry.db'}"
    study = optuna.create_study(study_name="retry", storage=_worker_storage(url))
    queue_trials(study, WINDOW + 5)
    marker = next(t for t in study.get_trials() if t.user_attrs.get(TrialAttr.QUEUE_MORE))
    requeue = Requeue(max_retry=2)
    # The marker's first attempt dies before it could queue the next window: its retry queues it.
    while study.ask().number != marker.number:
        pass
    study.tell(marker.number, state=TrialState.FAIL)
    requeue(study, study.get_trials()[marker.number])
    retry = study.get_trials()[-1]
    assert retry.user_attrs[TrialAttr.QUEUE_MORE] == 5
    while study.ask().number != retry.number:
        pass
    queue_more(study, retry, False)
    # A second attempt at the same window finds it queued and adds nothing.
    queue_more(study, retry, False)
    trials = study.get_trials()
    assert len(trials) == WINDOW + 1 + 5  # the window, the failed marker's retry, the next window
    assert still_queued(study) == 5


@pytest.mark.parametrize("has_deadline", [True, False])
def test_a_queue_until_the_deadline_goes_on_only_for_a_worker_with_a_deadline(
        tmp_path: Path, has_deadline: bool) -> None:
    url = f"sqlite:///{tmp_path / 'open.db'}"
    study = optuna.create_study(study_name="open", storage=_worker_storage(url))
    queue_trials(study, None)
    assert still_queued(study) == WINDOW and samples_until_deadline(study)
    marker = next(t for t in study.get_trials() if t.user_attrs.get(TrialAttr.QUEUE_MORE))
    while (trial := study.ask()).number != marker.number:
        pass
    queue_more(study, trial, has_deadline)
    popped = marker.number + 1
    if has_deadline:  # the next window, which goes on in turn
        assert still_queued(study) == 2 * WINDOW - popped and samples_until_deadline(study)
    else:  # what is left of this window, and nothing after it
        assert still_queued(study) == WINDOW - popped and not samples_until_deadline(study)


def test_a_retried_window_marker_sees_the_next_window_popped_by_other_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'popped.db'}"
    # Workers of a queue-only study, with heartbeats: others' trials just popped are read in outline.
    this, other = (open_worker_storage(url, Heartbeat(60, 120, Requeue(0))) for _ in range(2))
    study = optuna.create_study(study_name="popped", storage=this)
    study.set_user_attr(CONFIG_ATTR, {})
    # The marker's first attempt queued window 1, then died: its retry is queued after that window.
    queue_trials(study, 3, window=1)
    study.enqueue_trial({}, user_attrs={TrialAttr.QUEUE_WINDOW: 0, TrialAttr.QUEUE_MORE: 3})
    elsewhere = optuna.load_study(study_name="popped", storage=other)
    for _ in range(3):
        elsewhere.ask()  # window 1, popped by another worker
    retry = study.ask()
    queue_more(study, retry, False)
    assert len(study.get_trials()) == 4, "window 1 was queued twice"
