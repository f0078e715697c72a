"""Running a study file: check everything, then create or resume the study and optimize."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from automl.config import DEFAULT_STORAGE, StudyConfig
from automl.data import PreparedData, prepare
from automl.errors import UsageError
from automl.objective import DIRECTIONS, Objective
from automl.plugins import Registry
from automl.samplers import make_sampler
from automl.storage import open_storage, redact

CONFIG_ATTR = "automl_config"
TASK_ATTR = "automl_task"


@dataclass
class StudyPlan:
    """A study file checked against the installed plugins and its data, before any storage."""

    config: StudyConfig
    storage_url: str
    families: dict[str, Any]
    data: PreparedData
    notes: list[str] = field(default_factory=list)


def choose_families(config: StudyConfig, registry: Registry, kind: str, path: Path) -> tuple[dict[str, Any], list[str]]:
    """The families that compete: those named (or all installed) that can build for ``kind``."""
    requested = config.search.families or list(registry.families)
    unknown = [name for name in requested if name not in registry.families]
    if unknown:
        raise UsageError(f"{path}: key 'search.families': unknown family {', '.join(map(repr, unknown))}; "
                         f"installed families: {', '.join(registry.families) or 'none'} "
                         "(see `automl plugins`)")
    chosen = [name for name in requested if kind in registry.family(name).task_kinds]
    notes = [f"family {name!r} is left out: it does not build for {kind} tasks "
             f"(task_kinds={tuple(registry.family(name).task_kinds)})"
             for name in requested if name not in chosen]
    if not chosen:
        raise UsageError(f"{path}: no family in 'search.families' builds for {kind} tasks; "
                         f"families that do: {', '.join(registry.families_for(kind)) or 'none'}")
    return {name: registry.family(name) for name in chosen}, notes


def plan_study(config: StudyConfig, path: Path, registry: Registry, storage: str | None = None) -> StudyPlan:
    """Resolve data, task and families; raises UsageError before anything is written."""
    data = prepare(config.data, registry, config.seed)
    families, notes = choose_families(config, registry, data.task.kind, path)
    return StudyPlan(config, storage or config.storage or DEFAULT_STORAGE, families, data, notes)


def _check_resumable(study: optuna.Study, plan: StudyPlan) -> None:
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        return
    for key in ("objectives", "families"):
        before, now = stored.get(key), (list(plan.config.search.objectives) if key == "objectives"
                                       else list(plan.families))
        if before != now:
            raise UsageError(f"study {plan.config.name!r} in {redact(plan.storage_url)} was created with "
                             f"{key} {before}, the study file now gives {now}; use a new study name "
                             "or restore the old setting")


def create_or_resume(plan: StudyPlan) -> optuna.Study:
    """Create the study, or load it to add trials; the sampler is reseeded past earlier trials."""
    config = plan.config
    storage = open_storage(plan.storage_url)
    directions = [DIRECTIONS[name] for name in config.search.objectives]
    try:
        study_id = storage.get_study_id_from_name(config.name)
        earlier_trials = len(storage.get_all_trials(study_id, deepcopy=False))
    except KeyError:
        earlier_trials = 0
    try:
        study = optuna.create_study(
            study_name=config.name, storage=storage, directions=directions, load_if_exists=True,
            sampler=make_sampler(config.search.sampler, config.seed + earlier_trials))
    except ValueError as exc:
        raise UsageError(f"study {config.name!r} in {redact(plan.storage_url)} cannot be resumed: {exc}") from None
    _check_resumable(study, plan)
    if earlier_trials == 0 and CONFIG_ATTR not in study.user_attrs:
        study.set_metric_names(list(config.search.objectives))
        study.set_user_attr(CONFIG_ATTR, {**config.to_dict(), "families": list(plan.families),
                                          "objectives": list(config.search.objectives)})
        study.set_user_attr(TASK_ATTR, plan.data.task.to_dict())
    return study


def run_study(plan: StudyPlan, n_trials: int | None = None, timeout: float | None = None,
              show_progress_bar: bool = True) -> optuna.Study:
    """Add ``n_trials`` trials (the study file's count by default) to the study."""
    study = create_or_resume(plan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(
            Objective(plan.config, plan.families, plan.data),
            n_trials=n_trials or plan.config.n_trials,
            timeout=timeout or plan.config.timeout,
            catch=(Exception,),
            show_progress_bar=show_progress_bar,
            gc_after_trial=False,
        )
    return study
