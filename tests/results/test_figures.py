"""The report's figures: front labels apart, every trial's learning curve, and importance that one
title heads and that explains a cost by the parameters that build the model."""

from __future__ import annotations

import itertools
import random
from datetime import datetime

import optuna
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.text import Text
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from automl.results.dashboard_figures import POINTS_DRAWN, front_figure, hypervolume_figure
from automl.results.figures import CURVES_DRAWN, Point, curves_figure, drawn_curves, pareto_figure
from automl.results.hypervolume import HypervolumeHistory
from automl.results.importance import IMPORTANCE_TRIALS, explained, importance_figure
from automl.storage.outline import StudyOutline
from automl.storage.schema import FAMILY_PARAM, TrialAttr


def test_front_labels_close_together_do_not_print_over_each_other() -> None:
    # Eight front trials within 15% of each other's FLOPs and 0.01 of each other's accuracy.
    front = [Point(number, "mlp", 0.9 + 0.001 * number, 0.88, 1000 * (1 + 0.02 * number), True)
             for number in range(8)]
    rest = [Point(20 + number, "cnn", 0.5 + 0.02 * number, None, 10 ** (3 + 0.3 * number), False)
            for number in range(10)]
    figure = pareto_figure(front + rest, ["val_accuracy", "flops"])
    FigureCanvasAgg(figure)
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    axis = figure.axes[0]
    labels = [text for text in axis.texts if text.get_text().startswith("#")]
    assert len(labels) == 8
    boxes = [Text.get_window_extent(label, renderer) for label in labels]
    for first, second in itertools.combinations(boxes, 2):
        assert not first.overlaps(second), (first, second)
    inside = axis.get_window_extent(renderer)
    assert all(inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1) for box in boxes)


def _trial(number: int, state: TrialState, curve: list[float], **attrs: object) -> FrozenTrial:
    values = [curve[-1], 1000.0] if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, values=values, params={FAMILY_PARAM: "mlp"},
                         distributions={FAMILY_PARAM: CategoricalDistribution(["mlp"])},
                         user_attrs={TrialAttr.FAMILY: "mlp", TrialAttr.VAL_CURVE: curve, **attrs})
    trial.number = number
    return trial


def test_learning_curves_show_every_trial_stopped_early_too() -> None:
    trials = [_trial(0, TrialState.COMPLETE, [0.5, 0.7, 0.8]),
              _trial(1, TrialState.PRUNED, [0.3]),
              _trial(2, TrialState.COMPLETE, [0.4, 0.6], **{TrialAttr.STOPPED: "time budget"}),
              _trial(3, TrialState.FAIL, [0.2, 0.25]),
              _trial(4, TrialState.FAIL, [])]  # failed before its first epoch: nothing to draw
    axis = curves_figure(trials, front={0}).axes[0]
    # The front trial's curve is a line of its own, thick; the others are drawn in collections.
    assert [(line.get_linestyle(), list(line.get_ydata())) for line in axis.lines] == [("-", [0.5, 0.7, 0.8])]
    assert axis.lines[0].get_linewidth() > 2
    # Pruned after 1 epoch and stopped by the time budget after 2: dashed; failed after 2: dotted.
    drawn = {style: sorted(len(segment) for collection in axis.collections
                           if collection.get_linestyle() == _drawn_style(style) for segment in collection.get_segments())
             for style in ("solid", "dashed", "dotted")}
    assert drawn == {"solid": [], "dashed": [1, 2], "dotted": [2]}
    assert all(collection.get_linewidth()[0] < 2 for collection in axis.collections)
    assert "4 trials, 2 stopped early" in axis.get_title()
    assert {text.get_text() for text in axis.get_legend().get_texts()} == {
        "mlp", "trained to the end", "stopped early", "failed"}


def _drawn_style(style: str) -> object:
    """How a collection of thin curves drawn ``style`` reports its line style (dashes scale with the width)."""
    return LineCollection([], linestyles=style, linewidths=0.9).get_linestyle()


def test_past_the_limit_the_curves_drawn_are_the_fronts_and_others_spread_over_the_study() -> None:
    trials = [_trial(number, TrialState.PRUNED, [0.3]) for number in range(50)]
    drawn, total = drawn_curves(trials, front={7, 45}, at_most=10)
    numbers = [trial.number for trial in drawn]
    assert total == 50 and len(numbers) == 10 and {7, 45} <= set(numbers) and numbers == sorted(numbers)
    assert numbers[0] < 5 and numbers[-1] >= 40  # spread from the first trials to the last
    assert drawn_curves(trials, front={7}, at_most=50) == (trials, 50)  # up to the limit: every one
    many = [_trial(number, TrialState.PRUNED, [0.3]) for number in range(1500)]
    axis = curves_figure(many, front=set()).axes[0]  # 1,500 curves: CURVES_DRAWN of them drawn
    assert sum(len(collection.get_segments()) for collection in axis.collections) == CURVES_DRAWN and f"{CURVES_DRAWN:,} of 1,500 trials" in axis.get_title()


def test_the_dashboards_front_and_hypervolume_figures_stay_small_on_a_large_study() -> None:
    points = [Point(number, "mlp", 0.5, None, 1000.0 + number, number in (3, 4999)) for number in range(5000)]
    traces = front_figure(points, ["val_accuracy", "flops"]).data
    drawn = [x for trace in traces[:-1] for x in trace.x]
    assert len(drawn) == POINTS_DRAWN and {1003.0, 5999.0} <= set(drawn) and list(traces[-1].x) == [1003.0, 5999.0]
    values = [0.1] * 3 + [0.2] * 4 + [0.5] * 3  # changed after the 3rd and the 7th completed trial
    history = HypervolumeHistory(list(range(10)), [datetime(2025, 1, 1)] * 10, values, "")
    line = hypervolume_figure(history).data[0]
    assert list(line.x) == [1, 4, 8, 10] and list(line.y) == [0.1, 0.2, 0.5, 0.5]  # the same steps


def test_importance_of_a_large_study_is_computed_over_a_spread_sample() -> None:
    study = _searched_study(trained=IMPORTANCE_TRIALS + 60)
    accuracy = explained(StudyOutline.read(study), "val_accuracy")
    trained = [trial.values for trial in study.trials if trial.values[0] > 0]
    spread = [trained[index * len(trained) // IMPORTANCE_TRIALS] for index in range(IMPORTANCE_TRIALS)]
    assert [trial.values for trial in accuracy.study.trials] == spread  # from the first trial to the last
    assert f"({IMPORTANCE_TRIALS:,} of them, evenly spread over the study)" in accuracy.why


def _searched_study(trained: int = 40) -> optuna.Study:
    """Trials whose FLOPs follow depth alone and whose accuracy follows the learning rate alone;
    plus trials refused over budget (accuracy 0, never trained)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    rng = random.Random(0)
    distributions = {FAMILY_PARAM: CategoricalDistribution(["mlp"]), "mlp.depth": IntDistribution(1, 4),
                     "train.lr": FloatDistribution(1e-4, 1e-2, log=True)}
    for index in range(trained + 10):
        depth, lr = rng.randint(1, 4), 10 ** rng.uniform(-4, -2)
        over_budget = index >= trained
        accuracy = 0.0 if over_budget else 0.5 + 40 * lr + rng.random() * 0.01
        study.add_trial(create_trial(values=[accuracy, 1000.0 * depth], distributions=distributions,
                                     params={FAMILY_PARAM: "mlp", "mlp.depth": depth, "train.lr": lr},
                                     constraints={"max_flops": 1.0 if over_budget else -1.0}))
    return study


def test_a_cost_is_explained_by_the_parameters_that_build_the_model_only() -> None:
    study = _searched_study()
    flops = explained(StudyOutline.read(study), "flops")
    assert "train.lr" not in flops.params and "mlp.depth" in flops.params
    assert len(flops.study.trials) == 50  # over-budget trials measured their FLOPs too
    accuracy = explained(StudyOutline.read(study), "val_accuracy")
    assert "train.lr" in accuracy.params and len(accuracy.study.trials) == 40  # trained ones only
    figure, why = importance_figure(StudyOutline.read(study), 1, "flops")
    axis = figure.axes[0]
    assert "training parameters cannot change a model's cost" in why
    assert [label.get_text() for label in axis.get_yticklabels() if label.get_text()] == ["family", "mlp.depth"]
    # One title: Optuna's own ("Hyperparameter Importances", on the left) is replaced, not overprinted.
    assert axis.get_title(loc="left") == "Hyperparameter importance for flops"
    assert axis.get_title() == "" and axis.get_title(loc="right") == ""
    assert not figure.texts and figure.get_suptitle() == ""


def test_an_objective_nothing_can_explain_says_why() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(create_trial(values=[0.5, 1.0], params={"train.lr": 0.01},
                                 distributions={"train.lr": FloatDistribution(1e-4, 1e-2, log=True)}))
    with pytest.raises(ValueError, match="no parameter that builds the model is shared by every trial to "
                                         "explain flops with"):
        explained(StudyOutline.read(study), "flops")
