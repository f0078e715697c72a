"""Hypervolume of a study's front as trials complete, on scales where the objectives compare.

Optuna's plot_hypervolume_history takes raw values in trial-number order. Raw FLOPs span orders
of magnitude and would drown accuracy, and a time axis needs completion order; so the objectives
are rescaled here and the volume itself comes from Optuna's exact computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from automl.storage._optuna import compute_hypervolume
from automl.storage.schema import OBJECTIVES, is_trained

# Costs are compared on a log scale, scaled to [0, 1] over the study; the reference point sits
# just beyond the costliest trial so that it still adds volume.
COST_REFERENCE = 1.1
# Objectives in [0, 1] that are maximized (the accuracies: every objective that is no cost) become
# error rates with reference 1.
BOUNDED = {name for name, spec in OBJECTIVES.items() if not spec.is_cost}


@dataclass(frozen=True)
class HypervolumeHistory:
    trial_numbers: list[int]
    completed: list[datetime]
    values: list[float]
    explanation: str


def _minimized(trials: list[FrozenTrial], names: list[str], directions: list[StudyDirection]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Trial values as losses to minimize, and the reference point."""
    raw = np.array([t.values for t in trials], dtype=float)
    columns, reference = [], []
    for index, (name, direction) in enumerate(zip(names, directions, strict=True)):
        column = raw[:, index]
        if direction == StudyDirection.MAXIMIZE and name in BOUNDED:
            columns.append(1.0 - column)
            reference.append(1.0)
            continue
        # Costs (minimized) compare by orders of magnitude; any other maximized value linearly.
        if direction == StudyDirection.MAXIMIZE:
            column = -column
        else:  # a cost of 0 (a model whose FLOPs the counter cannot see) a decade below the least above 0
            positive = column[column > 0]
            column = np.log10(np.maximum(column, positive.min() / 10 if positive.size else 1.0))
        low, high = column.min(), column.max()
        columns.append((column - low) / (high - low if high > low else 1.0))
        reference.append(COST_REFERENCE)
    return np.stack(columns, axis=1), np.array(reference)


def front_volumes(losses: np.ndarray, reference: np.ndarray) -> list[float]:
    """The hypervolume of the first i+1 rows' front, for each i.

    Computed again only when a row joins the front (a dominated one leaves it as it was), over the
    front alone: the cost grows with the rows times the front, not with the square of the rows.
    """
    front = np.empty((0, losses.shape[1]))
    volumes: list[float] = []
    for row in losses:
        if not volumes or not (front <= row).all(axis=1).any():
            front = np.vstack([front[~(row <= front).all(axis=1)], row])
            volumes.append(float(compute_hypervolume(front, reference)))
        else:
            volumes.append(volumes[-1])
    return volumes


def hypervolume_history(study: optuna.Study, objectives: list[str] | None = None,
                        trials: Sequence[FrozenTrial] | None = None) -> HypervolumeHistory:
    """The hypervolume of the completed, within-budget trials' front after each completion, in order;
    ``objectives``: the study's metric names, ``trials`` its trials (in outline will do: their
    values, constraints and times suffice), when the caller has read them already."""
    dated = [(t.datetime_complete, t) for t in (study.get_trials(deepcopy=False) if trials is None else trials)
             if is_trained(t) and t.datetime_complete is not None]
    dated.sort(key=lambda pair: (pair[0], pair[1].number))
    trained = [t for _, t in dated]
    names = objectives or list(study.metric_names or [f"objective {i}" for i in range(len(study.directions))])
    explanation = ("Accuracy enters as error rate 1 - accuracy (reference 1), each cost as its log10 "
                   f"scaled to [0, 1] over the completed trials (reference {COST_REFERENCE}). Larger is better.")
    if not trained:
        return HypervolumeHistory([], [], [], explanation)
    losses, reference = _minimized(trained, names, list(study.directions))
    values = front_volumes(losses, reference)
    return HypervolumeHistory([t.number for t in trained], [completed for completed, _ in dated], values, explanation)
