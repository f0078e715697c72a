"""Running a planned study: create or resume it in storage, queue its trials, and work on them."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import optuna

from automl.config import BudgetConfig
from automl.errors import UsageError
from automl.search.fingerprint import check_resumable, keep_created_families, record_fingerprint
from automl.search.objective import Objective
from automl.search.plan import StudyPlan
from automl.search.pruners import make_pruner
from automl.search.samplers import make_sampler
from automl.search.time_budget import Deadline
from automl.storage.artifacts import artifact_dir, open_store
from automl.storage.schema import CONFIG_ATTR, FINGERPRINT_ATTR, OBJECTIVES, TASK_ATTR
from automl.storage.trial_queue import QUEUED, Queued, Requeue, count, queue_configs, queue_trials
from automl.storage.urls import Heartbeat, open_storage, pasteable, redact
from automl.storage.worker_storage import open_worker_storage
from automl.workers.pool import share_gpu
from automl.workers.study_budget import StudyBudget, record_study_budget
from automl.workers.worker import TrialCallback, run_worker


def _check_resumable(study: optuna.Study, plan: StudyPlan) -> list[str]:
    """Notes on harmless changes since ``study`` was created; UsageError for the others. A study
    file without [search] families goes on with the families the study was created with
    (``plan.families`` narrowed to them)."""
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        return []
    # Samplers compare trials' constraints one by one (GP refuses trials with differing sets),
    # so the budget keys that are set must stay; their limits may change.
    where = f"study {plan.config.name!r} in {redact(plan.storage_url)}"
    limits = BudgetConfig.model_validate(stored.get("budget") or {}).limits()
    now = plan.config.budget.limits()
    if sorted(limits) != sorted(now):
        raise UsageError(f"{where} was created with budget keys {sorted(limits)}, the study file now gives "
                         f"{sorted(now)}; use a new study name or restore the old setting")
    # A trial stores its constraint against the limit of its day, which keeps judging it.
    moved = [f"{where}: [budget] {key} was {limits[key]:g}, now {now[key]:g}; trials already stored keep the "
             "feasibility the old limit gave them, new trials are judged by the new one"
             for key in sorted(now) if now[key] != limits[key]]
    return [*keep_created_families(study, plan), *moved, *check_resumable(study, plan)]


def create_or_resume(plan: StudyPlan, note: Callable[[str], None] = lambda text: None) -> optuna.Study:
    """Create the study, or load it to queue more trials.

    A resumed study must have been created with the space, objectives and data of ``plan``
    (automl.search.fingerprint): UsageError otherwise, before anything is queued; ``note`` hears
    of changes that are harmless. The study returned only queues trials; workers sample them
    through join_study's sampler.
    """
    config = plan.config
    storage = open_storage(plan.storage_url)
    directions = [OBJECTIVES[name].direction for name in config.search.objectives]
    try:
        study = optuna.create_study(study_name=config.name, storage=storage, directions=directions,
                                    load_if_exists=True)
    except ValueError as exc:
        raise UsageError(f"study {config.name!r} in {redact(plan.storage_url)} cannot be resumed: {exc}") from None
    for text in [*_check_resumable(study, plan), *record_study_budget(study, config.budget)]:
        note(text)
    if CONFIG_ATTR not in study.user_attrs:
        study.set_metric_names(list(config.search.objectives))
        study.set_user_attr(CONFIG_ATTR, {**config.to_dict(), "families": list(plan.families),
                                          "objectives": list(config.search.objectives)})
        study.set_user_attr(TASK_ATTR, plan.data.task.to_dict())
    if FINGERPRINT_ATTR not in study.user_attrs:
        record_fingerprint(study, plan)
    return study


def queue_run(study: optuna.Study, n_trials: int | None, warm_start: Sequence[Queued] = (),
              startup: Sequence[Queued] = ()) -> bool:
    """Queue ``n_trials`` trials (None: until the deadline of the run, automl.storage.trial_queue),
    unless trials are still queued: then a run resumes those.

    Returns whether it queued (False: it resumes). Trials stay queued when a run was interrupted,
    timed out or stopped on failures, so the next run finishes what the last one set out to do. The
    ``warm_start`` configs (automl.search.warm_start) are queued first, in addition to ``n_trials``;
    the ``startup`` configs (automl.search.startup) next, as the first of the ``n_trials``.
    """
    if count(study, QUEUED):
        return False
    startup = startup if n_trials is None else startup[:n_trials]
    queue_configs(study, [*warm_start, *startup])
    queue_trials(study, None if n_trials is None else n_trials - len(startup))
    return True


def sampler_seed(seed: int, started_trials: int, worker_tag: str) -> int:
    """The study seed moved past earlier trials, and apart for each worker.

    Workers that start together with one seed would sample the same parameters; the in-process
    worker (tag "") keeps ``seed + started_trials``, so a one-process study is reproducible.
    """
    return seed + started_trials + (zlib.crc32(worker_tag.encode()) if worker_tag else 0)


def join_study(plan: StudyPlan, worker_tag: str = "", note: Callable[[str], None] = lambda text: None,
               checked: bool = False) -> tuple[optuna.Study, Requeue]:
    """Load the stored study as a worker: heartbeats on, and only queued trials can run.

    The stored study is checked against ``plan`` as create_or_resume checks it (UsageError for a
    change that alters what trials sample or train on; ``note`` hears of the harmless ones),
    unless ``checked``: this process created or resumed it with create_or_resume just before.
    """
    config = plan.config
    requeue = Requeue(config.workers.max_retry)
    heartbeat = Heartbeat(config.workers.heartbeat_interval, config.workers.grace_period, requeue,
                          config.workers.storage_retry_s)
    storage = open_worker_storage(plan.storage_url, heartbeat)
    try:
        study_id = storage.get_study_id_from_name(config.name)
    except KeyError:
        raise UsageError(f"no study named {config.name!r} in {redact(plan.storage_url)}; create it and "
                         f"queue its trials first: {pasteable('automl run STUDY.toml --workers 0', plan.storage_url)}"
                         ) from None
    trials = storage.get_all_trials(study_id, deepcopy=False)
    started = sum(t.state != QUEUED for t in trials)
    study = optuna.load_study(study_name=config.name, storage=storage,
                              sampler=make_sampler(config.search.sampler,
                                                   sampler_seed(config.seed, started, worker_tag)),
                              pruner=make_pruner(config.search, config.train.max_epochs))
    if not checked:
        for text in _check_resumable(study, plan):
            note(text)
    return study, requeue


def work(plan: StudyPlan, deadline: Deadline | None, show_progress_bar: bool = True,
         callbacks: Sequence[TrialCallback] = (), worker_tag: str = "",
         note: Callable[[str], None] = lambda text: None, checked: bool = False) -> optuna.Study:
    """Run the study's queued trials in this process, as one of any number of workers.

    The run ends by ``deadline`` (None: no time budget; automl.search.time_budget), or the study's
    own deadline when it is earlier (``[budget] study_timeout``, automl.workers.study_budget): no
    trial starts after it, and the one under way stops at its next training step, counting the
    epochs it validated. No trial starts once the study's ``[budget] device_hours`` are spent.
    ``note`` and ``checked``: see join_study.
    """
    study, requeue = join_study(plan, worker_tag, note, checked)
    budget = StudyBudget.of(study)
    at = budget.earliest(deadline.at if deadline else None)
    deadline = Deadline(at) if at is not None else None
    artifacts = open_store(artifact_dir(plan.storage_url, plan.config.artifacts))
    objective = Objective(plan.config, plan.families, plan.data, artifacts, deadline)
    share_gpu(objective.device, plan.config.workers.trials_per_gpu)
    run_worker(study, objective, plan.config.workers, requeue, objective.device,
               deadline=deadline.at if deadline else None, show_progress_bar=show_progress_bar,
               callbacks=callbacks, budget=budget)
    return study
