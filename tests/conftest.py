"""Shared helpers: run the real CLI, write study files, make installed plugin distributions."""

from __future__ import annotations

import configparser
import contextlib
import gc
import importlib
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from automl.storage._optuna import study_storage
from automl.storage.trial_queue import Requeue
from automl.storage.urls import Heartbeat
from automl.storage.worker_storage import WorkerStorage, open_worker_storage

REPO = Path(__file__).resolve().parents[1]
AUTOML = [sys.executable, "-m", "automl"]
ALLOWLIST_ENV = "AUTOML_LOAD_PLUGINS"
# The suite sees the built-in plugins only, in this process and in every automl it starts: a
# third-party plugin installed on the developer's machine must not fail (or change) automl's own
# tests. A test that installs plugins allows them by name (with_path does it for a site folder).
os.environ[ALLOWLIST_ENV] = ""
# One torch thread in this process and in every process it starts (they inherit OMP_NUM_THREADS),
# as `make quickstart` runs: the suite's models are tiny, and on the shared 2-core machine a second
# thread spin-waits for the first, which cost the suite more than twice its CPU time for no gain.
# A test about threads sets its own (torch.set_num_threads, or OMP_NUM_THREADS in a child's env).
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


def trial_id_of(study: optuna.Study, number: int) -> int:
    """The storage's id of ``study``'s trial ``number``, through Optuna's public storage API."""
    storage = study_storage(study)
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


def worker_study(url: str, name: str) -> optuna.Study:
    """Study ``name`` as a worker loads it: on a worker's storage with a heartbeat every second (a
    trial is stale 3 s after its last), its trials not retried, sampled at random (seed 0)."""
    storage = open_worker_storage(url, Heartbeat(1, 3, Requeue(0)))
    return optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))


def worker_storage_of(study: optuna.Study) -> WorkerStorage:
    """The worker storage ``study`` was loaded with (open_worker_storage)."""
    storage = study_storage(study)
    assert isinstance(storage, WorkerStorage)
    return storage


@pytest.fixture(autouse=True)
def _optuna_verbosity_restored() -> Iterator[None]:
    """Optuna's log level as it was before each test: a test that quiets Optuna must not hide the
    records a later test reads."""
    level = optuna.logging.get_verbosity()
    yield
    optuna.logging.set_verbosity(level)


NEEDS_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
# Tests of code that runs on either device take this parameter; the GPU case skips without one.
DEVICES = [pytest.param(torch.device("cpu"), id="cpu"), pytest.param(torch.device("cuda"), id="cuda", marks=NEEDS_GPU)]


@dataclass(frozen=True)
class CliResult:
    """What a command did: its exit code and what it printed (as subprocess.CompletedProcess has them)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run ``automl ARGS`` as a user would from ``cwd`` with ``env``, in this process (automl.cli.main):
    milliseconds where a fresh interpreter spends seconds of imports. As a fresh process would, it
    reads the data files and builds the plugin registry afresh, puts ``env``'s PYTHONPATH on the
    import path (and drops the modules imported from there after). ``timeout`` bounds spawn_cli only."""
    return _in_process(list(args), cwd, {"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})


def spawn_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run ``automl ARGS`` in a fresh interpreter: where the process boundary is the point."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    done = subprocess.run([*AUTOML, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return CliResult(done.returncode, done.stdout, done.stderr)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A log handler writing to whatever sys.stderr is when a record comes (Optuna's default
    handler keeps the stream it was made with)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextlib.contextmanager
def _import_path(env: dict[str, str]) -> Iterator[None]:
    """``env``'s PYTHONPATH on sys.path for the block, a registry built from it, and after the block
    the modules imported from there forgotten and the registry built again when next asked for."""
    from automl.plugin.registry import registry

    added = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry and entry not in sys.path]
    before = set(sys.modules)
    sys.path[:0] = added
    importlib.invalidate_caches()
    registry.cache_clear()
    try:
        yield
    finally:
        del sys.path[:len(added)]
        for name in set(sys.modules) - before:
            if any(str(getattr(sys.modules[name], "__file__", None) or "").startswith(entry) for entry in added):
                del sys.modules[name]
        registry.cache_clear()


@contextlib.contextmanager
def _process_state(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """``cwd`` as the working directory and ``env`` in os.environ for the block, as a fresh process
    started there with them would have; both as they were after."""
    saved_env = {key: os.environ.get(key) for key in env}
    saved_cwd = Path.cwd()
    try:
        os.environ.update(env)
        os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def like_a_fresh_process(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """For the block, this process as a fresh one started in ``cwd`` with ``env`` would be: the
    working directory, the environment (which the processes it starts inherit), and the plugins on
    ``env``'s PYTHONPATH in a registry built afresh; all as they were after. For a library call
    (``automl.run``) where run_cli runs a command."""
    with _process_state(cwd, env), _import_path(env):
        yield


def _in_process(argv: list[str], cwd: Path, env: dict[str, str]) -> CliResult:
    import automl.cli

    saved_argv, saved_err = sys.argv, automl.cli.ERR
    out, err = io.StringIO(), io.StringIO()
    optuna_log = _CurrentStderr()
    optuna_log.setFormatter(logging.Formatter("[%(levelname)1.1s %(asctime)s] %(message)s"))
    try:
        with _process_state(cwd, env):
            sys.argv = ["automl", *argv]
            optuna.logging.disable_default_handler()
            optuna.logging.get_logger("optuna").addHandler(optuna_log)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _import_path(env):
                automl.cli.ERR = automl.cli.error_console()  # as a fresh process makes it: COLUMNS as set now
                try:
                    code = automl.cli.main(argv)
                except SystemExit as exit:  # argparse: --help, --version, usage errors
                    code = exit.code if isinstance(exit.code, int) else 1
    finally:
        automl.cli.ERR = saved_err
        optuna.logging.get_logger("optuna").removeHandler(optuna_log)
        optuna.logging.enable_default_handler()
        sys.argv = saved_argv
    return CliResult(code, out.getvalue(), err.getvalue())


def run_pytest(*args: str, cwd: Path, env: dict[str, str]) -> CliResult:
    """``python -m pytest -q -p no:cacheprovider ARGS`` run from ``cwd`` with ``env``, as a plugin's
    author runs their package's tests, in this process: a pytest session of its own (collection,
    capture, reports) without a fresh interpreter's seconds of imports. As ``python -m`` does, it puts
    ``cwd`` first on the import path; the modules imported from there or from ``env``'s PYTHONPATH,
    and the import path entries the session adds, are gone after."""
    out, err = io.StringIO(), io.StringIO()
    on_path = {**env, "PYTHONPATH": os.pathsep.join([str(cwd), env.get("PYTHONPATH", "")])}
    with _process_state(cwd, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            _import_path(on_path):
        path = list(sys.path)
        try:
            code = pytest.main(["-q", "-p", "no:cacheprovider", *args])
        finally:
            sys.path[:] = path  # pytest puts each test folder first (its default import mode)
    return CliResult(int(code), out.getvalue(), err.getvalue())


def write_study(directory: Path, text: str, name: str = "study.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def make_distribution(site: Path, dist_name: str, modules: dict[str, str], entry_points: dict[str, str],
                      version: str = "1.0") -> Path:
    """Lay out an installed distribution (modules plus dist-info) under ``site``.

    This is exactly what pip leaves in site-packages, without a build step per test.
    """
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[automl]\n{lines}\n")
    return site


def entry_point_names(site: Path) -> list[str]:
    """The automl entry points of the distributions installed under ``site``."""
    names = []
    for path in sorted(site.glob("*.dist-info/entry_points.txt")):
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.read(path)
        names += list(parser["automl"]) if parser.has_section("automl") else []
    return names


def with_path(site: Path) -> dict[str, str]:
    """Environment that puts ``site`` on the import path of a subprocess and loads its plugins."""
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            ALLOWLIST_ENV: ",".join(entry_point_names(site))}


# A family whose training steps sleep: a trial takes its (wall) time without taking a core, so the
# tests of workers, kills, outages and deadlines get trials that last for little CPU. A linear
# model on the flattened images (digits); after a model's first FAST_STEPS training steps, each of
# its steps sleeps STEP_S seconds.
SLEEPY = """
import math
import time

from torch import nn

import automl

STEP_S = {step_s}
FAST_STEPS = {fast_steps}


class Sleepy(nn.Module):
    def __init__(self, features, classes):
        super().__init__()
        self.linear = nn.Linear(features, classes)
        self.steps = 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps > FAST_STEPS:
                time.sleep(STEP_S)
        return self.linear(x.flatten(1))


class SleepyFamily:
    name = "sleepy"
    task_kinds = ("image",)

    def search_space(self, trial, task):
        return {"bias": trial.suggest_categorical("bias", [True])}

    def build(self, params, task):
        features = math.prod(task.input_shape)
        return Sleepy(features, task.num_classes)


@automl.hookimpl
def register_families(register):
    register(SleepyFamily())
"""


def sleepy_site(folder: Path, step_s: float = 0.01, fast_steps: int = 0) -> Path:
    """The "sleepy" family (see SLEEPY) installed under ``folder / "site"``; ``with_path`` of it loads it."""
    source = SLEEPY.replace("{step_s}", repr(step_s)).replace("{fast_steps}", str(fast_steps))
    return make_distribution(folder / "site", "automl-sleepy", {"sleepy_mod": source}, {"sleepy": "sleepy_mod"})


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    """A two-trial digits study with one epoch per trial, storing into tmp_path."""
    return write_study(tmp_path, f"""
        name = "tiny"
        n_trials = 2
        storage = "sqlite:///{tmp_path / 'tiny.db'}"
        [train]
        max_epochs = 1
        batch_size = [128]
    """)


def has_study(path: Path) -> bool:
    """Whether the SQLite file at ``path`` holds a study yet; read-only, so it creates nothing."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT count(*) FROM studies").fetchone()[0] > 0
    except sqlite3.Error:
        return False


POSTGRES_ENV = "AUTOML_TEST_POSTGRES_URL"


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on the test PostgreSQL server (.ci/postgres.sh starts one), dropped after.

    Skips where no server is configured, except in CI, where the PostgreSQL tests must run.
    """
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set in CI: .ci/run must start PostgreSQL")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (.ci/postgres.sh starts one)")
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(base)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    database = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    try:
        yield url.set(database=database).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the test PostgreSQL server for the test (see postgres_database)."""
    with postgres_database("automl_test") as url:
        yield url


# One small, fixed MLP config; the two warm-start configs differ only in learning rate, so the
# slow one has the same FLOPs and (after one epoch at lr 1e-4) lower accuracy: it is dominated
# when it finishes and stores no weights.
MLP_CONFIG = {"family": "mlp", "mlp.depth": 1, "mlp.width": 64, "mlp.activation": "relu", "mlp.norm": "none",
              "mlp.dropout": 0.0, "train.optimizer": "adam", "train.weight_decay": 1e-6,
              "train.batch_size": 64}
FAST, SLOW = {**MLP_CONFIG, "train.lr": 1e-2}, {**MLP_CONFIG, "train.lr": 1e-4}


@dataclass(frozen=True)
class SearchedStudy:
    name: str
    url: str
    folder: Path
    run: CliResult


@pytest.fixture(scope="session")
def searched_study(tmp_path_factory: pytest.TempPathFactory) -> SearchedStudy:
    """A study run by `automl run` on a real SQLite file: the FAST and SLOW configs by warm start
    (from a JSON file given with --warm-start), then one sampled MLP; one epoch each."""
    folder = tmp_path_factory.mktemp("searched")
    (folder / "configs.json").write_text(json.dumps([FAST, SLOW]))
    url = f"sqlite:///{folder / 'results.db'}"
    study_file = write_study(folder, f"""
        name = "results"
        n_trials = 1
        storage = "{url}"
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 1
        batch_size = [64]
    """)
    run = run_cli("run", str(study_file), "--warm-start", "configs.json", "--no-progress", cwd=folder)
    assert run.returncode == 0, run.stderr
    return SearchedStudy("results", url, folder, run)




@pytest.fixture(autouse=True)
def _collector_frozen() -> None:
    """What is alive as each test starts (the imported modules, Lightning and torch among them, and
    what earlier tests keep, such as pytest's reports) is frozen, out of the collector's sight: each
    trial ends with gc.collect() (automl.training.device.free_memory), which would otherwise scan
    those half a million objects again, 0.2-0.7 CPU-s a time. An automl worker freezes them the
    same way where its process has not; the collection first frees what earlier tests left."""
    gc.collect()
    gc.freeze()
