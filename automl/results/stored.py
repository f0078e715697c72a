"""A stored trial, ready to rebuild: its family, build params, training params, task and config.

Everything comes from storage: the study's ``automl_config`` and ``automl_task`` attrs and the
trial's params, replayed through the family's space and checked against it
(automl.search.objective.replay_trial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import optuna
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from automl.config import IN_MEMORY_DATASET, StudyConfig
from automl.data.prepare import PreparedData, prepare
from automl.errors import UsageError
from automl.plugin.build import build_model, example_inputs
from automl.plugin.contract import Family
from automl.plugin.registry import Registry
from automl.plugin.task import Task
from automl.search.objective import replay_trial
from automl.storage.schema import CONFIG_ATTR, FAMILY_PARAM, TASK_ATTR, TrialAttr, is_trained
from automl.storage.urls import redact
from automl.training.loop import TrainingParams


@dataclass(frozen=True)
class StoredTrial:
    study: optuna.Study
    trial: FrozenTrial
    config: StudyConfig
    task: Task
    family: Family
    params: dict[str, Any]
    training: TrainingParams

    @property
    def label(self) -> str:
        return f"trial {self.trial.number} of study {self.study.study_name!r}"

    @property
    def seed(self) -> int:
        # The seed the trial trained with (automl.search.objective): a retrained trial starts the same.
        return self.config.seed + self.trial.number

    def build(self) -> nn.Module:
        """The family's module with the initial weights the trial had."""
        L.seed_everything(self.seed, verbose=False)
        example = example_inputs(self.task, 2)
        return build_model(self.family, self.params, self.task, example)

    def data(self, registry: Registry) -> PreparedData:
        """The study's splits, made again from its dataset plugin and seed; UsageError when the data
        was given in memory (automl.run's ``data``), which a study does not keep."""
        if self.config.data.dataset == IN_MEMORY_DATASET:
            raise UsageError(f"{self.label} trained on arrays given in memory (automl.run(..., data=(x, y))), "
                             "which the study does not keep, so it cannot be trained again; its stored weights "
                             "(kept for trials on the Pareto front) can be exported and loaded")
        return prepare(self.config.data, registry, self.config.seed)


STATE_WORDS = {TrialState.FAIL: "failed", TrialState.PRUNED: "was pruned", TrialState.RUNNING: "is still running",
               TrialState.WAITING: "is still queued"}


def _valid_numbers(study: optuna.Study) -> str:
    """The trials to suggest: those trained (a trial refused over budget has no model to export)."""
    done = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_trained(t)]
    return ", ".join(map(str, done)) or "none"


def find_trial(study: optuna.Study, number: int, storage_url: str) -> FrozenTrial:
    """The completed trial ``number``, or an error that lists the completed ones."""
    where = f"study {study.study_name!r} in {redact(storage_url)}"
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None:
        raise UsageError(f"{where} has no trial {number}; trained trials: {_valid_numbers(study)}")
    if trial.state != TrialState.COMPLETE:
        reason = trial.user_attrs.get(TrialAttr.FAIL_REASON)
        raise UsageError(f"trial {number} of {where} {STATE_WORDS.get(trial.state, trial.state.name.lower())}"
                         f"{f' ({reason})' if reason else ''}: only a completed trial can be used; "
                         f"trained trials: {_valid_numbers(study)}")
    return trial


# Studies stored before datasets declared their options hold every built-in dataset's key at the
# top of their data config, set or not (a digits study has path = None, max_length = 64, ...).
OLD_DATA_KEYS = ("path", "download", "kind", "label", "text", "tokenizer", "max_length", "min_freq", "image_size")


def _data_of_old_layout(data: Any, registry: Registry) -> Any:
    """A stored data config with only the old keys its dataset declares as options (which DataConfig
    gathers into ``options``); one in today's layout, or of a dataset not installed, as it is."""
    old = isinstance(data, dict) and set(OLD_DATA_KEYS) <= set(data)
    if not old or data.get("dataset") not in registry.datasets:
        return data
    declared = registry.datasets[data["dataset"]].obj.options.model_fields
    return {key: value for key, value in data.items() if key not in OLD_DATA_KEYS or key in declared}


def load_stored_trial(study: optuna.Study, number: int, storage_url: str, registry: Registry) -> StoredTrial:
    """Everything needed to rebuild and retrain trial ``number``; UsageError names what is missing."""
    where = f"study {study.study_name!r} in {redact(storage_url)}"
    attrs = study.user_attrs
    if CONFIG_ATTR not in attrs or TASK_ATTR not in attrs:
        raise UsageError(f"{where} was not created by `automl run` (no {CONFIG_ATTR}/{TASK_ATTR} study attrs); "
                         "its trials cannot be rebuilt")
    trial = find_trial(study, number, storage_url)
    # The stored config also lists the resolved families and objectives at its top level.
    stored = {k: v for k, v in attrs[CONFIG_ATTR].items() if k not in ("families", "objectives")}
    try:
        config = StudyConfig.as_stored({**stored, "data": _data_of_old_layout(stored.get("data"), registry)})
    except ValueError as exc:
        raise UsageError(f"{where}: its stored config no longer validates ({exc}); was it created by "
                         "another automl version?") from None
    family_name = trial.params.get(FAMILY_PARAM)
    if family_name not in registry.families:
        raise UsageError(f"trial {number} of {where} is a {family_name!r} model, but no installed plugin "
                         f"provides that family; installed: {', '.join(registry.families)}")
    task = Task.from_dict(attrs[TASK_ATTR])
    family = registry.family(family_name)
    try:
        params, training, _ = replay_trial(family, trial.params, task, config.train)
    except ValueError as exc:
        source = registry.families[family_name].source
        raise UsageError(f"trial {number} of {where} does not fit the space it is rebuilt in: {exc}; the "
                         f"{family_name!r} space comes from {source.distribution} {source.version} and the "
                         f"training ranges from the study's stored config; was the plugin changed since the "
                         "trial ran?") from None
    return StoredTrial(study, trial, config, task, family, params, training)
