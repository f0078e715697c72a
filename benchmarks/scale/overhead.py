"""A trial's overhead in a study of N trials: everything but training, automl's and plain Optuna's.

Both run trials of a trivial model (every family on 120 tiny sequences, 2 epochs) in a study that
already holds N finished trials (scale.bulk), on the same database, one after the other.

- automl: the path of ``automl run`` with one worker: queued trials popped by automl's worker
  (automl.workers.worker.run_worker) through its storage, its sampler (grouped TPE) and pruner
  (MO-ASHA), the objective building, measuring, training and storing each trial with its artifacts,
  and the after-trial callbacks, the dashboard's updater among them.
- Optuna: ``study.optimize`` with ``TPESampler(multivariate=True, group=True)`` (the grouping
  automl's sampler does; otherwise Optuna's defaults, so the constant liar is on, which automl's
  sampler leaves off: alone in one process it changes no sample, only the reads), an objective that
  suggests the same spaces and trains the same model with a plain PyTorch loop
  (benchmarks/trial_overhead.py's).

A trial's time runs from the end of the previous trial's callback to its own; its overhead is that
time less the seconds it spent in its training epochs (automl's trials store them; the plain loop
is timed); automl's trials that MO-ASHA stopped store no phase times and are left out. The first
trial of each run is a warm-up (the process's first model) and is left out; the median of the
others is kept. Both samplers fit their models at every trial, so the median holds that cost;
automl's fits on at most 1,000 finished trials (automl.search.tpe_history), Optuna's on all.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from trial_overhead import plain_loop

from automl.plugin.space import sample_params
from automl.results.dashboard import DashboardUpdater
from automl.search.objective import Objective, sample_training
from automl.search.plan import StudyPlan
from automl.search.study import join_study
from automl.storage.artifacts import open_store
from automl.storage.schema import FAMILY_PARAM, TrialAttr
from automl.storage.trial_queue import queue_trials
from automl.storage.urls import open_storage
from automl.workers.worker import run_worker


class TrialClock:
    """An after-trial callback: each trial's seconds since the previous trial's callback."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.trials: list[FrozenTrial] = []
        self._last = time.perf_counter()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        now = time.perf_counter()
        if trial.state == TrialState.FAIL:
            raise RuntimeError(f"benchmark trial {trial.number} failed: {trial.user_attrs.get(TrialAttr.FAIL_REASON)}")
        self.seconds.append(now - self._last)
        self.trials.append(trial)
        self._last = time.perf_counter()


def overhead(clock: TrialClock, trained_s: Callable[[int], float | None]) -> float:
    """The median overhead of the timed trials that say what they trained (see module)."""
    spent = [seconds - trained for index, seconds in enumerate(clock.seconds[1:], 1)
             if (trained := trained_s(index)) is not None]
    if not spent:
        raise RuntimeError("no timed trial trained to its end: time more trials")
    return statistics.median(spent)


def _trained_s(trial: FrozenTrial) -> float | None:
    """The seconds an automl trial spent in its training epochs; None for one the pruner stopped,
    which stores no phase times (the trials that go on pay the pruner's ranking too)."""
    attrs = trial.user_attrs
    if TrialAttr.TIME_TRAIN_S not in attrs:
        return None
    return float(attrs[TrialAttr.TIME_TRAIN_S]) + float(attrs[TrialAttr.TIME_VALIDATE_S])


def automl_overhead(study_plan: StudyPlan, trials: int) -> float:
    """Seconds of overhead per trial for ``trials`` automl trials (plus a warm-up) in the study."""
    queue_trials(optuna.load_study(study_name=study_plan.config.name, storage=open_storage(study_plan.storage_url)),
                 trials + 1)
    study, requeue = join_study(study_plan, checked=True)
    with tempfile.TemporaryDirectory(prefix="automl-scale-artifacts-") as folder:
        objective = Objective(study_plan.config, study_plan.families, study_plan.data, open_store(Path(folder)))
        clock = TrialClock()
        # As `automl run` with one worker: the dashboard's updater runs between trials.
        run_worker(study, objective, study_plan.config.workers, requeue, objective.device,
                   callbacks=[clock, DashboardUpdater()])
    return overhead(clock, lambda index: _trained_s(clock.trials[index]))


def optuna_overhead(study_plan: StudyPlan, url: str, name: str, trials: int) -> float:
    """Seconds of overhead per trial for ``trials`` plain Optuna trials (plus a warm-up) in study ``name``."""
    data, task, config = study_plan.data, study_plan.data.task, study_plan.config
    trained: list[float] = []

    def objective(trial: optuna.Trial) -> list[float]:
        family = study_plan.families[trial.suggest_categorical(FAMILY_PARAM, list(study_plan.families))]
        sample_params(family, trial, task)
        sample_training(trial, config.train)
        stored = {key: value for key, value in trial.params.items() if key.startswith(f"{family.name}.")}
        seconds, accuracy = plain_loop(family, stored, data, config.train.max_epochs, torch.device("cpu"),
                                       config.seed + trial.number, batch_size=config.train.batch_size[0])
        trained.append(seconds)
        return [accuracy, float(trial.number)]

    sampler = optuna.samplers.TPESampler(multivariate=True, group=True, seed=config.seed)
    study = optuna.load_study(study_name=name, storage=url, sampler=sampler)
    clock = TrialClock()
    study.optimize(objective, n_trials=trials + 1, callbacks=[clock])
    return overhead(clock, lambda index: trained[index])
