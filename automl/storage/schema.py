"""The trial-record schema: every name automl stores on a study or a trial, the objectives a study
file can name, and what a stored trial says about itself (its family, whether it is feasible).

Every module reads and writes studies and trials through these names. The stored names never
change: existing databases, optuna-dashboard and ``automl show`` read them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from automl.storage.pareto import non_domination_ranks

# The automl release writing these records; a study stores it with its fingerprint
# (automl.search.fingerprint), so that one made by another release is told apart. automl.__version__.
AUTOML_VERSION = "0.1.0"

# Study user attrs.
CONFIG_ATTR = "automl_config"  # the study file as created, plus the families and objectives chosen (a dict)
TASK_ATTR = "automl_task"  # the study's task, as automl.plugin.task.Task.to_dict() gives it
# What turns the data as the user holds it into its models' inputs, for exports and automl.load_model
# (automl.results.raw_inputs.Preprocessing.to_dict()).
PREPROCESSING_ATTR = "automl_preprocessing"
# The budget shared by all workers of a study (automl.workers.study_budget): {"deadline": time.time()
# seconds or None, "study_timeout": seconds it was set from, "device_hours": hours or None}.
STUDY_BUDGET_ATTR = "automl_study_budget"
# What a resumed study must match: its space, objectives, task and data (automl.search.fingerprint).
FINGERPRINT_ATTR = "automl_fingerprint"

# The trial parameter that picks the family; its value is the family's name. The family's own
# parameters are named "FAMILY.KEY", the training ones "train.KEY" (automl.plugin.space namespaces them).
FAMILY_PARAM = "family"
TRAINING_NAMESPACE = "train"
# The fail_reason of a trial the study's deadline stopped before its first validated epoch; it is
# queued again with its parameters, like an interrupted one ("interrupted").
DEADLINE = "deadline"


class TrialAttr(StrEnum):
    """The user attrs a trial stores; each member is (and compares equal to) its stored name.

    Units are in each member's comment. Measured before training: n_params, flops, latency_ms,
    peak_memory_mb; a trial that is over budget stops there (epochs 0, over_budget set).
    """

    FAMILY = "family"  # the family's name, as registered
    DEVICE = "device"  # the torch device it trained on: "cpu", "cuda:0", ...
    WORKER = "worker"  # the worker process that ran it: "host:pid"
    N_PARAMS = "n_params"  # trainable parameters (a count)
    FLOPS = "flops"  # forward FLOPs per sample, a multiply-add counting 2
    LATENCY_MS = "latency_ms"  # ms of one forward pass at [search] latency_batch_size (see LATENCY_METHOD)
    # How latency_ms was measured: "thread CPU time, torch on 1 thread; batch 1; minimum of 21 timings of ..."
    LATENCY_METHOD = "latency_method"
    PEAK_MEMORY_MB = "peak_memory_mb"  # MiB of GPU memory one training step peaks at (GPU trials only)
    OVER_BUDGET = "over_budget"  # why it was never trained: "flops 4.35e+06 > max_flops 1e+06; ..."
    EPOCHS = "epochs"  # epochs trained (0 when over budget)
    # Fraction of the validation split classified right, in [0, 1]; with cross-validation the mean over folds.
    VAL_ACCURACY = "val_accuracy"
    TEST_ACCURACY = "test_accuracy"  # the same on the test split: reported, never selected on
    VAL_CURVE = "val_curve"  # validation accuracy after each epoch so far, a list
    VAL_LOSS = "val_loss"  # mean cross-entropy (nats) per validation sample, of the epoch val_accuracy is from
    VAL_LOSS_CURVE = "val_loss_curve"  # val_loss after each epoch so far, a list
    # Validation samples the accuracy is measured on (every non-test row with cross-validation).
    VAL_SAMPLES = "val_samples"
    FOLDS = "folds"  # cross-validation folds the trial trained (absent: one validation split)
    # With cross-validation: each fold's validation accuracy, and their standard deviation (the
    # spread of val_accuracy, which is their mean).
    FOLD_ACCURACIES = "fold_accuracies"
    VAL_ACCURACY_STD = "val_accuracy_std"
    PRUNED_AT_EPOCH = "pruned_at_epoch"  # epochs trained when the pruner stopped it
    # Why it trained fewer than max_epochs without being pruned; it counts with the epochs it
    # validated (epochs, val_curve): "deadline" (the study's time ran out) or "time budget" (its next
    # decision point would take more of the time left than a trial may; automl.search.time_budget).
    STOPPED = "stopped"
    RESUMED_FROM = "resumed_from"  # the interrupted trial whose last validated epoch it went on from
    # Epochs before which the pruner leaves a warm-start config alone: where its source reached its accuracy.
    PROTECTED_EPOCHS = "protected_epochs"
    RUNG = "rung"  # the MO-ASHA rung (0-based index) it was stopped at
    # A queued trial's place in a study queued lazily (automl.storage.trial_queue): the window (0,
    # 1, ...) whose first trial it is, and on one trial per window the trials still to queue after it
    # (a count, or trial_queue.UNTIL_DEADLINE).
    QUEUE_WINDOW = "queue_window"
    QUEUE_MORE = "queue_more"
    FAIL_REASON = "fail_reason"  # "ErrorType: message" (at most 2000 characters), or "interrupted"
    WALL_TIME_S = "wall_time_s"  # seconds in the objective, all phases together
    # Seconds per phase: sampling and building; measuring the cost; training; validating; the rest.
    TIME_BUILD_S = "time_build_s"
    TIME_MEASURE_S = "time_measure_s"
    TIME_TRAIN_S = "time_train_s"
    TIME_VALIDATE_S = "time_validate_s"
    TIME_OTHER_S = "time_other_s"


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective a study file can list in ``[search] objectives``."""

    name: str  # in study files and the study's metric names
    direction: Literal["maximize", "minimize"]  # as optuna.create_study takes it
    attr: TrialAttr  # the trial user attr that holds the measured value
    # A cost, measured before training and compared by orders of magnitude; otherwise an accuracy in [0, 1].
    is_cost: bool
    budget_key: str | None = None  # the [budget] key that limits it, if any


ACCURACY = ObjectiveSpec("val_accuracy", "maximize", TrialAttr.VAL_ACCURACY, is_cost=False)
FLOPS = ObjectiveSpec("flops", "minimize", TrialAttr.FLOPS, is_cost=True, budget_key="max_flops")
PARAMS = ObjectiveSpec("params", "minimize", TrialAttr.N_PARAMS, is_cost=True, budget_key="max_params")
LATENCY = ObjectiveSpec("latency_ms", "minimize", TrialAttr.LATENCY_MS, is_cost=True,
                        budget_key="max_latency_ms")
# Every objective, by name, in the order study-file errors list them.
OBJECTIVES = {spec.name: spec for spec in (ACCURACY, FLOPS, PARAMS, LATENCY)}
OBJECTIVE_NAMES = tuple(OBJECTIVES)


def objective_values(names: Sequence[str], measured: Mapping[str, float]) -> list[float]:
    """The values of the objectives ``names``, in that order, from ``measured`` (keyed by trial attr).

    Raises KeyError for a name not in OBJECTIVES or a value ``measured`` lacks.
    """
    return [float(measured[OBJECTIVES[name].attr]) for name in names]


def is_feasible(trial: FrozenTrial) -> bool:
    """Within every budget: each constraint, log10(cost / limit), at most 0 (without budgets, always)."""
    return all(value <= 0 for value in trial.constraints.values())


# Every view (show, report, dashboard, hypervolume, export, warm start) counts trials by the
# definitions below, so that one trial is never completed in one view and missing from another.
def started_trials(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The study's trials but the queued ones, placeholders until a worker pops them (a study that
    samples until its deadline keeps up to a window of them: automl.storage.trial_queue).
    ``trials``: the study's, when the caller has read them (in outline will do: the state suffices)."""
    return [trial for trial in (study.get_trials(deepcopy=False) if trials is None else trials)
            if trial.state != TrialState.WAITING]


def is_completed(trial: FrozenTrial) -> bool:
    """Finished with a finite value for every objective: trained, or refused untrained (over a
    [budget] limit or the time budget; then not feasible)."""
    return (trial.state == TrialState.COMPLETE and trial.values is not None
            and all(math.isfinite(value) for value in trial.values))


def is_trained(trial: FrozenTrial) -> bool:
    """Completed and feasible: its model trained and was scored, so it can be on the front."""
    return is_completed(trial) and is_feasible(trial)


def pareto_front(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The front: the trained trials (is_trained) that no other trained trial dominates, by number.

    Dominance as Optuna's ``best_trials`` has it (no worse in every objective, better in one; equal
    trials are all on the front); a trial's FLOPs count of 0 is a value like any other here. Found
    here, not by ``best_trials``: that deep-copies every trial of the study first, seconds and a
    second copy in memory for a study of 50,000 trials. ``trials``: the study's, when the caller
    has read them (in outline will do: states, values and constraints suffice).
    """
    trained = [trial for trial in (study.get_trials(deepcopy=False) if trials is None else trials)
               if is_trained(trial)]
    if not trained:
        return []
    signs = np.array([1.0 if direction == StudyDirection.MINIMIZE else -1.0 for direction in study.directions])
    losses = np.array([trial.values for trial in trained], dtype=float) * signs
    first = non_domination_ranks(losses, enough=1) == 0
    return [trial for trial, on_front in zip(trained, first, strict=True) if on_front]


def family_of(trial: FrozenTrial) -> str | None:
    """The trial's family name: its user attr, else its family parameter (a trial queued again has
    its parameters but no attrs yet), else None."""
    return trial.user_attrs.get(TrialAttr.FAMILY) or trial.params.get(FAMILY_PARAM)
