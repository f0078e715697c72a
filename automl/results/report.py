"""`automl report`: one self-contained HTML page (figures embedded) plus the same figures as PNGs."""

from __future__ import annotations

import base64
import html
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from automl.errors import plural
from automl.results.figures import (
    CURVES_DRAWN,
    Point,
    curves_figure,
    families_figure,
    hypervolume_figure,
    pareto_figure,
)
from automl.results.front import (
    FrontRow,
    cross_validation_note,
    empty_front_reason,
    front_rows,
    front_title,
    short,
    si,
    zero_flops_warnings,
)
from automl.results.hypervolume import hypervolume_history
from automl.results.importance import importance_figure
from automl.results.spread import front_and_spread
from automl.storage.artifacts import output_dir
from automl.storage.outline import StudyOutline
from automl.storage.schema import TrialAttr, family_of
from automl.storage.urls import redact

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Section:
    title: str
    text: str = ""
    image: str | None = None  # a PNG file name in the report folder
    table: str = ""  # HTML


def points(outline: StudyOutline) -> list[Point]:
    """The trained trials (automl.storage.schema.is_trained), as the figures draw them; a count of
    0 FLOPs is drawn too (automl.results.figures.zero_floor)."""
    front = outline.front_numbers
    found = []
    for trial in outline.trained:
        attrs = trial.user_attrs
        if attrs.get(TrialAttr.VAL_ACCURACY) is None or attrs.get(TrialAttr.FLOPS) is None:
            continue
        found.append(Point(trial.number, str(family_of(trial)), attrs[TrialAttr.VAL_ACCURACY],
                           attrs.get(TrialAttr.TEST_ACCURACY), float(attrs[TrialAttr.FLOPS]),
                           trial.number in front))
    return found


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def front_table(front: Sequence[FrontRow]) -> str:
    rows = [(r.number, r.family, r.epochs_text(long=True), r.val_accuracy_text(long=True), _number(r.test_accuracy),
             si(r.flops), si(r.n_params), _number(r.latency_ms, 3),
             " ".join(f"{k}={short(v)}" for k, v in r.hyperparameters.items()))
            for r in front]
    return _table(("trial", "family", "epochs", "val acc", "test acc", "FLOPs", "params", "latency ms",
                   "hyperparameters"), rows)


def family_table(outline: StudyOutline, trained: Sequence[Point]) -> str:
    """Per family: trials, completed, failed, on the front and over budget (automl.storage.schema's
    definitions), and spreads over its trained trials."""
    front, completed = outline.front_numbers, {trial.number for trial in outline.completed}
    over_budget = {trial.number for trial in outline.over_budget}
    by_family: dict[str, list[FrozenTrial]] = {}
    for trial in outline.started:
        by_family.setdefault(str(family_of(trial)), []).append(trial)
    rows = []
    for family, mine in sorted(by_family.items()):
        done = [p for p in trained if p.family == family]
        accuracies = [p.val_accuracy for p in done]
        rows.append((family, len(mine), sum(t.number in completed for t in mine),
                     sum(t.state == TrialState.FAIL for t in mine), sum(t.number in front for t in mine),
                     sum(t.number in over_budget for t in mine),
                     _number(max(accuracies, default=None)),
                     _number(statistics.median(accuracies) if accuracies else None),
                     si(statistics.median(p.flops for p in done) if done else None),
                     _number(max((p.test_accuracy for p in done if p.on_front and p.test_accuracy is not None),
                                 default=None))))
    return _table(("family", "trials", "completed", "failed", "on front", "over budget", "best val acc",
                   "median val acc", "median FLOPs", "best test acc on front"), rows)


def _save(figure: Figure, out_dir: Path, name: str) -> str:
    figure.savefig(out_dir / name, dpi=110)
    if hasattr(figure, "number"):  # made by pyplot, which keeps it until closed
        import matplotlib.pyplot as plt

        plt.close(figure)
    return name


def sections(outline: StudyOutline, out_dir: Path) -> list[Section]:
    study = outline.study
    completed = points(outline)
    objectives = list(study.metric_names or [f"objective {i}" for i in range(len(study.directions))])
    warnings = " ".join(f"Warning: {text}." for text in zero_flops_warnings(outline.trials))
    if not completed:
        reason = empty_front_reason(outline.trials) or "no trained trial has accuracy and FLOPs"
        return [Section("No trained trials", f"Nothing to draw: {reason}.")]
    on_front = sum(p.on_front for p in completed)
    rows = front_rows(outline)
    folds = cross_validation_note(rows)
    found = [Section(front_title(outline, on_front), f"Front by {', '.join(objectives)}; validation accuracy selects, "
                                                     f"test accuracy is only reported. {f'{folds}. ' if folds else ''}"
                                                     f"{warnings}".strip(),
                     _save(pareto_figure(completed, objectives), out_dir, "pareto_front.png"), front_table(rows))]
    history = hypervolume_history(study, objectives, outline.trained)
    found.append(Section("Hypervolume", history.explanation,
                         _save(hypervolume_figure(history), out_dir, "hypervolume.png")))
    front = {p.number for p in completed if p.on_front}
    # The curves drawn, read in full: the front's and others evenly spread (automl.results.figures.drawn_curves).
    drawn = outline.full(front_and_spread(outline.curved, lambda trial: trial.number in front, CURVES_DRAWN))
    curved = len(outline.curved)
    which = ("every trial that validated one" if len(drawn) == curved else
             f"{len(drawn):,} of the {curved:,} trials that validated one (the front's and others evenly spread "
             "over the study)")
    found.append(Section("Learning curves", f"Validation accuracy after each epoch, of {which}: "
                                            "solid when it trained to the end, dashed when it stopped early (pruned, "
                                            "or by the time budget or deadline), dotted when it failed.",
                         _save(curves_figure(drawn, front, curved), out_dir, "learning_curves.png")))
    for index, name in enumerate(objectives):
        try:
            figure, why = importance_figure(outline, index, name)
            found.append(Section(f"Hyperparameter importance for {name}",
                                 f"fANOVA {why}; with few trials, small values are noise.",
                                 _save(figure, out_dir, f"importance_{name}.png")))
        except (ValueError, RuntimeError) as exc:
            found.append(Section(f"Hyperparameter importance for {name}", f"Not available: {exc}"))
    found.append(Section("Families", "Every trial by family; spreads over the completed ones.",
                         _save(families_figure(completed), out_dir, "families.png"), family_table(outline, completed)))
    return found


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.8em 0}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}td:nth-child(2),th:nth-child(2),td:last-child,th:last-child{text-align:left}img{max-width:100%}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}.meta{color:#555}"""


def _embedded(out_dir: Path, name: str) -> str:
    data = base64.b64encode((out_dir / name).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'


def write_report(study: optuna.Study, storage_url: str, out_dir: Path) -> Path:
    """Write report.html and its PNGs into ``out_dir``; returns the HTML path. Every trial is read
    in outline (automl.storage.outline), in full only those the report prints or draws."""
    output_dir(out_dir, "report folder")
    outline = StudyOutline.read(study)
    trials = outline.trials
    states = ", ".join(f"{sum(t.state == s for t in trials)} {s.name.lower()}" for s in TrialState
                       if any(t.state == s for t in trials))
    title = f"Study {study.study_name!r}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="meta">{plural(len(trials), "trial")} ({html.escape(states or "none")}); storage '
             f"{html.escape(redact(storage_url))}; written {datetime.now():%Y-%m-%d %H:%M}</p>"]
    for section in sections(outline, out_dir):
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        if section.image:
            parts.append(_embedded(out_dir, section.image))
        parts.append(section.table)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    path = out_dir / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path
