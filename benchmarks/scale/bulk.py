"""Large studies, made in seconds: N finished trials written in bulk, as automl's workers leave them.

Running 50,000 trials to measure what 50,000 trials cost would take days; what the views, the
sampler and the storage see of a study is its rows. So a study is created as ``automl run`` creates
it (its config, task and fingerprint, through automl.search.study.create_or_resume), and N trials
are written into Optuna's tables with a few bulk INSERTs: parameters drawn from the study's own
spaces (the families' and the training ranges, through a RandomSampler), the user attributes a
worker stores (family, cost, curve, phase times, worker), values for the completed ones, pruned
and failed ones in the proportions a MO-ASHA study shows. A plain Optuna study of the same trials
is written beside it for the peers' side of each comparison.

The tables are reflected from the database (the layout Optuna created), so nothing here depends
on Optuna's model classes.
"""

from __future__ import annotations

import datetime
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.trial import TrialState

from automl.config import StudyConfig
from automl.plugin.arrays import labeled_arrays
from automl.plugin.registry import registry
from automl.plugin.space import sample_params
from automl.search.objective import sample_training
from automl.search.plan import StudyPlan, plan_study
from automl.search.study import create_or_resume
from automl.storage.schema import FAMILY_PARAM, OBJECTIVES, TrialAttr

# Distinct configurations drawn from the spaces; trials cycle through them with their own results.
POOL = 400
# Shares of the trials by state, about what a MO-ASHA study with reduction factor 3 ends with.
SHARES = {TrialState.PRUNED: 0.62, TrialState.COMPLETE: 0.34, TrialState.FAIL: 0.04}
MAX_EPOCHS = 2


def tiny_sequence_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """120 sequences of 8 steps x 2 features in 3 classes: every family builds for it, and a
    model trains on it in milliseconds (the trials' training is not what is measured)."""
    rng = np.random.default_rng(seed)
    y = np.arange(120) % 3
    x = rng.normal(size=(120, 8, 2)).astype(np.float32) + y[:, None, None]
    return x, y


def study_config(name: str, url: str, **overrides: Any) -> StudyConfig:
    """A study of every family on the tiny data, 2 epochs, MO-ASHA deciding after the first."""
    keys: dict[str, Any] = {"name": name, "storage": url, "seed": 0,
                            "train": {"max_epochs": MAX_EPOCHS, "batch_size": [32], "accelerator": "cpu"},
                            "workers": {"heartbeat_interval": 5, "grace_period": 20}}
    return StudyConfig(**{**keys, **overrides})


def plan(name: str, url: str, **overrides: Any) -> StudyPlan:
    config = study_config(name, url, **overrides)
    arrays = labeled_arrays(*tiny_sequence_data())
    return plan_study(config, f"study {name!r}", registry(), url, arrays=arrays.checked(f"study {name!r}"))


@dataclass(frozen=True)
class Config:
    """A configuration drawn from the spaces, with the cost its trials report."""

    family: str
    params: dict[str, tuple[float, str]]  # name -> (internal value, distribution JSON)
    flops: float
    n_params: int
    skill: float  # its trials' accuracy centre


def draw_configs(study_plan: StudyPlan, count: int = POOL, seed: int = 0) -> list[Config]:
    """``count`` configurations drawn at random from the study's spaces, as its trials sample them."""
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = random.Random(seed)
    families = list(study_plan.families)
    drawn = []
    for _ in range(count):
        trial = sampler.ask()
        family = study_plan.families[trial.suggest_categorical(FAMILY_PARAM, families)]
        sample_params(family, trial, study_plan.data.task)
        sample_training(trial, study_plan.config.train)
        frozen = sampler.tell(trial, 0.0)
        params = {name: (dist.to_internal_repr(frozen.params[name]), _json(dist))
                  for name, dist in frozen.distributions.items()}
        flops = 10 ** rng.uniform(3, 7)
        drawn.append(Config(family.name, params, flops, int(flops / rng.uniform(1.5, 3)), rng.uniform(0.4, 0.9)))
    return drawn


_JSON: dict[BaseDistribution, str] = {}


def _json(distribution: BaseDistribution) -> str:
    if distribution not in _JSON:
        _JSON[distribution] = distribution_to_json(distribution)
    return _JSON[distribution]


@dataclass
class Rows:
    """The rows of a batch of trials, by table."""

    trials: list[dict[str, Any]]
    params: list[dict[str, Any]]
    values: list[dict[str, Any]]
    user_attrs: list[dict[str, Any]]


def trial_rows(configs: list[Config], study_id: int, first_id: int, first_number: int, count: int,
               seed: int) -> Rows:
    """``count`` finished trials of ``study_id``: ids from ``first_id``, numbers from ``first_number``."""
    rng = random.Random(seed)
    states, weights = list(SHARES), list(SHARES.values())
    start = datetime.datetime(2025, 1, 1)
    rows = Rows([], [], [], [])
    for offset in range(count):
        trial_id, number = first_id + offset, first_number + offset
        config = configs[rng.randrange(len(configs))]
        state = rng.choices(states, weights)[0]
        curve = [round(min(1.0, max(0.0, config.skill + rng.gauss(0, 0.05) - 0.1 / (epoch + 1))), 5)
                 for epoch in range(MAX_EPOCHS if state == TrialState.COMPLETE else 1)]
        began = start + datetime.timedelta(seconds=2 * number)
        rows.trials.append({"trial_id": trial_id, "number": number, "study_id": study_id, "state": state.name,
                            "datetime_start": began, "datetime_complete": began + datetime.timedelta(seconds=1.5)})
        rows.params += [{"trial_id": trial_id, "param_name": name, "param_value": value, "distribution_json": dist}
                        for name, (value, dist) in config.params.items()]
        attrs: dict[str, Any] = {
            TrialAttr.WORKER: f"bench:{number % 16}", TrialAttr.FAMILY: config.family, TrialAttr.DEVICE: "cpu",
            TrialAttr.N_PARAMS: config.n_params, TrialAttr.FLOPS: config.flops,
            TrialAttr.LATENCY_METHOD: "not timed", TrialAttr.VAL_CURVE: curve, TrialAttr.EPOCHS: len(curve),
            TrialAttr.WALL_TIME_S: 1.5, TrialAttr.TIME_BUILD_S: 0.01, TrialAttr.TIME_MEASURE_S: 0.02,
            TrialAttr.TIME_TRAIN_S: 1.2, TrialAttr.TIME_VALIDATE_S: 0.2, TrialAttr.TIME_OTHER_S: 0.07}
        if state == TrialState.PRUNED:
            attrs.update({TrialAttr.PRUNED_AT_EPOCH: 1, TrialAttr.RUNG: 0})
        elif state == TrialState.COMPLETE:
            attrs.update({TrialAttr.VAL_ACCURACY: curve[-1], TrialAttr.TEST_ACCURACY: curve[-1] - 0.01})
            rows.values += [{"trial_id": trial_id, "objective": index, "value": value, "value_type": "FINITE"}
                            for index, value in enumerate((curve[-1], config.flops))]
        else:
            attrs[TrialAttr.FAIL_REASON] = "RuntimeError: a failure, as some trials of a long study have"
        rows.user_attrs += [{"trial_id": trial_id, "key": str(key), "value_json": json.dumps(value)}
                            for key, value in attrs.items()]
    return rows


def add_trials(url: str, study_name: str, configs: list[Config], count: int, seed: int = 0) -> None:
    """Append ``count`` finished trials to the study, in bulk INSERTs of a few transactions."""
    engine = sqlalchemy.create_engine(url)
    tables = sqlalchemy.MetaData()
    tables.reflect(engine, only=["studies", "trials"])
    trials = tables.tables["trials"]
    with engine.begin() as connection:
        study_id = connection.execute(sqlalchemy.select(tables.tables["studies"].c.study_id).where(
            tables.tables["studies"].c.study_name == study_name)).scalar_one()
        first_id = (connection.execute(sqlalchemy.select(sqlalchemy.func.max(trials.c.trial_id))).scalar() or 0) + 1
        first_number = connection.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(trials).where(
            trials.c.study_id == study_id)).scalar_one()
    # The driver's own executemany: SQLAlchemy's would build a parameter dict per row, most of the time.
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    per_transaction = 10_000
    for done in range(0, count, per_transaction):
        rows = trial_rows(configs, study_id, first_id + done, first_number + done, min(per_transaction, count - done),
                          seed + done)
        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            for table, listed in (("trials", rows.trials), ("trial_params", rows.params),
                                  ("trial_values", rows.values), ("trial_user_attributes", rows.user_attrs)):
                if listed:
                    columns = list(listed[0])
                    cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                       f"({', '.join([marker] * len(columns))})",
                                       [tuple(row[column] for column in columns) for row in listed])
    if engine.dialect.name == "postgresql":  # ids were given: the sequence moves past them
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(
                "SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), (SELECT max(trial_id) FROM trials))"))
    engine.dispose()


def automl_study(name: str, url: str, trials: int, configs: list[Config] | None = None,
                 **overrides: Any) -> tuple[StudyPlan, list[Config]]:
    """An automl study of ``trials`` finished trials, created as ``automl run`` creates one."""
    study_plan = plan(name, url, **overrides)
    create_or_resume(study_plan)
    configs = configs or draw_configs(study_plan)
    add_trials(url, name, configs, trials)
    return study_plan, configs


def optuna_study(name: str, url: str, trials: int, configs: list[Config]) -> None:
    """A plain Optuna study of the same objectives and trials, as an Optuna user's would be."""
    study = optuna.create_study(study_name=name, storage=url, directions=[
        OBJECTIVES[objective].direction for objective in ("val_accuracy", "flops")])
    study.set_metric_names(["val_accuracy", "flops"])
    add_trials(url, name, configs, trials)

