"""Many workers on one study: real worker processes, a real PostgreSQL server, a real SQLite file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

import automl
from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.storage.trial_queue import QUEUED
from automl.storage.urls import STORAGE_ENV
from automl.search.plan import plan_study
from automl.search.study import create_or_resume, queue_run, work
from conftest import AUTOML, has_study, like_a_fresh_process, run_cli, sleepy_site, with_path, write_study

pytestmark = pytest.mark.slow  # worker processes, PostgreSQL, SIGTERM

COMPLETE, FAIL, RUNNING = TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING
NAME = "workers"


def _study_file(directory: Path, n_trials: int, storage: str | None = None, max_epochs: int = 1,
                family: str = "mlp", step_s: float = 0.03) -> Path:
    """A digits study of one family with one-second heartbeats; the storage may come from the
    environment. The "sleepy" family (conftest.SLEEPY, installed in ``directory``; _plugin loads
    it) makes trials that last for little CPU: 10 training steps an epoch, each asleep ``step_s``.

    No early stopping: which trial MO-ASHA stops depends on which worker reaches a rung first,
    and these tests count finished trials by state.
    """
    if family == "sleepy":
        sleepy_site(directory, step_s)
    return write_study(directory, f"""
        name = "{NAME}"
        n_trials = {n_trials}
        {f'storage = "{storage}"' if storage else ''}
        [search]
        families = ["{family}"]
        pruner = "none"
        [train]
        max_epochs = {max_epochs}
        batch_size = [128]
        [workers]
        heartbeat_interval = 1
        grace_period = 3
    """)


def _trials(url: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=NAME, storage=url).get_trials(deepcopy=False)


def _states(trials: list[FrozenTrial]) -> dict[TrialState, int]:
    return {state: sum(t.state == state for t in trials) for state in TrialState if any(t.state == state for t in trials)}


def _plugin(directory: Path) -> dict[str, str]:
    """What loads the plugins _study_file installed in ``directory`` (none: the built-ins alone)."""
    return with_path(directory / "site") if (directory / "site").exists() else {}


def _start_worker(study: Path, url: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, **_plugin(cwd), STORAGE_ENV: url, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*AUTOML, "worker", str(study), "--no-progress", "--threads", "1"], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _running_trial_with_heartbeat(url: str, timeout: float = 120) -> FrozenTrial:
    """The first trial seen running with a recorded heartbeat (so Optuna can tell when it stops)."""
    engine = sqlalchemy.create_engine(url)
    query = sqlalchemy.text(
        "SELECT t.number FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
        "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name AND t.state = 'RUNNING'")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as connection:
                    numbers = set(connection.execute(query, {"name": NAME}).scalars())
                # The study is loaded (a storage of its own, each time) only once a trial runs.
                running = [t for t in _trials(url) if t.number in numbers and "worker" in t.user_attrs] \
                    if numbers else []
            except (sqlalchemy.exc.DBAPIError, KeyError):
                running = []  # the run has not created its tables or study yet
            if running:
                return running[0]
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"no trial was running within {timeout} s")


def _queue(study: Path, url: str) -> None:
    """Create the study and queue its trials, in this process (a run without workers)."""
    queued = run_cli("run", str(study), "--workers", "0", "--no-progress", cwd=study.parent,
                     env={**_plugin(study.parent), STORAGE_ENV: url})
    assert queued.returncode == 0, queued.stderr


def test_three_workers_on_postgres_run_exactly_n_trials(postgres_url: str, tmp_path: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    password = sqlalchemy.engine.make_url(postgres_url).password
    # Trials of several seconds (sleeping, so they leave the cores to the workers' imports): with
    # shorter ones the first worker to start can finish all six before the others have imported torch.
    study = _study_file(tmp_path, n_trials=6, max_epochs=20, family="sleepy")
    done, command_lines = threading.Event(), []

    def watch() -> None:  # what `ps` shows while the workers run
        while not done.is_set():
            shown = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True)
            command_lines.extend(shown.stdout.splitlines())
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:  # `automl run` in this process; its workers are processes, their command lines what `ps` shows
        run = run_cli("run", str(study), "--workers", "3", "--no-progress", cwd=tmp_path,
                      env={**_plugin(tmp_path), STORAGE_ENV: postgres_url})
    finally:
        done.set()
        watcher.join()
    stdout, stderr = run.stdout, run.stderr + capfd.readouterr().err  # with what the workers wrote to theirs
    assert run.returncode == 0, stderr
    trials = _trials(postgres_url)
    assert _states(trials) == {COMPLETE: 6}, [(t.number, t.state, t.user_attrs.get("fail_reason")) for t in trials]
    assert sorted(t.number for t in trials) == list(range(6))
    assert len({t.user_attrs["worker"] for t in trials}) >= 2, "the trials were not shared out"
    assert re.search(r"Pareto front of 'workers' \(\d of 6 trials\)", stdout), stdout
    assert "Traceback" not in stderr and "error" not in stderr.lower()
    assert sum(" automl worker " in line for line in command_lines) >= 3
    assert not [line for line in command_lines + [stdout, stderr] if password in line]


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_killed_worker_trial_is_retried_by_the_survivor(storage: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    url = (request.getfixturevalue("postgres_url") if storage == "postgresql"
           else f"sqlite:///{tmp_path / 'kill.db'}")
    # Trials of several seconds (sleeping), so that the kill lands in the middle of one.
    study = _study_file(tmp_path, n_trials=2, max_epochs=20, family="sleepy")
    _queue(study, url)
    workers = [_start_worker(study, url, tmp_path) for _ in range(2)]
    try:
        victim_worker = _running_trial_with_heartbeat(url).user_attrs["worker"]
        victim_pid = int(victim_worker.rsplit(":", 1)[1])
        os.kill(victim_pid, signal.SIGKILL)
        killed = next(w for w in workers if w.pid == victim_pid)
        survivor = next(w for w in workers if w.pid != victim_pid)
        output, _ = survivor.communicate(timeout=240)
    finally:
        for worker in workers:
            worker.kill()
    assert killed.wait() == -signal.SIGKILL
    assert survivor.returncode == 0, output
    trials = {t.number: t for t in _trials(url)}
    assert _states(list(trials.values())) == {COMPLETE: 2, FAIL: 1}
    # The failed trial is the one the killed worker was running when it died (which may be a later
    # trial than the one seen running, if that one finished just before the kill).
    victim = next(t for t in trials.values() if t.state == FAIL)
    assert victim.user_attrs["worker"] == victim_worker
    assert re.fullmatch(r"worker lost \(no heartbeat for \d+ s\)", victim.user_attrs["fail_reason"])
    retries = [t for t in trials.values() if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert len(retries) == 1 and retries[0].state == COMPLETE
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retries[0]) == victim.number
    assert victim.params.items() <= retries[0].params.items(), "the retry did not keep the parameters"
    assert "fail_reason" not in retries[0].user_attrs


def test_two_sqlite_workers_of_a_config_built_in_python_and_a_reader_see_no_lock_errors(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # Trials of a few seconds: shorter ones let the worker that starts first finish all six before
    # the other has imported torch on a loaded machine. Each of their 100 epochs writes its curve,
    # as an MLP's epoch on digits does every 15-50 ms; the sleeping steps leave the cores to the
    # writes, the reader and the other worker's start-up.
    sleepy_site(tmp_path, step_s=0.004)
    # Built in Python, the config has no file: the run gives its workers one in a temporary folder.
    config = automl.StudyConfig(name=NAME, storage=url, n_trials=6, search={"families": ["sleepy"], "pruner": "none"},
                                train={"max_epochs": 100, "batch_size": [128]},
                                workers={"heartbeat_interval": 1, "grace_period": 3})
    done, reads, errors = threading.Event(), [0], []

    def read_like_the_dashboard() -> None:
        # optuna-dashboard reads through a plain RDBStorage: no WAL or busy-timeout set up by us.
        # It starts once the run has created the study, as a user would start it, and reads ten
        # times a second, far more often than a dashboard page polls (reading every 10 ms, it cost
        # more CPU than either worker).
        while not has_study(tmp_path / "shared.db") and not done.is_set():
            time.sleep(0.05)
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        while not done.is_set():
            try:
                for summary in storage.get_all_studies():
                    storage.get_all_trials(summary._study_id, deepcopy=False)
                reads[0] += 1
            except Exception as exc:  # every failure counts, "database is locked" above all
                errors.append(repr(exc))
            time.sleep(0.1)

    reader = threading.Thread(target=read_like_the_dashboard)
    reader.start()
    try:  # the run in this process (its signal handling needs the main thread); its workers are processes
        with like_a_fresh_process(tmp_path, _plugin(tmp_path)):
            study = automl.run(config, workers=2, threads=1, progress=False)
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert reads[0] > 20, "the reader hardly read while the workers ran"
    assert "locked" not in capfd.readouterr().err  # what the workers wrote to the stderr they inherited
    trials = study.get_trials(deepcopy=False)
    assert _states(trials) == {COMPLETE: 6}
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and all(worker.split(":")[1] != str(os.getpid()) for worker in workers)
    assert not list(Path(tempfile.gettempdir()).glob("automl-study-*"))  # the workers' study file is gone


def test_sigterm_fails_the_running_trial_and_a_rerun_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'term.db'}"
    # Trials long enough (tens of epochs) that the one seen running is still running when SIGTERM lands.
    study = _study_file(tmp_path, n_trials=2, storage=url, max_epochs=40)
    run = subprocess.Popen([*AUTOML, "run", str(study), "--no-progress"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        interrupted = _running_trial_with_heartbeat(url)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    trials = {t.number: t for t in _trials(url)}
    assert trials[interrupted.number].state == FAIL
    assert trials[interrupted.number].user_attrs["fail_reason"] == "interrupted"
    assert RUNNING not in _states(list(trials.values()))
    retry = [t for t in trials.values() if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert len(retry) == 1 and retry[0].state == QUEUED

    plan = plan_study(load_study_file(study), study, registry())
    assert not queue_run(create_or_resume(plan), 2), "a rerun must resume the queued trials, not add"
    assert _states(work(plan, None, show_progress_bar=False).trials) == {COMPLETE: 2, FAIL: 1}


def test_worker_killed_between_the_pop_and_its_first_heartbeat_has_its_trial_retried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pop.db'}"
    study = _study_file(tmp_path, n_trials=2)
    _queue(study, url)
    # Pops a queued trial as a worker does, then dies before any heartbeat thread could start.
    victim = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from automl.config import load_study_file
        from automl.plugin.registry import registry
        from automl.search.plan import plan_study
        from automl.search.study import join_study
        plan = plan_study(load_study_file({str(study)!r}), Path({str(study)!r}), registry(), {url!r})
        study, _ = join_study(plan)
        study.ask()
        os.kill(os.getpid(), signal.SIGKILL)
    """)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert victim.returncode == -signal.SIGKILL, victim.stderr
    assert _states(_trials(url)) == {QUEUED: 1, RUNNING: 1}
    # The survivor runs in this process: the process boundary is the victim's point. Without the beat
    # it would wait for the dead worker's trial for ever; its time budget bounds that wait.
    survivor = run_cli("worker", str(study), "--no-progress", "--timeout", "300", cwd=tmp_path,
                       env={**_plugin(tmp_path), STORAGE_ENV: url})
    assert survivor.returncode == 0, survivor.stderr
    trials = _trials(url)
    assert _states(trials) == {COMPLETE: 2, FAIL: 1}
    retried = [RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials]
    assert retried.count(next(t.number for t in trials if t.state == FAIL)) == 1
