"""A study plan: a study file checked against the installed plugins and its data, before any storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from automl.config import StudyConfig
from automl.data.prepare import PreparedData, prepare, split_arrays
from automl.errors import UsageError
from automl.plugin.arrays import LabeledArrays
from automl.plugin.contract import Family
from automl.plugin.registry import Registry
from automl.search.small_data import scaled_for_data

# The share of a run's time budget after which its start-up stops checking families
# (automl.search.preflight) and drawing the first trials (automl.search.startup): those not reached
# are left unjudged and to the sampler. On 1,460-step series the checks and draws took 45 CPU-s
# and, on a busy machine, 252 s of a 600 s budget before the first trial trained.
STARTUP_SHARE = 0.1


def startup_deadline(started: float, deadline: float | None) -> float | None:
    """When the start-up of a run that started at ``started`` and ends at ``deadline`` (``time.time()``
    seconds) stops its checks and draws: STARTUP_SHARE of its time budget in; None without one."""
    return None if deadline is None else started + STARTUP_SHARE * max(0.0, deadline - started)


@dataclass
class StudyPlan:
    """A study file checked against the installed plugins and its data, before any storage."""

    config: StudyConfig
    storage_url: str
    families: dict[str, Family]
    data: PreparedData
    notes: list[str] = field(default_factory=list)


def choose_families(named: Sequence[str] | None, registry: Registry, kind: str, path: Path | str,
                    key: str = "key 'search.families'") -> tuple[dict[str, Family], list[str]]:
    """The families that compete: those ``named`` (or all installed) that can build for ``kind``.

    Installed families that cannot are left out with a note; a named one that cannot is an error,
    naming ``path`` and ``key`` (where the names were given).
    """
    requested = named or list(registry.families)
    unknown = [name for name in requested if name not in registry.families]
    if unknown:
        raise UsageError(f"{path}: {key}: unknown family {', '.join(map(repr, unknown))}; "
                         f"installed families: {', '.join(registry.families) or 'none'} "
                         "(see `automl plugins`)")
    unable = [name for name in requested if kind not in registry.family(name).task_kinds]
    if named and unable:
        raise UsageError(f"{path}: {key}: {', '.join(map(repr, unable))} cannot build "
                         f"for {kind} tasks (see their task_kinds in `automl plugins`); families that "
                         f"can: {', '.join(registry.families_for(kind)) or 'none'}")
    notes = [f"family {name!r} is left out: it does not build for {kind} tasks "
             f"(task_kinds={tuple(registry.family(name).task_kinds)})" for name in unable]
    chosen = [name for name in requested if name not in unable]
    if not chosen:
        raise UsageError(f"{path}: no installed family builds for {kind} tasks")
    return {name: registry.family(name) for name in chosen}, notes


def plan_study(config: StudyConfig, path: Path | str, registry: Registry, storage: str | None = None,
               arrays: LabeledArrays | None = None, deadline: float | None = None) -> StudyPlan:
    """Resolve data, task and families, and check that they train on the study's device and that
    the artifact folder can be written (automl.search.preflight); raises UsageError before anything
    is written, naming ``path`` (the study file, or how the study is named without one).

    ``arrays``: data given in memory, used instead of loading the config's dataset. The training
    check stops at ``deadline`` (``time.time()`` seconds), judging the families it reached.
    """
    storage_url = config.storage_url(storage)
    # The data first: loading it needs neither torch nor Lightning (prepare imports torch and
    # scikit-learn once the dataset has loaded), so a data file's error comes in about a CPU-second.
    try:
        data = prepare(config.data, registry, config.seed) if arrays is None else \
            split_arrays(arrays, config.data, config.seed)
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    from automl.search.preflight import check_artifact_folder, check_device, check_training_step

    device = check_device(config, path)
    check_artifact_folder(config, storage_url, path)
    config, notes = scaled_for_data(config, data)
    families, chosen = choose_families(config.search.families, registry, data.task.kind, path)
    notes += chosen
    notes += check_training_step(config, families, data, device, path, deadline)
    return StudyPlan(config, storage_url, families, data, [*data.notes, *notes])
