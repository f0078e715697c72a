"""A study's fingerprint: its search space, objectives, task and data, stored when it is created
and compared on every resume, so that a study never mixes trials of two spaces or two datasets.

The space is what the families' and training parameters' ``suggest_*`` calls ask for, drawn
``SPACE_DRAWS`` times per family with a fixed seed (define-by-run spaces cannot be listed without
running them); the parameters the stored trials used are compared as well. The data is compared
by its options and by a digest of the arrays as loaded and split (automl.data.digest).

The study-file keys that decide how a trial trains, stops early and is measured (TRIAL_KEYS) are
compared with the config the study stored at creation.

A change is refused when it changes what trials sample, how they train, stop and are measured,
what they train and validate on, or how they are ranked; one that does not (the dataset's file
moved with the same content, another automl version with the same space, another sampler for the
trials to come, another precision for them) is accepted with a note. How a trial runs (accelerator,
precision, compile, data placement, [workers]) may change, so that a study can move between
machines; a changed precision is noted, as trials trained in two precisions share one front.
A study file that leaves ``[search] families`` out searches every installed family when the study
is created, and the families it was created with from then on (keep_created_families): installing
a plugin does not stop it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, distribution_to_json, json_to_distribution

from automl.errors import UsageError
from automl.plugin.space import describe_distribution, random_study, sample_params
from automl.search.objective import sample_training
from automl.search.plan import StudyPlan
from automl.storage.schema import AUTOML_VERSION, CONFIG_ATTR, FAMILY_PARAM, FINGERPRINT_ATTR, LATENCY
from automl.storage.urls import redact

# Draws of each family's space: enough to reach the branches of a define-by-run space, a few ms each.
SPACE_DRAWS = 32
# The data keys whose change is harmless when the data loaded and split stays the same.
DATA_KEYS = ("data.dataset", "data.val_size", "data.test_size", "seed")
DATA_DIGEST = "data.sha256"
# Study-file keys that decide how a trial trains, is stopped early and is measured: trials run
# with two values would be ranked on one front as if they were alike.
TRIAL_KEYS = ("train.max_epochs", "train.augment", "search.pruner", "search.reduction_factor", "search.min_epochs")
# How latency is timed, which decides trials' latency_ms where it is an objective or a budget.
LATENCY_KEYS = ("search.latency_batch_size", "search.latency_device")
# Keys that only steer which configs are sampled next: the trials run so far stay comparable.
STEERING_KEYS = ("search.sampler",)
# Keys of how a trial runs that may change (a study moves to another machine), but that a user
# should hear of: the trials before and after share one front.
NOTED_KEYS = ("train.precision",)


def searched_space(plan: StudyPlan) -> dict[str, optuna.distributions.BaseDistribution]:
    """Every parameter the study's trials can sample, with its distribution, by stored name."""
    space: dict[str, optuna.distributions.BaseDistribution] = {
        FAMILY_PARAM: CategoricalDistribution(list(plan.families))}
    study = random_study(seed=0)  # a fixed seed: the same space gives the same draws in every run
    for family in plan.families.values():
        for _ in range(SPACE_DRAWS):
            trial = study.ask()
            try:
                sample_params(family, trial, plan.data.task)
                sample_training(trial, plan.config.train)
            except Exception:  # noqa: BLE001 - a plugin may raise anything; its trials will say what
                pass
            for name, distribution in trial.distributions.items():
                space.setdefault(name, distribution)
            study.tell(trial, 0.0)
    return space


def fingerprint(plan: StudyPlan) -> dict[str, Any]:
    """What a resumed study must match, as the JSON stored in the study's FINGERPRINT_ATTR."""
    config = plan.config
    return {"automl_version": AUTOML_VERSION,
            "space": {name: json.loads(distribution_to_json(distribution))
                      for name, distribution in sorted(searched_space(plan).items())},
            "objectives": list(config.search.objectives),
            "task": json.loads(json.dumps(plan.data.task.to_dict())),
            "data": {"dataset": config.data.dataset, "options": config.data.options, "val_size": config.data.val_size,
                     "test_size": config.data.test_size, "seed": config.seed, "sha256": plan.data.sha256}}


def _flat(print_: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint as ``key -> value``, keyed as a user names them (``train.batch_size``,
    ``data.options.path``, ``task.num_classes``)."""
    flat: dict[str, Any] = {"search.objectives": print_.get("objectives")} if "objectives" in print_ else {}
    for name, distribution in (print_.get("space") or {}).items():
        flat[name] = json_to_distribution(json.dumps(distribution))
    for key, value in (print_.get("task") or {}).items():
        flat[f"task.{key}"] = value
    data = dict(print_.get("data") or {})
    for key, value in (data.pop("options", None) or {}).items():
        flat[f"data.options.{key}"] = value
    for key, value in data.items():
        flat["seed" if key == "seed" else f"data.{key}"] = value
    return flat


def _settings(config: Mapping[str, Any], latency_counts: bool) -> dict[str, Any]:
    """The TRIAL_KEYS, STEERING_KEYS and NOTED_KEYS (and LATENCY_KEYS where ``latency_counts``) of a config as
    stored (StudyConfig.to_dict), by dotted key; a key the config lacks (stored by an automl
    without it) is left out, so it is not judged."""
    keys = (*TRIAL_KEYS, *STEERING_KEYS, *NOTED_KEYS, *(LATENCY_KEYS if latency_counts else ()))
    found = {}
    for key in keys:
        section, name = key.split(".")
        if name in (config.get(section) or {}):
            found[key] = config[section][name]
    return found


def _shown(value: Any) -> str:
    if isinstance(value, optuna.distributions.BaseDistribution):
        return describe_distribution(value)
    return "not set" if value is None else json.dumps(value)


@dataclass(frozen=True)
class Change:
    key: str
    stored: Any  # None: the key is new
    now: Any  # None: the key is gone

    def __str__(self) -> str:
        if self.key == DATA_DIGEST:
            return (f"the data as loaded and split (sha256 {str(self.stored)[:12]}, now {str(self.now)[:12]}): "
                    "the dataset's content or its split changed")
        return f"{self.key}: stored {_shown(self.stored)}, now {_shown(self.now)}"


def _changes(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[Change]:
    return [Change(key, stored.get(key), now.get(key)) for key in sorted(set(stored) | set(now))
            if stored.get(key) != now.get(key)]


def _trial_space(study: optuna.Study) -> dict[str, Any]:
    """The distributions the study's trials were sampled from, by parameter."""
    space: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            space.setdefault(name, distribution)
    return space


def _stored_of_old_study(study: optuna.Study) -> dict[str, Any]:
    """What a study created before fingerprints still tells: its objectives and families."""
    config = study.user_attrs.get(CONFIG_ATTR) or {}
    stored: dict[str, Any] = {}
    if config.get("objectives") is not None:
        stored["search.objectives"] = config["objectives"]
    if config.get("families") is not None:
        stored[FAMILY_PARAM] = CategoricalDistribution(config["families"])
    return stored


def keep_created_families(study: optuna.Study, plan: StudyPlan) -> list[str]:
    """Narrow ``plan.families`` to the families ``study`` was created with, in their order, where
    the study file leaves ``[search] families`` out; return a note naming the families installed
    since, which the study does not search (Optuna cannot widen a categorical parameter's choices).

    Raises UsageError when a family the study searches is no longer installed. A study file that
    names its families is compared as it is (check_resumable refuses other families).
    """
    created_with = (study.user_attrs.get(CONFIG_ATTR) or {}).get("families")
    if plan.config.search.families is not None or not created_with or list(plan.families) == created_with:
        return []
    where = f"study {plan.config.name!r} in {redact(plan.storage_url)}"
    gone = [name for name in created_with if name not in plan.families]
    if gone:
        raise UsageError(f"{where} searches the families installed when it was created ({', '.join(created_with)}); "
                         f"{_listed(gone)} not among the installed families that build for "
                         f"{plan.data.task.kind} tasks now (see `automl plugins`): reinstall the plugin that "
                         "provides it, or use a new study name to search the families installed now")
    added = [name for name in plan.families if name not in created_with]
    plan.families = {name: plan.families[name] for name in created_with}
    if not added:
        return []
    return [f"{where} keeps searching the families it was created with ({', '.join(created_with)}); "
            f"{_listed(added)} installed since and not searched: to search {', '.join(added)}, use a new study "
            "name (with [search] families listing the families to compare, or left out for every installed one)"]


def _listed(families: list[str]) -> str:
    """``'a' is`` or ``'a', 'b' are``."""
    return f"{', '.join(map(repr, families))} {'is' if len(families) == 1 else 'are'}"


def check_resumable(study: optuna.Study, plan: StudyPlan) -> list[str]:
    """Compare ``study`` as stored with ``plan``; return notes on harmless changes.

    Raises UsageError naming each changed key with its stored and new value, and saying whether
    another automl version created the study. A study without automl's config (made elsewhere)
    is not checked; one created before fingerprints is checked on what it stored, with a note.
    """
    if CONFIG_ATTR not in study.user_attrs:
        return []
    where = f"study {plan.config.name!r} in {redact(plan.storage_url)}"
    stored_print = study.user_attrs.get(FINGERPRINT_ATTR)
    now = _flat(fingerprint(plan))
    notes = []
    if stored_print is None:
        stored = _stored_of_old_study(study)
        notes.append(f"{where} was created before automl kept a fingerprint of a study's space and data: only "
                     "its families, objectives and the parameters its trials used are checked, its data cannot "
                     "be; from this run on it is checked against the fingerprint stored now")
    else:
        stored = _flat(stored_print)
    config = plan.config
    latency_counts = LATENCY.name in config.search.objectives or config.budget.max_latency_ms is not None
    stored_settings = _settings(study.user_attrs[CONFIG_ATTR], latency_counts)
    now.update({key: value for key, value in _settings(config.to_dict(), latency_counts).items()
                if key in stored_settings})
    # Parameters the stored trials used count too (a branch of the space the draws did not reach);
    # one the draws do not reach now cannot be judged gone.
    stored = {**{k: v for k, v in _trial_space(study).items() if k in now}, **stored, **stored_settings}
    if stored_print is None:
        now = {key: value for key, value in now.items() if key in stored}
    changes = _changes(stored, now)
    data_changed = any(change.key == DATA_DIGEST for change in changes)
    harmless = [change for change in changes if not data_changed
                and (change.key in DATA_KEYS or change.key.startswith("data.options."))]
    steering = [change for change in changes if change.key in STEERING_KEYS]
    noted = [change for change in changes if change.key in NOTED_KEYS]
    refused = [change for change in changes if change not in harmless + steering + noted]
    created_by = (stored_print or {}).get("automl_version", AUTOML_VERSION)
    if refused:
        cause = (f"it was created by automl {created_by} and this is automl {AUTOML_VERSION}, whose search spaces "
                 f"or data handling differ: run it with automl {created_by}, or use a new study name"
                 if created_by != AUTOML_VERSION else
                 "the study file or an installed plugin changed since the study was created: restore what it "
                 "was created with, or use a new study name to search with the change")
        refused.sort(key=lambda change: change.key == DATA_DIGEST)  # the keys a user can name first
        raise UsageError(f"{where} cannot be resumed: the study file gives another search space, training or data "
                         f"than the study was created with ({'; '.join(map(str, refused))}); {cause}")
    notes += [f"{where}: {change}; the data loaded and split is the same (sha256 {now.get(DATA_DIGEST, '')[:12]}), "
              "so the study goes on" for change in harmless]
    notes += [f"{where}: {change}; the trials run so far stay as they are, the next ones are sampled by "
              f"{_shown(change.now)}" for change in steering]
    notes += [f"{where}: {change}; the trials run so far trained with {_shown(change.stored)} and share the front "
              f"with the next ones, which train with {_shown(change.now)}; for a front of one {change.key}, use a "
              "new study name" for change in noted]
    if created_by != AUTOML_VERSION:
        notes.append(f"{where} was created by automl {created_by}, this is automl {AUTOML_VERSION}; its space and "
                     "data are unchanged, so the study goes on")
    return notes


def record_fingerprint(study: optuna.Study, plan: StudyPlan) -> None:
    """Store ``plan``'s fingerprint on ``study`` (at creation, or once for a study made before them)."""
    study.set_user_attr(FINGERPRINT_ATTR, fingerprint(plan))
