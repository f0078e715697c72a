"""Many workers on one PostgreSQL: simulated workers doing exactly a worker's storage work.

A 2-core machine cannot hold 128 worker processes with torch in them, and it is the database's side
that is measured here, so each simulated worker is a thread (spread over a few light processes that
never import torch) that does what automl.workers.worker does against automl's worker storage:

- pops a queued trial (``study.optimize`` on a queue-only storage, heartbeats on, as join_study
  opens it), names its worker and queues the next window when the trial says so (queue_more);
- suggests a family's parameters and the training ones (a RandomSampler: the sampler's CPU is
  not what is measured), stores its cost attributes and commits them before "training";
- "trains" by sleeping, writing the validation curve after each epoch and reading the study once
  there, as MO-ASHA does at a rung; stores its results and finishes with its values;
- between pops, counts the queued and running trials and, with none queued, waits a heartbeat
  interval for the others' trials, then fails any whose heartbeat went stale.

Afterwards the database is checked: every queued trial finished exactly once (no trial lost,
stuck running or run twice), none failed; the most connections open at once (pg_stat_activity,
sampled) and the errors the workers met are counted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from automl.search.moasha import RANKED_STATES
from automl.storage.schema import CONFIG_ATTR, FAMILY_PARAM, TrialAttr
from automl.storage.trial_queue import QUEUED, QueueEmpty, Requeue, count, queue_more, queue_trials
from automl.storage.urls import Heartbeat, open_storage
from automl.storage.worker_storage import commit_trial_writes, open_worker_storage

EPOCHS = 2
HEARTBEAT_S = 5  # the workers' heartbeat interval; a trial is stale after four without a beat
FAMILIES = ("mlp", "cnn", "rnn", "transformer")


def _objective(study: optuna.Study, worker: str, train_s: float) -> Any:
    def objective(trial: optuna.Trial) -> list[float]:
        trial.set_user_attr(TrialAttr.WORKER, worker)
        queue_more(study, trial, has_deadline=False)
        family = trial.suggest_categorical(FAMILY_PARAM, list(FAMILIES))
        for index in range(5):
            trial.suggest_float(f"{family}.p{index}", 0.0, 1.0)
        trial.suggest_categorical("train.optimizer", ["adam", "adamw"])
        trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)
        trial.suggest_float("train.weight_decay", 1e-6, 1e-2, log=True)
        trial.suggest_categorical("train.batch_size", [32, 64, 128])
        for key, value in ((TrialAttr.FAMILY, family), (TrialAttr.DEVICE, "cpu"), (TrialAttr.N_PARAMS, 1000),
                           (TrialAttr.FLOPS, 2000.0), (TrialAttr.LATENCY_METHOD, "not timed")):
            trial.set_user_attr(key, value)
        commit_trial_writes(trial)
        curve: list[float] = []
        for _ in range(EPOCHS):
            time.sleep(train_s / EPOCHS)
            curve.append(0.5)
            trial.set_user_attr(TrialAttr.VAL_CURVE, list(curve))
            study.get_trials(deepcopy=False, states=RANKED_STATES)  # MO-ASHA's read at a rung
        for key, value in ((TrialAttr.EPOCHS, EPOCHS), (TrialAttr.VAL_ACCURACY, 0.5), (TrialAttr.TEST_ACCURACY, 0.5),
                           (TrialAttr.WALL_TIME_S, train_s)):
            trial.set_user_attr(key, value)
        return [0.5, 2000.0]
    return objective


def _work(url: str, name: str, worker: str, train_s: float, errors: list[str], ready: threading.Barrier) -> None:
    """One simulated worker, as automl.workers.worker.run_worker loops (see module); it starts
    popping once every worker has opened its storage (``ready``)."""
    try:
        requeue = Requeue(max_retry=2)
        try:
            storage = open_worker_storage(url, Heartbeat(HEARTBEAT_S, 4 * HEARTBEAT_S, requeue, retry_s=60))
            study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
        except Exception:
            ready.abort()  # the others would wait for this one forever
            raise
        objective = _objective(study, worker, train_s)
        ready.wait()
        while True:
            queued = count(study, QUEUED)
            if queued:
                try:
                    study.optimize(objective, n_trials=queued, catch=(Exception,), callbacks=[requeue.replace])
                except QueueEmpty:
                    pass
                continue
            if not count(study, TrialState.RUNNING):
                break
            time.sleep(HEARTBEAT_S)  # as a worker waits for the others' trials, to retry any whose worker dies
            optuna.storages.fail_stale_trials(study)
        storage.backend.engine.dispose()
    except Exception:  # noqa: BLE001 - counted and shown: a worker's error is a result here
        errors.append(f"{worker}: {traceback.format_exc(limit=3)}")


def _process(url: str, name: str, first: int, threads: int, train_s: float, errors: Any, ready: Any,
             spent: Any) -> None:
    """A light process running ``threads`` simulated workers; they start together with every other
    process's once all are ready (``ready``, a barrier across the processes). Appends to ``spent``
    its CPU seconds from then on (its start-up aside) and its peak resident memory in MiB."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    found: list[str] = []
    cpu_at_start: list[float] = []

    def start() -> None:
        ready.wait()
        cpu_at_start.append(time.process_time())

    here = threading.Barrier(threads, action=start)
    workers = [threading.Thread(target=_work, args=(url, name, f"sim:{first + index}", train_s, found, here))
               for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if not cpu_at_start:  # a worker could not open its storage: the other processes stop waiting too
        ready.abort()
    errors.extend(found)
    spent.append((time.process_time() - (cpu_at_start or [0.0])[0],
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


@dataclass(frozen=True)
class WorkersResult:
    workers: int
    trials: int
    per_second: float
    max_connections: int
    errors: int
    failed: int
    lost: int  # queued, never run
    stuck: int  # still running
    duplicated: int  # finished beyond the trials queued
    first_error: str = ""
    client_cpu_s: float = float("nan")  # CPU seconds of the workers' processes (start-up aside), per finished trial
    server_cpu_s: float = float("nan")  # the same of the PostgreSQL server (when local), per finished trial
    client_peak_mib: float = float("nan")  # the largest worker process's peak resident memory (its threads')


def _ticks(pid: int) -> tuple[int, int] | None:
    """A process's parent and its CPU in clock ticks: its own and its waited-for children's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(value) for value in fields[11:15])


def server_cpu_s(engine: sqlalchemy.Engine) -> float:
    """CPU seconds the PostgreSQL server has spent so far, when it runs on this machine: its
    postmaster's own and its children's, live ones and the ones it reaped (a backend ends with its
    connection); nan when it runs elsewhere."""
    with engine.connect() as connection:
        backend = int(connection.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one())
    found = _ticks(backend)
    if found is None:
        return float("nan")
    postmaster = found[0]
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        process = _ticks(int(stat.parent.name))
        if process is not None and (process[0] == postmaster or int(stat.parent.name) == postmaster):
            total += process[1]
    return total / os.sysconf("SC_CLK_TCK")


def _connections(engine: sqlalchemy.Engine, stop: threading.Event, peak: list[int]) -> None:
    # Autocommit: inside one transaction PostgreSQL shows the same snapshot of pg_stat_activity.
    with engine.connect() as connection:
        while not stop.wait(0.1):
            found = connection.execute(sqlalchemy.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")).scalar_one()
            peak[0] = max(peak[0], int(found) - 1)  # this connection aside


def simulate(url: str, name: str, workers: int, trials_per_worker: int, train_s: float,
             processes: int = 4) -> WorkersResult:
    """``workers`` simulated workers on a new study ``name`` of ``workers * trials_per_worker`` queued trials."""
    total = workers * trials_per_worker
    study = optuna.create_study(study_name=name, storage=open_storage(url), directions=["maximize", "minimize"])
    study.set_user_attr(CONFIG_ATTR, {"name": name})  # an automl study: its workers run queued trials only
    queue_trials(study, total)
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    stop, peak = threading.Event(), [0]
    monitor = threading.Thread(target=_connections, args=(engine, stop, peak))
    monitor.start()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        errors, spent = manager.list(), manager.list()
        processes = min(processes, workers)
        shares = [workers // processes + (index < workers % processes) for index in range(processes)]
        ready = context.Barrier(processes + 1)  # the processes', and this one's
        started = [context.Process(target=_process, args=(url, name, sum(shares[:index]), share, train_s, errors,
                                                          ready, spent)) for index, share in enumerate(shares)]
        for process in started:
            process.start()
        # The server's CPU from when the workers start popping, as theirs: a connection's start (its
        # authentication, its first reads of the catalog) is no finished trial's cost.
        with contextlib.suppress(threading.BrokenBarrierError):  # a worker could not open its storage
            ready.wait()
        server_before = server_cpu_s(engine)
        for process in started:
            process.join()
        found_errors, client = list(errors), list(spent)
    stop.set()
    monitor.join()
    server = server_cpu_s(engine) - server_before
    engine.dispose()
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds() \
        if done else float("nan")
    return WorkersResult(workers, total, len(done) / span, peak[0], len(found_errors),
                         sum(t.state == TrialState.FAIL for t in trials),
                         sum(t.state == QUEUED for t in trials), sum(t.state == TrialState.RUNNING for t in trials),
                         max(0, len(done) - total), found_errors[0] if found_errors else "",
                         sum(cpu for cpu, _ in client) / max(len(done), 1), server / max(len(done), 1),
                         max((mib for _, mib in client), default=float("nan")))
