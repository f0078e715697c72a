"""The dashboard's interactive figures, as plotly graph objects built from a study's stored trials.

optuna-dashboard shows plotly figures saved to a study (automl.results.dashboard saves these). Its
own plots cannot show them: a multi-objective trial reports no intermediate values, so its
learning curve lives in the ``val_curve`` attr; its Pareto plot has a linear FLOPs axis; it has no
hypervolume on automl's scales. Colours follow the report's (matplotlib's tab10, which is plotly's
D3 palette) by family, in name order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.colors import qualitative

from automl.results.figures import Point, drawn_curves, drawn_flops, zero_floor
from automl.results.front import si
from automl.results.hypervolume import HypervolumeHistory
from automl.results.spread import front_and_spread
from automl.storage.schema import TrialAttr, family_of

# Line style of a learning curve by the trial's state: finished lines solid, the rest broken.
DASHES = {TrialState.COMPLETE: "solid", TrialState.PRUNED: "dash", TrialState.RUNNING: "dot",
          TrialState.FAIL: "dashdot"}
# The most trained trials the front figure draws (the front's always among them).
POINTS_DRAWN = 2000
# No theme: the default one adds ~10 kB of JSON to every figure, and the figures are stored in the study.
LAYOUT = {"template": "none", "height": 420, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
          "legend": {"title": {"text": "family"}}}


def family_colors(families: Iterable[str]) -> dict[str, str]:
    """One colour per family, as the report's figures colour them (automl.results.figures)."""
    palette = qualitative.D3
    names = sorted(set(families))
    return {name: palette[index % len(palette)] for index, name in enumerate(names)}


def _legend_once(seen: set[str], name: str) -> bool:
    """Whether this is the first trace of ``name``: only that one enters the legend."""
    first = name not in seen
    seen.add(name)
    return first


def curves_figure(trials: Sequence[FrozenTrial], front: Collection[int] = ()) -> go.Figure:
    """Validation accuracy per epoch of every trial with one, coloured by family; the line style
    says its state (solid completed, dashed pruned, dotted running, dash-dotted failed). Past
    CURVES_DRAWN of them, the trials numbered in ``front`` and others evenly spread
    (automl.results.figures.drawn_curves).

    One trace per family and state holds all its trials' curves, each broken from the next by a
    gap (plotly's None): a trace per trial costs plotly a graph object each to build (seconds for a
    thousand) and the browser an SVG path each to draw. Hovering a point still names its trial.
    """
    with_curves, total = drawn_curves(trials, front)
    colors = family_colors(str(family_of(t)) for t in with_curves)
    drawn = "" if total == len(with_curves) else f"; {len(with_curves):,} of {total:,} trials"
    figure = go.Figure(layout={**LAYOUT, "title": {"text": f"Learning curves (dashed: pruned{drawn})"},
                               "xaxis": {"title": {"text": "epoch"}, "dtick": 1},
                               "yaxis": {"title": {"text": "validation accuracy"}}})
    groups: dict[tuple[str, TrialState], tuple[list[int | None], list[float | None], list[str]]] = {}
    for trial in with_curves:
        family, curve = str(family_of(trial)), trial.user_attrs[TrialAttr.VAL_CURVE]
        xs, ys, texts = groups.setdefault((family, trial.state), ([], [], []))
        if xs:
            xs.append(None)
            ys.append(None)
            texts.append("")
        xs += range(1, len(curve) + 1)
        ys += curve
        texts += [f"trial {trial.number} ({family}, {trial.state.name.lower()})"] * len(curve)
    seen: set[str] = set()
    for (family, state), (xs, ys, texts) in groups.items():
        figure.add_trace(go.Scatter(
            x=xs, y=ys, text=texts, mode="lines+markers", name=family, legendgroup=family,
            showlegend=_legend_once(seen, family), line={"color": colors[family], "dash": DASHES.get(state)},
            marker={"size": 4}, hovertemplate="%{text}<br>epoch %{x}: %{y:.4f}<extra></extra>"))
    return figure


def front_figure(points: Sequence[Point], objectives: Sequence[str]) -> go.Figure:
    """Validation accuracy against FLOPs per sample on a log axis, of the trained trials
    (automl.results.report.points), by family, past POINTS_DRAWN of them the front's and others
    evenly spread; front trials ringed; a count of 0 FLOPs drawn at the report's dotted floor
    (automl.results.figures.zero_floor)."""
    floor = zero_floor(points)
    points = front_and_spread(points, lambda point: point.on_front, POINTS_DRAWN)  # each point is an SVG element
    colors = family_colors(p.family for p in points)
    figure = go.Figure(layout={**LAYOUT, "title": {"text": "Pareto front (ringed)"},
                               "xaxis": {"title": {"text": "FLOPs per sample (log scale)"}, "type": "log"},
                               "yaxis": {"title": {"text": "validation accuracy"}}})
    for family, color in colors.items():
        mine = [p for p in points if p.family == family]
        figure.add_trace(go.Scatter(
            x=[drawn_flops(p, floor) for p in mine], y=[p.val_accuracy for p in mine], mode="markers", name=family,
            legendgroup=family, text=[f"trial {p.number}: {si(p.flops)} FLOPs" for p in mine],
            marker={"color": color, "size": 9},
            hovertemplate="%{text}, accuracy %{y:.4f}<extra>" + family + "</extra>"))
    front = sorted((p for p in points if p.on_front), key=lambda p: p.flops)
    figure.add_trace(go.Scatter(
        x=[drawn_flops(p, floor) for p in front], y=[p.val_accuracy for p in front],
        mode="markers", name=f"front of {', '.join(objectives)}", hoverinfo="skip",
        marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 1.5}}))
    if floor is not None:
        figure.add_vline(x=floor, line={"color": "gray", "dash": "dot", "width": 1})
    return figure


def hypervolume_figure(history: HypervolumeHistory) -> go.Figure:
    """Hypervolume of the front after each completed trial, in completion order (the study's note
    says how it is computed: ``history.explanation``): a point where it changed, and the last, as
    a step line draws the same."""
    kept = [index for index, value in enumerate(history.values)
            if index == 0 or index == len(history.values) - 1 or value != history.values[index - 1]]
    figure = go.Figure(layout={**LAYOUT, "title": {"text": "Hypervolume"},
                               "xaxis": {"title": {"text": "completed trials"}},
                               "yaxis": {"title": {"text": "hypervolume"}}, "showlegend": False})
    figure.add_trace(go.Scatter(
        x=[index + 1 for index in kept], y=[history.values[index] for index in kept], mode="lines+markers",
        line={"shape": "hv"},
        text=[f"trial {history.trial_numbers[index]}, {history.completed[index]:%H:%M:%S}" for index in kept],
        hovertemplate="%{text}<br>hypervolume %{y:.4f}<extra></extra>"))
    return figure
