"""Workers ride out a database outage: a real PostgreSQL server stopped for a few seconds and started
again under two running workers; stopped for longer than ``storage_retry_s``, a worker exits with
one message and a rerun resumes.

The server is one of the test's own (a throwaway cluster from the PostgreSQL binaries that
.ci/postgres.sh installs), as restarting the shared test server would cut off other tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from automl.storage.urls import STORAGE_ENV
from conftest import AUTOML, run_cli, sleepy_site, with_path, write_study

pytestmark = pytest.mark.slow  # two worker processes, a PostgreSQL restart

NAME = "outage"
N_TRIALS = 4
OUTAGE_S = 4


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1, owned by the ``postgres`` user when run as root."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="automl-outage-"))
        self.port = _free_port()
        self.options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.url = f"postgresql+psycopg://automl@127.0.0.1:{self.port}/postgres"
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres")

    def _as_owner(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def pg_ctl(self, *args: str) -> None:
        self._as_owner(str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-o", self.options,
                       "-l", str(self.folder / "server.log"), "-w", *args)

    def start(self) -> None:
        self._as_owner(str(self.bin_dir / "initdb"), "-D", str(self.folder / "data"), "-U", "automl",
                       "--auth=trust")
        self.pg_ctl("start")

    def stop(self) -> None:
        try:
            self.pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    found = sorted(glob.glob(os.environ.get("PGBIN", "/usr/lib/postgresql/*/bin")))
    if not found or not (Path(found[-1]) / "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL binaries in CI: .ci/postgres.sh installs them")
        pytest.skip("no PostgreSQL binaries (set PGBIN, or install postgresql)")
    server = Cluster(Path(found[-1]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=NAME, storage=url).get_trials(deepcopy=False)


def _study(directory: Path, grace_period: int, storage_retry_s: float = 120, n_trials: int = N_TRIALS) -> Path:
    # Trials of several seconds with one-second heartbeats, so the outage lands inside trials: 20
    # epochs of 10 steps that sleep 30 ms (about 6 s; the sleep costs no CPU), writing the curve
    # after each; with 2 s a trial seen running could finish before the stop.
    sleepy_site(directory, step_s=0.03)
    return write_study(directory, f"""
        name = "{NAME}"
        n_trials = {n_trials}
        seed = 0
        [search]
        families = ["sleepy"]
        pruner = "none"
        [train]
        max_epochs = 20
        loader_workers = 0
        batch_size = [128]
        [workers]
        heartbeat_interval = 1
        grace_period = {grace_period}
        storage_retry_s = {storage_retry_s}
    """)


def _plugin(directory: Path) -> dict[str, str]:
    """What loads the sleepy family that _study installed in ``directory``."""
    return with_path(directory / "site")


def _start(cluster: Cluster, directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*AUTOML, *args, "--no-progress"], cwd=directory,
                            env={**os.environ, **_plugin(directory), STORAGE_ENV: cluster.url, "NO_COLOR": "1",
                                 "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_a_running_trial(cluster: Cluster, run: subprocess.Popen[str]) -> None:
    # One query on one engine a poll (loading the study opened a storage each time: CPU-seconds
    # over a start-up on a busy machine); the cluster holds this test's study alone.
    engine = sqlalchemy.create_engine(cluster.url)
    running = sqlalchemy.text("SELECT count(*) FROM trials WHERE state = 'RUNNING'")
    deadline = time.monotonic() + 240
    try:
        while run.poll() is None and time.monotonic() < deadline:
            try:
                with engine.connect() as connection:
                    if connection.execute(running).scalar():
                        break
            except sqlalchemy.exc.DBAPIError:  # the tables are not there yet
                pass
            time.sleep(0.5)
    finally:
        engine.dispose()
    assert run.poll() is None, "the run ended before a trial was seen running"
    time.sleep(1)


def test_a_postgres_outage_under_two_workers_loses_no_trial(cluster: Cluster, tmp_path: Path) -> None:
    run = _start(cluster, tmp_path, "run", str(_study(tmp_path, grace_period=30)), "--workers", "2")
    _wait_for_a_running_trial(cluster, run)
    # Down for several heartbeats (a restart alone can fall between two), well within the grace period.
    cluster.pg_ctl("-m", "fast", "stop")
    time.sleep(OUTAGE_S)
    cluster.pg_ctl("start")
    stdout, stderr = run.communicate(timeout=600)

    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    # The outage did reach the workers (a heartbeat or a read in the gap), and they went on.
    assert "database unreachable" in stderr and "database reachable again" in stderr, stderr
    trials = _trials(cluster.url)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == N_TRIALS, [(t.number, t.state, t.user_attrs) for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states


def test_a_worker_stops_with_one_message_past_storage_retry_s_and_a_rerun_resumes(cluster: Cluster,
                                                                                  tmp_path: Path) -> None:
    # Two trials: the one the outage stops and one more, both run by the rerun. Queued in this
    # process (a run without workers): the process boundary is the point for the workers only.
    study = _study(tmp_path, grace_period=5, storage_retry_s=3, n_trials=2)
    queued = run_cli("run", str(study), "--workers", "0", "--no-progress", cwd=tmp_path,
                     env={**_plugin(tmp_path), STORAGE_ENV: cluster.url, "OMP_NUM_THREADS": "1"})
    assert queued.returncode == 0, queued.stderr
    worker = _start(cluster, tmp_path, "worker", str(study))
    _wait_for_a_running_trial(cluster, worker)
    cluster.pg_ctl("-m", "fast", "stop")
    _, stderr = worker.communicate(timeout=300)
    assert worker.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stayed unreachable" in stderr and "storage_retry_s = 3" in stderr, stderr

    cluster.pg_ctl("start")
    # The rerun in this process: the boundary was the point for the worker the outage stopped. Its
    # time budget bounds it, as the process's timeout did.
    rerun = run_cli("worker", str(study), "--no-progress", "--timeout", "300", cwd=tmp_path,
                    env={**_plugin(tmp_path), STORAGE_ENV: cluster.url, "OMP_NUM_THREADS": "1"})
    assert rerun.returncode == 0, rerun.stderr
    trials = _trials(cluster.url)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 2, [(t.number, t.state, t.user_attrs) for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1 and lost[0].user_attrs["fail_reason"] == "worker lost (no heartbeat for 5 s)"
    assert lost[0].user_attrs["worker"]  # host:pid of the worker that stopped
