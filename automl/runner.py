"""Running a study: the one orchestration behind ``automl.run``, ``automl run`` and ``automl worker``.

A run plans the study (its config checked against the installed plugins and its data), creates or
resumes it in storage (checking once that a resumed study keeps the space and data it was created
with), queues its trials, and works on them in this process or in worker processes. A worker
joins a study that a run queued, with the same checks and the same notes. The deadline of a time
budget is resolved once (``_deadline``), from the moment the run or worker started.

Notes (a family left out, a harmless change since the study was created, trials still queued)
go to the ``automl`` logger at INFO, warnings at WARNING: a library call prints nothing but its
progress bar unless the caller configures logging (``logging.basicConfig(level="INFO")``); the
command line prints them. Optuna's own INFO lines are held back during a run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import optuna

from automl.config import IN_MEMORY_DATASET, StudyConfig, load_study_file
from automl.errors import AutomlError, UsageError, plural
from automl.plugin.arrays import LabeledArrays, labeled_arrays
from automl.plugin.registry import registry
from automl.run_messages import describe, resuming, where
from automl.storage.urls import load_study, redact
from automl.workers.hard_deadline import HardDeadline
from automl.workers.hard_deadline import paused as paused_alarm
from automl.workers.hard_deadline import tighten as tighten_alarm

if TYPE_CHECKING:  # imported when a run starts: `import automl` stays quick
    from automl.search.plan import StudyPlan
    from automl.search.time_budget import Deadline
    from automl.workers.worker import TrialCallback

LOG = logging.getLogger(__name__)

ArrayData = tuple[np.ndarray, np.ndarray] | LabeledArrays
"""In-memory data: ``(x, y)`` as the ``npz`` dataset takes them, or a LabeledArrays."""


class WorkersFailed(AutomlError):
    """Some of a run's worker processes exited with an error; ``study`` holds what the others did."""

    def __init__(self, study: optuna.Study, codes: Sequence[int], workers: int) -> None:
        super().__init__(f"{len(codes)} of {workers} workers failed (exit codes {', '.join(map(str, codes))}); "
                         "their messages are above")
        self.study = study


def run(config: StudyConfig | str | os.PathLike[str], *, n_trials: int | None = None, timeout: float | None = None,
        storage: str | None = None, workers: int | None = 1, threads: int | None = None, progress: bool = True,
        data: ArrayData | None = None, warm_start: Sequence[str] = (), started: float | None = None) -> optuna.Study:
    """Run (or resume) a study, as ``automl run`` does, and return it.

    Args:
        config: a ``StudyConfig``, or the path of a study file (``load_study_file``).
        n_trials: trials to add (default: the config's ``n_trials``; without one, as many as the
            time budget allows, else 30). A study with trials still queued runs those first.
        timeout: the run's wall-clock budget in seconds (default: the config's ``timeout``), counted
            from ``started``: no trial starts after it, the trials under way stop at their next
            training or validation step, counting the epochs they validated, and an alarm a few
            seconds past it (automl.workers.hard_deadline) ends whatever cannot look at a clock.
        storage: SQLAlchemy URL of the study (default: the config's ``storage``, else
            ``sqlite:///automl.db``).
        workers: 1 trains in this process; N > 1 starts N ``automl worker`` processes on this
            machine; 0 only queues the trials, for workers started elsewhere; None: the config's
            ``[workers] trials_per_gpu`` per visible GPU, else 1.
        threads: CPU threads for training per worker (default: torch's with one worker, else an
            even share of the cores).
        progress: draw a progress bar on stderr.
        data: in-memory data instead of the config's dataset: ``(x, y)`` NumPy arrays shaped as the
            ``npz`` dataset takes them: ``x`` of shape ``[N, C, H, W]`` (images), ``[N, T, F]``
            (sequences) or ``[N, F]`` (tables), in the units the caller keeps them; ``y`` of shape
            ``[N]``, integer labels 0..K-1 or strings naming the classes; or a ``LabeledArrays``
            (token ids: ``kind="tokens"``). Split by the config's ``val_size``/``test_size`` and
            ``seed``, standardized like a dataset's, and fingerprinted (SHA-256), so resuming the
            study with other arrays is refused. Trains in this process only (``workers=1``).
        warm_start: warm-start sources added to the config's ``[search] warm_start``.
        started: when the time budget started (``time.time()`` seconds; default: this call;
            ``automl run`` gives its process's start).

    Returns:
        The ``optuna.Study``: ``automl.pareto_front(study)`` is its front.

    Raises:
        UsageError: a wrong config, argument or data, or a stored study the config cannot resume;
            raised before anything is written.
        PluginError: a plugin failed to load.
        WorkersFailed: some worker processes failed (``.study`` holds the others' trials).
        automl.workers.interrupts.Interrupted: a termination signal (SIGINT, SIGTERM, SIGHUP, ...) or the
            alarm past the deadline (OutOfTime, automl.workers.hard_deadline); the running trials are
            queued again.
    """
    started = time.time() if started is None else started  # the budget covers loading the data too
    _check_arguments(n_trials=n_trials, timeout=timeout, workers=workers, threads=threads)
    if data is not None and workers != 1:
        raise UsageError(f"data=(x, y) lives in this process, so it trains here (workers=1), not with workers="
                         f"{workers}; for workers elsewhere, save the arrays as an .npz file (x and y) and give "
                         "its path as the config's data (dataset = \"npz\")")
    config = _loaded(config)
    deadline_at = _deadline_at(timeout or config.timeout, started)
    with quiet_libraries(), HardDeadline(deadline_at):
        from automl.search.plan import startup_deadline  # the start-up's checks stop at it
        plan = _plan(config, storage, data, startup_deadline(started, deadline_at))
        return run_plan(plan, n_trials=n_trials, timeout=timeout, workers=workers, threads=threads, progress=progress,
                        warm_start=warm_start, started=started)


def run_plan(plan: StudyPlan, *, n_trials: int | None = None, timeout: float | None = None, workers: int | None = 1,
             threads: int | None = None, progress: bool = True, warm_start: Sequence[str] = (),
             callbacks: Sequence[TrialCallback] = (), started: float | None = None) -> optuna.Study:
    """What ``run`` does once its config is planned (automl.search.plan: its data loaded, its
    families chosen from a registry); the arguments are ``run``'s. ``callbacks`` run after each
    trial of a run in this process (Optuna's ``callbacks``); ``started``: when the time budget
    started (``time.time()``, default now)."""
    started = time.time() if started is None else started
    from automl.results.dashboard import DashboardUpdater
    from automl.results.raw_inputs import record_preprocessing
    from automl.search.budget import survey_space
    from automl.search.plan import startup_deadline
    from automl.search.startup import first_configs
    from automl.search.study import create_or_resume, queue_run, work
    from automl.search.warm_start import load_warm_start
    from automl.storage.trial_queue import still_queued
    from automl.training.device import resolve_device
    from automl.workers.interrupts import Interrupted
    from automl.workers.pool import default_workers, run_pool, visible_gpus
    from automl.workers.study_budget import StudyBudget

    config = plan.config
    with quiet_libraries():
        budget_s = timeout or config.timeout
        deadline = _deadline(budget_s, started)
        warm = load_warm_start(plan, warm_start)
        for note in [*plan.notes, *warm.notes]:
            LOG.info("note: %s", note)
        # A resumed study searches the families it was created with: the survey and the summary
        # speak of those (create_or_resume narrows plan.families to them).
        study = create_or_resume(plan, note=lambda text: LOG.info("note: %s", text))
        # The study's own deadline ([budget] study_timeout), when earlier, is this run's too.
        study_budget = StudyBudget.of(study)
        exhausted = study_budget.exhausted(study)
        if exhausted is not None:
            LOG.info("note: no trial is queued or run: %s", exhausted)
            return study
        deadline = _deadline(None, started, study_budget.earliest(deadline.at if deadline else None))
        at = deadline.at if deadline else None
        tighten_alarm(at)
        startup_at = startup_deadline(started, at)  # the start-up's survey and draws stop at it
        budget_s = budget_s or (deadline.left() if deadline else None)
        record_preprocessing(study, plan.data)
        survey = survey_space(plan.families, plan.data.task, plan.data.train.x, config.budget, seed=config.seed,
                              deadline=startup_at)
        for warning in survey.warnings():
            LOG.warning("warning: %s: %s", where(plan), warning)
        LOG.info("%s", describe(plan))
        first = warm.for_study(study)
        if first:
            LOG.info("warm start: %s run before the sampled trials", plural(len(first), "known config"))
        queued = first_configs(plan, study, startup_at)
        if not queue_run(study, n_trials or config.trials_per_run(budget_s), first, queued):
            LOG.info("%s", resuming(study, plan, deadline))
        if deadline and not deadline.left():
            LOG.info("note: the time budget ran out before the first trial: the start-up (libraries, data, checks, "
                     "queueing) took %.0f s of %g s; the queued trials wait for the next run",
                     time.time() - started, budget_s)
        gpus = visible_gpus(resolve_device(config.train.accelerator))
        workers = default_workers(gpus, config.workers.trials_per_gpu) if workers is None else workers
        if workers == 0:
            return study
        if workers == 1:
            # The dashboard's notes and figures are updated between trials, never inside one.
            dashboard = DashboardUpdater(deadline=at)
            with _torch_threads(threads):
                study = work(plan, deadline, show_progress_bar=progress, callbacks=[*callbacks, dashboard],
                             checked=True)
            dashboard.catch_up(study)
            return study
        with DashboardUpdater(deadline=at).in_background(study), _study_file(plan) as study_file:
            try:  # this process only waits for the workers, which keep the deadline themselves
                with paused_alarm():
                    codes = run_pool(study_file, plan.storage_url, workers, gpus, at, threads)
            except Interrupted as interrupt:
                interrupt.queued_after_workers = still_queued(study)
                raise
        study = load_study(config.name, plan.storage_url)
        failed = [code for code in codes if code != 0]
        if failed:
            raise WorkersFailed(study, failed, workers)
        return study


def join(config: StudyConfig | str | os.PathLike[str], *, storage: str | None = None, timeout: float | None = None,
         deadline_at: float | None = None, threads: int | None = None, progress: bool = True,
         started: float | None = None) -> optuna.Study:
    """Join a study that a run queued and run its queued trials here, as ``automl worker`` does.

    The study is checked against ``config`` as a run checks it (UsageError for a change in what its
    trials sample or train on) and the harmless changes are noted. ``deadline_at``: the deadline of
    the run that started this worker (``time.time()`` seconds); else ``timeout`` seconds (default:
    the config's) from ``started`` (default: this call). An alarm a few seconds past the deadline
    ends whatever cannot look at a clock (automl.workers.hard_deadline).
    """
    started = time.time() if started is None else started
    config = _loaded(config)
    deadline_at = deadline_at or _deadline_at(timeout or config.timeout, started)
    with quiet_libraries(), HardDeadline(deadline_at):
        return _join(config, storage, deadline_at, threads, progress)


def _join(config: StudyConfig, storage: str | None, deadline_at: float | None, threads: int | None,
          progress: bool) -> optuna.Study:
    from automl.search.study import work
    from automl.workers.interrupts import Interrupted
    from automl.workers.worker import worker_name

    with _torch_threads(threads):
        deadline = _deadline(None, 0.0, deadline_at)
        plan = _plan(config, storage, None, deadline_at)
        LOG.info("worker %s: study %r in %s", worker_name(), config.name, redact(plan.storage_url))
        for note in plan.notes:
            LOG.info("note: %s", note)
        try:
            return work(plan, deadline, show_progress_bar=progress, worker_tag=worker_name(),
                        note=lambda text: LOG.info("note: %s", text))
        except Interrupted as interrupt:
            interrupt.worker = worker_name()  # several workers print one line each: say whose
            raise


def _check_arguments(**values: float | None) -> None:
    """The numbers the command line checks as it parses them (automl.cli), checked as a call's
    arguments: UsageError naming the argument."""
    least = {"n_trials": 1, "workers": 0, "threads": 1}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UsageError(f"automl.run: {name} must be a number, found {value!r}")
        if name == "timeout" and value <= 0:
            raise UsageError(f"automl.run: timeout must be a number of seconds above 0, found {value}")
        if name in least and (value != int(value) or value < least[name]):
            raise UsageError(f"automl.run: {name} must be a whole number of at least {least[name]}, found {value}")


def _loaded(config: StudyConfig | str | os.PathLike[str]) -> StudyConfig:
    return config if isinstance(config, StudyConfig) else load_study_file(Path(config))


def _deadline(budget_s: float | None, started: float, at: float | None = None) -> Deadline | None:
    """The run's deadline: ``at`` when the run that started this worker gave one, else ``budget_s``
    seconds after ``started``; None without a time budget."""
    from automl.search.time_budget import Deadline

    return Deadline(at) if at is not None else Deadline.after(budget_s, started)


def _deadline_at(budget_s: float | None, started: float) -> float | None:
    """The deadline as a ``time.time()`` value, computed before the libraries that Deadline needs
    are imported: the alarm covers their import too."""
    return None if budget_s is None else started + budget_s


def _plan(config: StudyConfig, storage: str | None, data: ArrayData | None, deadline_at: float | None
          ) -> StudyPlan:
    from automl.search.plan import plan_study

    if data is None:
        return plan_study(config, config.source or f"study {config.name!r}", registry(), storage,
                          deadline=deadline_at)
    if "dataset" in config.data.model_fields_set:
        raise UsageError(f"study {config.name!r} names dataset {config.data.dataset!r} and data=(x, y) were given "
                         "too; give one of them")
    arrays = data if isinstance(data, LabeledArrays) else labeled_arrays(*data)
    in_memory = config.data.model_copy(update={"dataset": IN_MEMORY_DATASET, "options": {}})
    config = config.model_copy(update={"data": in_memory})
    return plan_study(config, f"study {config.name!r}", registry(), storage,
                      arrays=arrays.checked(f"data=(x, y) of study {config.name!r}"), deadline=deadline_at)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Within the block, the lines Optuna and Lightning print by themselves are held back, their
    warnings still shown; restored after.

    Optuna's INFO lines ("A new study created", one per trial) and Lightning's accelerator
    announcement at every trial's start would tear the progress bar, and tell less than the notes
    automl prints; Optuna's experimental-feature warnings (heartbeats, metric names, retries) and
    Lightning's use of a torch API deprecated in newer releases are nothing a user can act on.
    """
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    lightning = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in lightning]
    for logger in lightning:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)
            yield
    finally:
        optuna.logging.set_verbosity(level)
        for logger, before in zip(lightning, levels, strict=True):
            logger.setLevel(before)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Train with ``threads`` CPU threads in this process (None: torch's default), restored after."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _study_file(plan: StudyPlan) -> Iterator[Path]:
    """A study file the worker processes can read: the config's own, else its JSON in a temporary folder."""
    if plan.config.source is not None:
        yield plan.config.source
        return
    with tempfile.TemporaryDirectory(prefix="automl-study-") as folder:
        path = Path(folder) / "study.json"
        path.write_text(json.dumps(plan.config.to_dict()), encoding="utf-8")
        yield path
