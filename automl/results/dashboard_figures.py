"""The dashboard's interactive figures, as plotly graph objects built from a study's stored trials.

optuna-dashboard shows plotly figures saved to a study (automl.results.dashboard saves these). Its
own plots cannot show them: a multi-objective trial reports no intermediate values, so its
learning curve lives in the ``val_curve`` attr; its Pareto plot has a linear FLOPs axis; it has no
hypervolume on automl's scales. Colours follow the report's (matplotlib's tab10, which is plotly's
D3 palette) by family, in name order.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.colors import qualitative

from automl.results.hypervolume import HypervolumeHistory
from automl.storage.schema import TrialAttr, family_of, is_feasible

# Line style of a learning curve by the trial's state: finished lines solid, the rest broken.
DASHES = {TrialState.COMPLETE: "solid", TrialState.PRUNED: "dash", TrialState.RUNNING: "dot",
          TrialState.FAIL: "dashdot"}
# No theme: the default one adds ~10 kB of JSON to every figure, and the figures are stored in the study.
LAYOUT = {"template": "none", "height": 420, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
          "legend": {"title": {"text": "family"}}}


def family_colors(trials: Sequence[FrozenTrial]) -> dict[str, str]:
    """One colour per family, as the report's figures colour them (automl.results.figures)."""
    palette = qualitative.D3
    names = sorted({str(family_of(trial)) for trial in trials})
    return {name: palette[index % len(palette)] for index, name in enumerate(names)}


def _legend_once(seen: set[str], name: str) -> bool:
    """Whether this is the first trace of ``name``: only that one enters the legend."""
    first = name not in seen
    seen.add(name)
    return first


def curves_figure(trials: Sequence[FrozenTrial]) -> go.Figure:
    """Validation accuracy per epoch of every trial with one, coloured by family; the line style
    says its state (solid completed, dashed pruned, dotted running, dash-dotted failed)."""
    with_curves = [t for t in trials if t.user_attrs.get(TrialAttr.VAL_CURVE)]
    colors = family_colors(with_curves)
    figure = go.Figure(layout={**LAYOUT, "title": {"text": "Learning curves (dashed: pruned)"},
                               "xaxis": {"title": {"text": "epoch"}, "dtick": 1},
                               "yaxis": {"title": {"text": "validation accuracy"}}})
    seen: set[str] = set()
    for trial in with_curves:
        family, curve = str(family_of(trial)), trial.user_attrs[TrialAttr.VAL_CURVE]
        figure.add_trace(go.Scatter(
            x=list(range(1, len(curve) + 1)), y=curve, mode="lines+markers", name=family, legendgroup=family,
            showlegend=_legend_once(seen, family), line={"color": colors[family], "dash": DASHES.get(trial.state)},
            marker={"size": 4}, hovertemplate=f"trial {trial.number} ({family}, {trial.state.name.lower()})<br>"
                                              "epoch %{x}: %{y:.4f}<extra></extra>"))
    return figure


def front_figure(trials: Sequence[FrozenTrial], front: set[int], objectives: Sequence[str]) -> go.Figure:
    """Validation accuracy against FLOPs per sample on a log axis, of every completed trial that
    measured both, by family; ``front`` (trial numbers) ringed, trials over a budget drawn as x."""
    shown = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get(TrialAttr.FLOPS)
             and t.user_attrs.get(TrialAttr.VAL_ACCURACY) is not None]
    colors = family_colors(shown)
    figure = go.Figure(layout={**LAYOUT, "title": {"text": "Pareto front (ringed)"},
                               "xaxis": {"title": {"text": "FLOPs per sample (log scale)"}, "type": "log"},
                               "yaxis": {"title": {"text": "validation accuracy"}}})
    for family, color in colors.items():
        mine = [t for t in shown if str(family_of(t)) == family]
        figure.add_trace(go.Scatter(
            x=[t.user_attrs[TrialAttr.FLOPS] for t in mine], y=[t.user_attrs[TrialAttr.VAL_ACCURACY] for t in mine],
            mode="markers", name=family, legendgroup=family, text=[f"trial {t.number}" for t in mine],
            marker={"color": color, "size": 9, "symbol": ["circle" if is_feasible(t) else "x" for t in mine]},
            hovertemplate="%{text}<br>%{x:.3s} FLOPs, accuracy %{y:.4f}<extra>" + family + "</extra>"))
    ringed = sorted((t for t in shown if t.number in front), key=lambda t: t.user_attrs[TrialAttr.FLOPS])
    figure.add_trace(go.Scatter(
        x=[t.user_attrs[TrialAttr.FLOPS] for t in ringed], y=[t.user_attrs[TrialAttr.VAL_ACCURACY] for t in ringed],
        mode="markers", name=f"front of {', '.join(objectives)}", hoverinfo="skip",
        marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 1.5}}))
    return figure


def hypervolume_figure(history: HypervolumeHistory) -> go.Figure:
    """Hypervolume of the front after each completed trial, in completion order (the study's note
    says how it is computed: ``history.explanation``)."""
    figure = go.Figure(layout={**LAYOUT, "title": {"text": "Hypervolume"},
                               "xaxis": {"title": {"text": "completed trials"}},
                               "yaxis": {"title": {"text": "hypervolume"}}, "showlegend": False})
    figure.add_trace(go.Scatter(
        x=list(range(1, len(history.values) + 1)), y=history.values, mode="lines+markers", line={"shape": "hv"},
        text=[f"trial {number}, {moment:%H:%M:%S}" for number, moment in zip(
            history.trial_numbers, history.completed, strict=True)],
        hovertemplate="%{text}<br>hypervolume %{y:.4f}<extra></extra>"))
    return figure
