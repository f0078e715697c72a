"""The Pareto front of a finished or running study, as rows and as a printed table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from rich.console import Console
from rich.table import Table

from automl.plugin.space import family_params
from automl.storage.schema import TrialAttr, family_of


@dataclass(frozen=True)
class FrontRow:
    """One Pareto-optimal trial, as shown to the user."""

    number: int
    family: str
    val_accuracy: float | None
    test_accuracy: float | None
    flops: int | None
    n_params: int | None
    latency_ms: float | None
    hyperparameters: dict[str, Any]


def front_rows(study: optuna.Study) -> list[FrontRow]:
    """Pareto-optimal completed trials (the best trials of a single-objective study)."""
    rows = []
    for trial in study.best_trials:
        attrs = trial.user_attrs
        family = family_of(trial) or "?"
        hyperparameters = {**family_params(trial.params, family), **family_params(trial.params, "train")}
        rows.append(FrontRow(trial.number, family, attrs.get(TrialAttr.VAL_ACCURACY),
                             attrs.get(TrialAttr.TEST_ACCURACY), attrs.get(TrialAttr.FLOPS),
                             attrs.get(TrialAttr.N_PARAMS), attrs.get(TrialAttr.LATENCY_MS), hyperparameters))
    return sorted(rows, key=lambda row: -(row.val_accuracy or 0.0))


def si(value: float | None) -> str:
    """A count with an SI suffix (1.02M, 25.9k), or "-"."""
    if value is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def short(value: Any) -> str:
    """A hyperparameter value in a few characters."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def front_table(study: optuna.Study) -> Table:
    """A rich table of the Pareto front: accuracy, cost and the hyperparameters that matter."""
    table = Table(title=f"Pareto front of {study.study_name!r} "
                        f"({len(study.get_trials(deepcopy=False))} trials)")
    for column in ("trial", "family", "val acc", "test acc", "FLOPs", "params", "latency ms"):
        table.add_column(column, justify="left" if column == "family" else "right")
    table.add_column("hyperparameters", overflow="fold", min_width=36)
    for row in front_rows(study):
        accuracy = [f"{v:.4f}" if v is not None else "-" for v in (row.val_accuracy, row.test_accuracy)]
        latency = f"{row.latency_ms:.3f}" if row.latency_ms is not None else "-"
        table.add_row(str(row.number), row.family, *accuracy, si(row.flops), si(row.n_params), latency,
                      " ".join(f"{k}={short(v)}" for k, v in row.hyperparameters.items()))
    return table


def print_front(study: optuna.Study, console: Console | None = None) -> None:
    # Piped output has no width to respect; give the hyperparameters room instead of 80 columns.
    console = console or (Console() if Console().is_terminal else Console(width=160))
    trials = study.get_trials(deepcopy=False)
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    over_budget = sum(TrialAttr.OVER_BUDGET in t.user_attrs for t in trials)
    console.print(front_table(study))
    if failed:
        console.print(f"{failed} trial(s) failed; the reason is in each trial's '{TrialAttr.FAIL_REASON}' user attr.")
    if pruned:
        console.print(f"{pruned} trial(s) stopped early by the pruner ('{TrialAttr.PRUNED_AT_EPOCH}' user attr).")
    if over_budget:
        # markup=False: rich would read "[budget]" as a style tag and drop it.
        console.print(f"{over_budget} of {len(trials)} trial(s) were over budget and never trained "
                      f"('{TrialAttr.OVER_BUDGET}' user attr: a [budget] limit, or more of the time budget than "
                      "a trial may take); raise the limit or the timeout if that is most of them.", markup=False)
