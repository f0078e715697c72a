"""The trial-record schema: the names of the study and trial attributes automl stores."""

from __future__ import annotations

from optuna.trial import FrozenTrial

# Study attrs: the study file as created (plus the families and objectives chosen) and its task.
CONFIG_ATTR = "automl_config"
TASK_ATTR = "automl_task"
# Trial attr: validation accuracy after each epoch trained.
CURVE_ATTR = "val_curve"


def is_feasible(trial: FrozenTrial) -> bool:
    """Within every budget (trials of studies without budgets always are)."""
    return all(value <= 0 for value in trial.constraints.values())
