"""Warm start: a new study first runs known configs, from another study's Pareto front or a file.

A source is ``study:NAME`` (the front of study NAME in this study's storage), ``study:NAME@URL``
(in another storage), or the path of a JSON file holding a list of stored params dicts
(``{"family": "mlp", "mlp.depth": 2, "train.lr": 0.003, ...}``) or one JSON that ``automl export``
wrote. Stored params carry the family and prefixed names, so a config goes back into
``study.enqueue_trial`` as it is; each is replayed through its family's space first, so a config
that no longer fits fails here, naming its source, and not as a trial.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from automl.errors import UsageError
from automl.plugin.space import OutsideSpace, in_namespace
from automl.search.objective import replay_trial
from automl.search.plan import StudyPlan
from automl.storage.schema import FAMILY_PARAM, TRAINING_NAMESPACE, TrialAttr, pareto_front
from automl.storage.trial_queue import Queued
from automl.storage.urls import load_study, redact

STUDY_PREFIX = "study:"


def reached_at(trial: FrozenTrial) -> int | None:
    """The epoch (1-based) at which ``trial`` first reached its final validation accuracy."""
    curve = trial.user_attrs.get(TrialAttr.VAL_CURVE) or []
    return next((epoch for epoch, value in enumerate(curve, start=1) if value >= curve[-1]), None)


def _from_study(source: str, storage_url: str) -> list[tuple[dict[str, Any], int | None]]:
    name, _, url = source.removeprefix(STUDY_PREFIX).partition("@")
    study = load_study(name, url or storage_url)
    front = pareto_front(study)
    if not front:
        raise UsageError(f"warm start {STUDY_PREFIX}{name}: study {name!r} in {redact(url or storage_url)} "
                         "has no completed trial to start from")
    return [(trial.params, reached_at(trial)) for trial in front]


def _from_file(source: str) -> list[dict[str, Any]]:
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"warm start file {path} does not exist; give a JSON file or "
                         f"{STUDY_PREFIX}NAME for another study's Pareto front") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"warm start file {path} is not readable JSON: {exc}") from None
    if isinstance(data, dict) and "stored_params" in data:  # the JSON `automl export` writes
        data = [data["stored_params"]]
    if not (isinstance(data, list) and all(isinstance(item, dict) for item in data)):
        raise UsageError(f"warm start file {path}: expected a list of params objects like "
                         '{"family": "mlp", "mlp.depth": 2, "train.lr": 0.003}')
    return data


def load_configs(source: str, storage_url: str) -> list[tuple[dict[str, Any], int | None]]:
    """The stored params dicts a source names, each with the epochs its source took to reach its
    accuracy (None when the source does not say: a file)."""
    if source.startswith(STUDY_PREFIX):
        return _from_study(source, storage_url)
    return [(params, None) for params in _from_file(source)]


def _remedy(names: list[str], family_name: str) -> str:
    """What the user can change for these out-of-range parameters: ``[train]`` ranges are the
    study file's, a family's ranges are its plugin's code."""
    training = [name.split(".", 1)[1] for name in names if in_namespace(name, TRAINING_NAMESPACE)]
    if len(training) < len(names):
        return f"fix the config (family {family_name!r} sets its ranges in its code)" + (
            f", or widen [train] {', '.join(training)} in the study file" if training else "")
    return f"fix the config, or widen [train] {', '.join(training)} in the study file"


def checked(params: dict[str, Any], source: str, plan: StudyPlan, index: int) -> dict[str, Any]:
    """``params`` reduced to what this study samples, after replaying it through the spaces.

    Raises UsageError naming the source, the config (``index``, 1-based) and each value outside
    its range, before anything is written.
    """
    family_name = str(params.get(FAMILY_PARAM))
    try:
        _, _, unused = replay_trial(plan.families[family_name], params, plan.data.task, plan.config.train)
    except OutsideSpace as exc:
        raise UsageError(f"warm start {source}: config {index} ({family_name}) does not fit this study's space: "
                         f"{exc}; {_remedy(exc.names, family_name)}") from None
    except ValueError as exc:
        raise UsageError(f"warm start {source}: config {index} ({family_name}) {params} does not fit this "
                         f"study's space: {exc}") from None
    if unused:
        raise UsageError(f"warm start {source}: config {index} ({family_name}) gives {', '.join(unused)}, which "
                         "this study's space does not have; fix the config (a misspelt name?)")
    return {key: value for key, value in params.items()
            if key == FAMILY_PARAM or in_namespace(key, family_name, TRAINING_NAMESPACE)}


@dataclass(frozen=True)
class WarmStart:
    """Checked configs to queue before a new study's sampled trials, and notes on those left out.

    ``protected``: per config, the epochs before which the pruner leaves it alone (where its
    source reached its accuracy; None: no protection).
    """

    configs: list[dict[str, Any]]
    notes: list[str]
    protected: list[int | None] = field(default_factory=list)

    def for_study(self, study: optuna.Study) -> list[Queued]:
        """The configs to queue, if ``study`` has no trials yet: a resumed study was warm-started already."""
        if study.get_trials(deepcopy=False):
            return []
        return [Queued(config, {TrialAttr.PROTECTED_EPOCHS: epochs} if epochs else {})
                for config, epochs in zip(self.configs, self.protected or [None] * len(self.configs), strict=True)]


def load_warm_start(plan: StudyPlan, extra_sources: Sequence[str] = ()) -> WarmStart:
    """Load and check the study file's warm-start sources and ``extra_sources`` (the CLI's).

    Runs before anything is written, so a bad source stops the run early. Configs of families this
    study does not search are left out with a note; duplicates are dropped.
    """
    configs: list[dict[str, Any]] = []
    protected: list[int | None] = []
    notes = []
    for source in [*plan.config.search.warm_start, *extra_sources]:
        for index, (params, epochs) in enumerate(load_configs(source, plan.storage_url), start=1):
            if params.get(FAMILY_PARAM) not in plan.families:
                notes.append(f"warm start {source}: left out a {params.get(FAMILY_PARAM)} config; this study "
                             f"searches {', '.join(plan.families)}")
                continue
            config = checked(params, source, plan, index)
            if config not in configs:
                configs.append(config)
                protected.append(epochs)
    return WarmStart(configs, notes, protected)
