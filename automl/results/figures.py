"""The report's figures, drawn with matplotlib from a study's completed trials.

Each function returns a matplotlib Figure (no pyplot state of its own). The Pareto front, curves
and family plots are drawn here because Optuna's plots cannot colour by family, label points with
test accuracy, or put FLOPs on a log axis; importance comes from Optuna's own plot.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import matplotlib
import numpy as np
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation, Text
from matplotlib.ticker import AutoLocator
from matplotlib.transforms import Bbox
from optuna.trial import FrozenTrial, TrialState

from automl.errors import plural
from automl.results.hypervolume import HypervolumeHistory
from automl.results.spread import front_and_spread
from automl.storage.schema import ACCURACY, FLOPS, TrialAttr, family_of

# The most learning curves a figure draws (the front's always among them): past a few thousand
# lines a figure is a blot, and 50,000 cost minutes to draw and megabytes of the dashboard's JSON.
CURVES_DRAWN = 1000


@dataclass(frozen=True)
class Point:
    """One completed trial as the figures see it."""

    number: int
    family: str
    val_accuracy: float
    test_accuracy: float | None
    flops: float
    on_front: bool


def family_colors(families: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
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
        # Arrays, not lists: matplotlib checks a list's every item for a mask (seconds for 50,000 trials).
        axis.scatter(np.array([drawn_flops(p, floor) for p in mine]), np.array([p.val_accuracy for p in mine]),
                     color=color, label=family, alpha=0.75, s=36)
    front = sorted((p for p in points if p.on_front), key=lambda p: p.flops)
    front_x = [drawn_flops(p, floor) for p in front]
    axis.scatter(front_x, [p.val_accuracy for p in front], facecolors="none",
                 edgecolors="black", s=110, linewidths=1.4, label="Pareto front")
    if list(objectives) == [ACCURACY.name, FLOPS.name]:
        # The front of exactly these two objectives is a staircase in this plane.
        axis.step(front_x, [p.val_accuracy for p in front], where="post", color="black", linewidth=0.8, alpha=0.6)
    labels = [axis.annotate(f"#{p.number}" + (f"  test {p.test_accuracy:.3f}" if p.test_accuracy is not None else ""),
                            (x, p.val_accuracy), textcoords="offset points", xytext=LABEL_OFFSETS[0], fontsize=8,
                            va="center", arrowprops={"arrowstyle": "-", "color": "gray", "linewidth": 0.5,
                                                     "shrinkA": 0, "shrinkB": 6})
              for p, x in zip(front, front_x, strict=True)]
    axis.set_xscale("log")
    xlabel = "FLOPs per sample (log scale)"
    if floor is not None:
        axis.axvline(floor, color="gray", linestyle=":", linewidth=1)
        xlabel += "; dotted line: trials that count 0 FLOPs"
    axis.set(xlabel=xlabel, ylabel="validation accuracy",
             title=f"Pareto front ({', '.join(objectives)}): ringed trials, labelled with test accuracy")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    _apart(figure, labels)
    return figure


# Where a front label may sit, in points from its trial (a thin line joins them): below right
# first, then above, then farther down and up, then the same on the left.
LABEL_OFFSETS = [(dx, dy) for dx in (8, -8) for step in range(10) for dy in (-12 - 12 * step, 4 + 12 * step)]
LABEL_GAP_PX = 2  # kept around each label, as text sizes shift a little with the dpi a figure is saved at
# Overlapping another label or leaving the axes costs this many times more than covering a ring.
LABEL_CLASH = 10
RING_PX = 7  # half the width of a front trial's ring (s=110 points squared), in pixels at dpi 100


def _apart(figure: Figure, labels: Sequence[Annotation]) -> None:
    """Move each label to the first of LABEL_OFFSETS where it stays inside the axes and overlaps
    no front trial's ring and no label placed before it (front trials close in FLOPs and accuracy
    printed their labels over each other); where none is free, to the one that overlaps least.
    Labels are left out of the layout, so moving them moves nothing else."""
    for label in labels:
        label.set_in_layout(False)
    FigureCanvasAgg(figure)
    figure.draw_without_rendering()  # the layout that saving gives, so the extents are final
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    rings = [Bbox.from_bounds(x - RING_PX, y - RING_PX, 2 * RING_PX, 2 * RING_PX)
             for x, y in (label.axes.transData.transform(label.xy) for label in labels if label.axes)]
    placed: list[Bbox] = []
    for label in labels:
        inside = label.axes.get_window_extent(renderer) if label.axes else None
        tried = []
        for offset in LABEL_OFFSETS:
            box = _move(label, offset, renderer)
            outside = box.width * box.height - _area(Bbox.intersection(box, inside)) if inside else 0.0
            clash = outside + sum(_area(Bbox.intersection(box, other)) for other in placed)
            overlap = LABEL_CLASH * clash + sum(_area(Bbox.intersection(box, ring)) for ring in rings)
            tried.append((overlap, offset))
            if overlap == 0:
                break
        placed.append(_move(label, min(tried, key=lambda found: found[0])[1], renderer))


def _move(label: Annotation, offset: tuple[int, int], renderer: RendererBase) -> Bbox:
    """Put ``label`` at ``offset`` from its point; return where its text lies (without the line to its point)."""
    label.xyann = offset
    label.set_horizontalalignment("left" if offset[0] > 0 else "right")
    label.update_positions(renderer)
    return Text.get_window_extent(label, renderer).padded(LABEL_GAP_PX)


def _area(box: Bbox | None) -> float:
    return 0.0 if box is None else box.width * box.height


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


# How a learning curve is drawn by how its trial ended: solid when it trained to the end, dashed when
# it stopped early (pruned, or stopped by the time budget or deadline), dotted when it failed.
LINE_STYLES: dict[str, Literal["solid", "dashed", "dotted"]] = {
    "trained to the end": "solid", "stopped early": "dashed", "failed": "dotted"}


def _ending(trial: FrozenTrial) -> str:
    if trial.state == TrialState.FAIL:
        return "failed"
    if trial.state == TrialState.PRUNED or trial.user_attrs.get(TrialAttr.STOPPED):
        return "stopped early"
    return "trained to the end"


def drawn_curves(trials: Sequence[FrozenTrial], front: Collection[int], at_most: int = CURVES_DRAWN
                 ) -> tuple[list[FrozenTrial], int]:
    """The trials whose learning curves a figure draws (front_and_spread, the trials numbered in
    ``front`` on it), and how many have one."""
    curved = [t for t in trials if t.user_attrs.get(TrialAttr.VAL_CURVE)]
    return front_and_spread(curved, lambda trial: trial.number in front, at_most), len(curved)


def curves_figure(trials: Sequence[FrozenTrial], front: Collection[int], total: int | None = None) -> Figure:
    """Validation accuracy per epoch of every trial that validated an epoch, stopped early or not
    (the line style says how it ended), up to CURVES_DRAWN of them (drawn_curves); the trials
    numbered in ``front`` drawn thick. ``total``: how many trials of the study validated an epoch,
    when ``trials`` are those drawn of them (a view that reads in full only those it draws)."""
    curved, found = drawn_curves(trials, front)
    total = found if total is None else total
    colors = family_colors([str(family_of(t)) for t in curved])
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axis = figure.subplots()
    # The other trials' curves as one collection per family and ending, not a line each: a thousand
    # lines cost a second or more to lay out and draw, a dozen collections a few hundredths.
    thin: dict[tuple[str, str], list[np.ndarray]] = {}
    for trial in curved:
        if trial.number not in front:
            curve = trial.user_attrs[TrialAttr.VAL_CURVE]
            thin.setdefault((str(family_of(trial)), _ending(trial)), []).append(
                np.column_stack((np.arange(1, len(curve) + 1), np.asarray(curve, dtype=float))))
    for (family, ending), lines in thin.items():
        axis.add_collection(LineCollection(lines, colors=[colors[family]], linestyles=LINE_STYLES[ending],
                                           alpha=0.4, linewidths=0.9))
    axis.autoscale_view()
    for trial in curved:  # front trials thick, on top
        if trial.number in front:
            curve = trial.user_attrs[TrialAttr.VAL_CURVE]
            axis.plot(range(1, len(curve) + 1), curve, color=colors[str(family_of(trial))],
                      linestyle=LINE_STYLES[_ending(trial)], alpha=0.9, linewidth=2.2, marker="o", markersize=3)
    whole_epochs = AutoLocator()  # the default locator, ticking whole epochs only
    whole_epochs.set_params(integer=True)
    axis.xaxis.set_major_locator(whole_epochs)
    endings = {_ending(t) for t in curved}
    legend = [Line2D([], [], color=color, label=family) for family, color in colors.items()]
    legend += [Line2D([], [], color="gray", linestyle=style, label=ending)
               for ending, style in LINE_STYLES.items() if ending in endings and len(endings) > 1]
    stopped = sum(_ending(t) == "stopped early" for t in curved)
    drawn = plural(total, "trial") if total == len(curved) else f"{len(curved):,} of {total:,} trials"
    axis.set(xlabel="epoch", ylabel="validation accuracy",
             title=f"Learning curves of {drawn}, {stopped} stopped early (thick: Pareto front trials)")
    axis.grid(alpha=0.3)
    axis.legend(handles=legend, fontsize=8, loc="lower right")
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
            axis.scatter(np.full(len(group), position), np.array(group), color="black", s=9, zorder=3)  # as above
        axis.set(ylabel=label, title=f"{label} by family")
        axis.grid(alpha=0.3, axis="y")
    flops_axis.set_yscale("log")
    if floor is not None:
        flops_axis.axhline(floor, color="gray", linestyle=":", linewidth=1)
        flops_axis.set_title("FLOPs per sample by family (dotted line: 0 counted)")
    return figure
