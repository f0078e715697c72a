"""The report's figures, drawn with matplotlib from a study's completed trials.

Each function returns a matplotlib Figure (no pyplot state of its own). The Pareto front, curves
and family plots are drawn here because Optuna's plots cannot colour by family, label points with
test accuracy, or put FLOPs on a log axis; importance comes from Optuna's own plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import AutoLocator

from automl.results.hypervolume import HypervolumeHistory
from automl.storage.schema import ACCURACY, FLOPS


@dataclass(frozen=True)
class Point:
    """One completed trial as the figures see it."""

    number: int
    family: str
    val_accuracy: float
    test_accuracy: float | None
    flops: float
    on_front: bool
    val_curve: list[float] = field(default_factory=list)


def family_colors(families: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """One colour per family, the same in every figure."""
    palette = matplotlib.colormaps["tab10"]
    return {name: palette(index % 10) for index, name in enumerate(sorted(set(families)))}


def zero_floor(points: Sequence[Point]) -> float | None:
    """Where a log axis draws trials that count 0 FLOPs: a decade below the smallest count above 0
    (1 when there is none); None when no trial counts 0. A log axis has no 0, and matplotlib would
    leave such a trial out of the figure without a word."""
    if all(p.flops > 0 for p in points):
        return None
    return min((p.flops for p in points if p.flops > 0), default=10.0) / 10


def drawn_flops(point: Point, floor: float | None) -> float:
    """The FLOPs at which ``point`` is drawn on a log axis (see zero_floor)."""
    return point.flops if point.flops > 0 or floor is None else floor


def pareto_figure(points: Sequence[Point], objectives: Sequence[str]) -> Figure:
    """Validation accuracy against FLOPs per sample, by family; front trials ringed and labelled."""
    colors = family_colors([p.family for p in points])
    floor = zero_floor(points)
    figure = Figure(figsize=(8, 5.2), layout="constrained")
    axis = figure.subplots()
    for family, color in colors.items():
        mine = [p for p in points if p.family == family]
        axis.scatter([drawn_flops(p, floor) for p in mine], [p.val_accuracy for p in mine], color=color,
                     label=family, alpha=0.75, s=36)
    front = sorted((p for p in points if p.on_front), key=lambda p: p.flops)
    front_x = [drawn_flops(p, floor) for p in front]
    axis.scatter(front_x, [p.val_accuracy for p in front], facecolors="none",
                 edgecolors="black", s=110, linewidths=1.4, label="Pareto front")
    if list(objectives) == [ACCURACY.name, FLOPS.name]:
        # The front of exactly these two objectives is a staircase in this plane.
        axis.step(front_x, [p.val_accuracy for p in front], where="post", color="black", linewidth=0.8, alpha=0.6)
    for p, x in zip(front, front_x, strict=True):
        label = f"#{p.number}" + (f"  test {p.test_accuracy:.3f}" if p.test_accuracy is not None else "")
        axis.annotate(label, (x, p.val_accuracy), textcoords="offset points", xytext=(6, -12), fontsize=8)
    axis.set_xscale("log")
    xlabel = "FLOPs per sample (log scale)"
    if floor is not None:
        axis.axvline(floor, color="gray", linestyle=":", linewidth=1)
        xlabel += "; dotted line: trials that count 0 FLOPs"
    axis.set(xlabel=xlabel, ylabel="validation accuracy",
             title=f"Pareto front ({', '.join(objectives)}): ringed trials, labelled with test accuracy")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    return figure


def hypervolume_figure(history: HypervolumeHistory) -> Figure:
    """Hypervolume after each completed trial, against trial count and against wall time."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    by_trial, by_time = figure.subplots(1, 2, sharey=True)
    by_trial.step(range(1, len(history.values) + 1), history.values, where="post", marker=".")
    by_trial.set(xlabel="completed trials", ylabel="hypervolume", title="Hypervolume over trials")
    start: datetime | None = history.completed[0] if history.completed else None
    minutes = [(moment - start).total_seconds() / 60 for moment in history.completed] if start else []
    by_time.step(minutes, history.values, where="post", marker=".", color="tab:green")
    by_time.set(xlabel="minutes since the first trial completed", title="Hypervolume over time")
    for axis in (by_trial, by_time):
        axis.grid(alpha=0.3)
    return figure


def curves_figure(points: Sequence[Point]) -> Figure:
    """Validation accuracy per epoch of every completed trial; front trials drawn thick."""
    colors = family_colors([p.family for p in points])
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axis = figure.subplots()
    labelled: set[str] = set()
    for p in sorted(points, key=lambda p: p.on_front):  # front trials on top
        epochs = range(1, len(p.val_curve) + 1)
        label = p.family if p.family not in labelled else None
        labelled.add(p.family)
        axis.plot(epochs, p.val_curve, color=colors[p.family], alpha=0.9 if p.on_front else 0.35,
                  linewidth=2.2 if p.on_front else 0.9, marker="o" if p.on_front else None, markersize=3,
                  label=label)
    whole_epochs = AutoLocator()  # the default locator, ticking whole epochs only
    whole_epochs.set_params(integer=True)
    axis.xaxis.set_major_locator(whole_epochs)
    axis.set(xlabel="epoch", ylabel="validation accuracy",
             title="Learning curves (thick: Pareto front trials)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return figure


def families_figure(points: Sequence[Point]) -> Figure:
    """Per family: the spread of validation accuracy and of FLOPs over its completed trials."""
    colors = family_colors([p.family for p in points])
    names = sorted(colors)
    floor = zero_floor(points)
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    accuracy_axis, flops_axis = figure.subplots(1, 2)
    for axis, values_of, label in ((accuracy_axis, lambda p: p.val_accuracy, "validation accuracy"),
                                   (flops_axis, lambda p: drawn_flops(p, floor), "FLOPs per sample")):
        groups = [[values_of(p) for p in points if p.family == name] for name in names]
        boxes = axis.boxplot(groups, tick_labels=names, patch_artist=True, widths=0.5)
        for patch, name in zip(boxes["boxes"], names, strict=True):
            patch.set(facecolor=colors[name], alpha=0.45)
        for position, group in enumerate(groups, start=1):
            axis.scatter([position] * len(group), group, color="black", s=9, zorder=3)
        axis.set(ylabel=label, title=f"{label} by family")
        axis.grid(alpha=0.3, axis="y")
    flops_axis.set_yscale("log")
    if floor is not None:
        flops_axis.axhline(floor, color="gray", linestyle=":", linewidth=1)
        flops_axis.set_title("FLOPs per sample by family (dotted line: 0 counted)")
    return figure
