"""The Pareto front of a finished or running study, as rows and as a printed table."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from automl.errors import plural
from automl.plugin.space import namespaced_params
from automl.storage.outline import StudyOutline
from automl.storage.schema import DEADLINE, TRAINING_NAMESPACE, TrialAttr, family_of, is_completed, is_trained
from automl.workers.study_budget import describe as study_budget_spent


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
    epochs: int | None = None  # epochs trained
    # Why it trained fewer than max_epochs without being pruned (TrialAttr.STOPPED): it counts with
    # the epochs it validated, in every view.
    stopped: str | None = None
    # With cross-validation (TrialAttr.FOLDS): how many folds val_accuracy is the mean over, and
    # the standard deviation of their accuracies (TrialAttr.VAL_ACCURACY_STD).
    folds: int | None = None
    val_accuracy_std: float | None = None

    def val_accuracy_text(self, long: bool = False) -> str:
        """The validation accuracy as accuracy_text writes it, with its spread over the folds."""
        return accuracy_text(self.val_accuracy, self.val_accuracy_std, self.folds, long)

    def epochs_text(self, long: bool = False) -> str:
        """``10``, or ``3*`` (``3, stopped by the time budget`` when ``long``) for a stopped trial."""
        if self.epochs is None:
            return "-"
        if not self.stopped:
            return str(self.epochs)
        return f"{self.epochs}, stopped by the {self.stopped}" if long else f"{self.epochs}*"


def front_rows(outline: StudyOutline) -> list[FrontRow]:
    """The trials on the front (automl.storage.schema.pareto_front), most accurate first; only
    they are read in full."""
    rows = []
    for trial in outline.full(outline.front):
        attrs = trial.user_attrs
        family = family_of(trial) or "?"
        hyperparameters = {**namespaced_params(trial.params, family),
                           **namespaced_params(trial.params, TRAINING_NAMESPACE)}
        rows.append(FrontRow(trial.number, family, attrs.get(TrialAttr.VAL_ACCURACY),
                             attrs.get(TrialAttr.TEST_ACCURACY), attrs.get(TrialAttr.FLOPS),
                             attrs.get(TrialAttr.N_PARAMS), attrs.get(TrialAttr.LATENCY_MS), hyperparameters,
                             attrs.get(TrialAttr.EPOCHS), attrs.get(TrialAttr.STOPPED),
                             attrs.get(TrialAttr.FOLDS), attrs.get(TrialAttr.VAL_ACCURACY_STD)))
    return sorted(rows, key=lambda row: -(row.val_accuracy or 0.0))


def accuracy_text(accuracy: float | None, std: float | None = None, folds: int | None = None,
                      long: bool = False) -> str:
    """``0.9300``, or "-"; cross-validated (``folds`` and ``std``, the folds' standard deviation),
    ``0.9300 ± 0.040``, and ``0.9300 ± 0.0400 over 5 folds`` when ``long``."""
    if accuracy is None:
        return "-"
    if not folds or std is None:
        return f"{accuracy:.4f}"
    return f"{accuracy:.4f} ± {std:.4f} over {folds} folds" if long else f"{accuracy:.4f} ± {std:.3f}"


def cross_validation_note(rows: Sequence[FrontRow]) -> str | None:
    """What the ``±`` of the accuracy column means; None when no row was cross-validated."""
    folds = sorted({row.folds for row in rows if row.folds and row.val_accuracy_std is not None})
    if not folds:
        return None
    counts = " or ".join(str(count) for count in folds)
    return (f"val acc: the mean over {counts} cross-validation folds ± their standard deviation "
            f"('{TrialAttr.VAL_ACCURACY_STD}' user attr; each fold's in '{TrialAttr.FOLD_ACCURACIES}')")


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


def empty_front_reason(trials: Sequence[FrozenTrial]) -> str | None:
    """Why no trial is on the front, in words; None when some trial is (or could be: one trained)."""
    if any(is_trained(trial) for trial in trials):
        return None
    if not trials:
        return "the study has no trials yet"
    completed = [trial for trial in trials if is_completed(trial)]
    if completed:
        were = "the 1 completed trial was" if len(completed) == 1 else f"all {len(completed)} completed trials were"
        return f"{were} over budget {over_budget_words(completed)}; raise the limit or the timeout"
    states = Counter(trial.state.name.lower() for trial in trials)
    return f"no trial has completed yet ({', '.join(f'{n} {state}' for state, n in sorted(states.items()))})"


def over_budget_words(over: Sequence[FrozenTrial]) -> str:
    """How the completed trials off the front for a budget (completed, not trained) got there, in words
    that follow "over budget": refused untrained (their over_budget attr), or trained and then found
    over a limit (a constraint above 0: e.g. slower to the first decision point than the time budget
    allows), which keeps them off the front as well."""
    never = sum(TrialAttr.OVER_BUDGET in trial.user_attrs for trial in over)
    refused = (f"('{TrialAttr.OVER_BUDGET}' user attr: a [budget] limit, or more of the time budget than a trial "
               "may take)")
    if never == len(over):
        return f"and never trained {refused}"
    limits = sorted({name for trial in over if TrialAttr.OVER_BUDGET not in trial.user_attrs
                     for name, value in trial.constraints.items() if value > 0})
    return (f"and left off the front: {never} never trained {refused}, {len(over) - never} trained but over "
            f"{'a limit' if not limits else ', '.join(repr(name) for name in limits)} (a constraint above 0)")


def zero_flops_warnings(trials: Sequence[FrozenTrial]) -> list[str]:
    """One warning per family whose completed trials count 0 FLOPs per sample."""
    zero = Counter(family_of(trial) or "?" for trial in trials
                   if trial.user_attrs.get(TrialAttr.FLOPS) == 0 and is_completed(trial))
    return [f"family {family!r} counts 0 FLOPs per sample in {plural(count, 'trial')}: torch's FLOP counter does "
            "not see the operations its models compute with, so the FLOPs objective and max_flops cannot rank them; "
            "the figures draw them at a marked floor" for family, count in sorted(zero.items())]


def stopped_note(rows: Sequence[FrontRow]) -> str | None:
    """What the ``*`` of the epochs column means, with the causes found; None when no row has one."""
    causes = Counter(row.stopped for row in rows if row.stopped)
    if not causes:
        return None
    found = ", ".join(f"{count} by the {cause}" for cause, count in sorted(causes.items()))
    return (f"* stopped before max_epochs ({found}; '{TrialAttr.STOPPED}' user attr): the trial counts with "
            "the epochs it validated, its last validated model is the one kept")


def front_title(outline: StudyOutline, on_front: int) -> str:
    """The front's heading: how many trials are on it, of how many started (the queued ones aside)."""
    queued = outline.queued
    return (f"Pareto front of {outline.study.study_name!r} ({on_front} of {plural(len(outline.started), 'trial')}"
            f"{f'; {queued} queued' if queued else ''})")


def front_table(outline: StudyOutline, rows: Sequence[FrontRow]) -> Table:
    """A rich table of the Pareto front's ``rows`` (front_rows): accuracy, cost and the
    hyperparameters that matter; when it is empty, its caption says why."""
    reason = empty_front_reason(outline.trials) if not rows else None
    # Text, not markup: a study name or "[budget]" would read as a style tag.
    table = Table(title=Text(front_title(outline, len(rows))), caption=Text(f"empty: {reason}") if reason else None)
    for column in ("trial", "family", "epochs", "val acc", "test acc", "FLOPs", "params", "latency ms"):
        table.add_column(column, justify="left" if column == "family" else "right")
    table.add_column("hyperparameters", overflow="fold", min_width=36)
    for row in rows:
        latency = f"{row.latency_ms:.3f}" if row.latency_ms is not None else "-"
        table.add_row(str(row.number), row.family, row.epochs_text(), row.val_accuracy_text(),
                      accuracy_text(row.test_accuracy), si(row.flops), si(row.n_params),
                      latency, " ".join(f"{k}={short(v)}" for k, v in row.hyperparameters.items()))
    return table


def _print_narrow_or_wide(console: Console, table: Table) -> None:
    """The table as it is where it fits; else without its last column (the hyperparameters), which
    follows on lines of its own, wrapped, one trial at a time: no value is cut at 80 columns."""
    hyperparameters = table.columns.pop()
    # The other columns at their natural width, plus the hyperparameters' least width and its border.
    needed = Measurement.get(console, console.options, table).maximum + (hyperparameters.min_width or 0) + 3
    if needed <= console.width:
        table.columns.append(hyperparameters)
        console.print(table)
        return
    console.print(table)
    listing = Table.grid(padding=(0, 2))
    listing.add_column(justify="right")
    listing.add_column(overflow="fold")
    for number, text in zip(table.columns[0].cells, hyperparameters.cells, strict=True):
        listing.add_row(number, text)
    console.print(f"{hyperparameters.header}, by trial:", markup=False)
    console.print(listing)


def print_front(study: optuna.Study, console: Console | None = None) -> None:
    """``automl show``: the front's table and what became of the other trials, every trial read in
    outline (automl.storage.outline), the front's in full."""
    # Piped output has no width to respect unless COLUMNS sets one; give the hyperparameters room.
    console = console or (Console() if Console().is_terminal or os.environ.get("COLUMNS") else Console(width=160))
    outline = StudyOutline.read(study)
    trials = outline.started
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    # A trial the deadline caught before its first validated epoch did not fail: it is queued again.
    caught = sum(t.user_attrs.get(TrialAttr.FAIL_REASON) == DEADLINE for t in failed)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    over_budget = outline.over_budget
    rows = front_rows(outline)
    _print_narrow_or_wide(console, front_table(outline, rows))
    for note in (cross_validation_note(rows), stopped_note(rows)):
        if note:
            console.print(note, markup=False)
    for warning in zero_flops_warnings(trials):
        console.print(f"warning: {warning}", markup=False)
    if len(failed) > caught:
        console.print(f"{plural(len(failed) - caught, 'trial')} failed; the reason is in each trial's "
                      f"'{TrialAttr.FAIL_REASON}' user attr.")
    if caught:
        console.print(f"{plural(caught, 'trial')} {'was' if caught == 1 else 'were'} under way when the time budget "
                      f"ran out, before the first validated epoch: {'it is' if caught == 1 else 'each is'} queued "
                      "again with its parameters for the next run.")
    if pruned:
        console.print(f"{plural(pruned, 'trial')} stopped early by the pruner "
                      f"('{TrialAttr.PRUNED_AT_EPOCH}' user attr).")
    if over_budget:
        # markup=False: rich would read "[budget]" as a style tag and drop it.
        console.print(f"{len(over_budget)} of {plural(len(trials), 'trial')} "
                      f"{'was' if len(over_budget) == 1 else 'were'} over budget {over_budget_words(over_budget)}; "
                      "raise the limit or the timeout if that is most of them.", markup=False)
    spent = study_budget_spent(study, outline.trials)
    if spent:
        console.print(spent, markup=False)
