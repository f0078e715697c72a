"""``automl run --workers N``: N worker processes on this machine, sharing its cores or GPUs.

Each worker is ``automl worker STUDY.toml``, the same command that joins a study from another
machine, so a local pool and a cluster behave alike. The storage URL reaches the workers through
the environment, never their command lines, where ``ps`` would show its password.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from automl.storage.urls import STORAGE_ENV
from automl.workers.interrupts import Interrupted, raise_on_signals

# How long workers get to record their interrupted trials before they are killed.
SHUTDOWN_GRACE_S = 60


def available_cpus() -> int:
    """Cores this process may run on (a container's or taskset's limit, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus(device: torch.device) -> int:
    """GPUs to hand out to workers: none when trials run on the CPU."""
    return torch.cuda.device_count() if device.type == "cuda" else 0


def default_workers(gpus: int, trials_per_gpu: int) -> int:
    """Workers `automl run` starts without --workers: ``trials_per_gpu`` on each GPU, else one."""
    return gpus * trials_per_gpu if gpus else 1


def share_gpu(device: torch.device, trials_per_gpu: int) -> None:
    """Cap this process at its share of the GPU, so one packed trial cannot starve the others.

    A trial over its share fails with out-of-memory (and is replaced) instead of failing the
    trials beside it.
    """
    if device.type == "cuda" and trials_per_gpu > 1:
        # The cap is per GPU and wants its index: a bare "cuda" device has none.
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.set_per_process_memory_fraction(1 / trials_per_gpu, index)


def threads_per_worker(n_workers: int, cpus: int) -> int:
    """An even share of the cores: more threads than cores only makes workers wait on each other."""
    return max(1, cpus // n_workers)


def worker_environment(index: int, n_workers: int, cpus: int, gpus: int, storage_url: str) -> dict[str, str]:
    """Environment of worker ``index``: the storage, its thread share, and its GPU when there are several."""
    threads = str(threads_per_worker(n_workers, cpus))
    env = {STORAGE_ENV: storage_url, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpus > 1:
        # One GPU per worker, round robin; with one GPU every worker shares it.
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    return env


def worker_command(study_file: Path, threads: int, deadline: float | None) -> list[str]:
    command = [sys.executable, "-m", "automl", "worker", str(study_file), "--no-progress",
               "--threads", str(threads)]
    # The run's deadline as a time, not a duration: a worker's own start-up is part of the run.
    return command + (["--deadline", repr(deadline)] if deadline else [])


def run_pool(study_file: Path, storage_url: str, n_workers: int, gpus: int,
             deadline: float | None = None, threads: int | None = None) -> list[int]:
    """Start ``n_workers`` workers on the study and wait for all; returns their exit codes.

    Each trains with ``threads`` CPU threads, by default an even share of the cores (threads_per_worker).

    A termination signal (SIGINT, SIGTERM, SIGHUP, ...: interrupts.TERMINATION_SIGNALS) is passed
    on to the workers, which record their running trials as interrupted; then Interrupted is raised
    here too.
    """
    cpus = available_cpus()
    threads = threads or threads_per_worker(n_workers, cpus)
    processes = [
        subprocess.Popen(worker_command(study_file, threads, deadline),
                         env={**os.environ, **worker_environment(index, n_workers, cpus, gpus, storage_url)})
        for index in range(n_workers)
    ]
    try:
        with raise_on_signals():
            return [process.wait() for process in processes]
    except Interrupted as interrupt:
        for process in processes:
            if process.poll() is None:
                process.send_signal(interrupt.signum)
        for process in processes:
            try:
                process.wait(timeout=SHUTDOWN_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
        raise
