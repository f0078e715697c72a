"""What a run tells its user about the study it starts or resumes (automl.runner logs these lines).

How messages name the study, the one line on what it searches, and, where a run finds trials still
queued, whose they are: a run going on now in another process or an earlier one that stopped. Each
function returns text and writes nothing; reading the study's stored heartbeats is the one storage
access. Imports from the stages (automl.STAGES) only, as the modules on top of them do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from automl.errors import plural
from automl.storage.urls import redact

if TYPE_CHECKING:
    from automl.search.plan import StudyPlan
    from automl.search.time_budget import Deadline


def where(plan: StudyPlan) -> str:
    """How messages name the study: its file, else its name."""
    return str(plan.config.source) if plan.config.source else f"study {plan.config.name!r}"


def describe(plan: StudyPlan) -> str:
    """One line on what the study searches, on which data, where it is stored."""
    task, families = plan.data.task, list(plan.families)
    return (f"study {plan.config.name!r}: {plural(len(families), 'family', 'families')} "
            f"({', '.join(families)}) on {plan.config.data.dataset} ({task.kind}, input {list(task.input_shape)}, "
            f"{task.num_classes} classes), objectives {', '.join(plan.config.search.objectives)}, "
            f"storage {redact(plan.storage_url)}")


def resuming(study: optuna.Study, plan: StudyPlan, deadline: Deadline | None) -> str:
    """What a run that found trials still queued does with them, and whose they are: a run going on
    now where another process runs some of the study's trials (their heartbeats are fresh), else an
    earlier run."""
    from automl.storage.trial_queue import samples_until_deadline, still_queued

    queued, (live, stale) = still_queued(study), _running_elsewhere(study, plan)
    grace = plan.config.workers.grace_period
    whose = (f"still queued by a run going on now: {live} running in another process, its heartbeat fresh "
             f"([workers] grace_period {grace} s); this run works through the same queue beside it" if live else
             "still queued from an earlier run")
    if stale:
        whose += (f"; the {plural(stale, 'trial')} left running by a process that stopped (no heartbeat for over "
                  f"{grace} s) will be queued again when a worker next starts a trial")
    queued_text = f"{plural(queued, 'trial')} {whose}"
    if not samples_until_deadline(study):
        return f"resuming: {queued_text}; n_trials adds more once they are done"
    if deadline:
        return f"resuming: {queued_text}; that run sampled until its deadline, this run samples until its own"
    return (f"resuming: {queued_text}; that run sampled until its deadline, this run has no time budget, so it "
            "runs those and stops; n_trials adds more once they are done")


def _running_elsewhere(study: optuna.Study, plan: StudyPlan) -> tuple[int, int]:
    """The study's running trials (this run runs none yet), as (live, stale): stale where their
    last heartbeat is older than [workers] grace_period, the worker gone; live otherwise."""
    from automl.storage.trial_queue import count
    from automl.storage.trial_states import stale_trial_ids
    from automl.storage.urls import open_storage

    running = count(study, optuna.trial.TrialState.RUNNING)
    if not running:
        return 0, 0
    storage = open_storage(plan.storage_url)
    try:
        with storage.engine.connect() as connection:
            stale = len(stale_trial_ids(connection, storage.get_study_id_from_name(study.study_name),
                                        plan.config.workers.grace_period))
    finally:
        storage.remove_session()
        storage.engine.dispose()
    return running - stale, stale
