"""One trial counts the same in every view: show, report (tables and figures), hypervolume, export.

The studies are stored trials as automl writes them (real SQLite, real optuna trials), so no model
trains here; a family whose models count 0 FLOPs and trials over budget are the cases that views
used to count differently.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import write_study
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from automl.cli import main
from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.results.dashboard import trial_note
from automl.results.figures import pareto_figure
from automl.results.front import front_rows, print_front
from automl.results.hypervolume import hypervolume_history
from automl.results.report import points, write_report
from automl.search.plan import plan_study
from automl.storage.outline import StudyOutline
from automl.storage.schema import CONFIG_ATTR, TASK_ATTR, pareto_front

DIRECTIONS = ["maximize", "minimize"]


def trained(family: str, accuracy: float, flops: float, **attrs: Any) -> optuna.trial.FrozenTrial:
    return create_trial(values=[accuracy, flops], params={"family": family},
                        distributions={"family": CategoricalDistribution(["mlp", "zeroflop"])},
                        user_attrs={"family": family, "val_accuracy": accuracy, "test_accuracy": accuracy,
                                    "flops": flops, "n_params": 10, "latency_ms": 0.1, "epochs": 1,
                                    "val_curve": [accuracy], **attrs})


def over_budget(family: str, flops: float) -> optuna.trial.FrozenTrial:
    return create_trial(values=[0.0, flops], params={"family": family},
                        distributions={"family": CategoricalDistribution(["mlp", "zeroflop"])},
                        user_attrs={"family": family, "flops": flops, "n_params": 10, "latency_ms": 0.1, "epochs": 0,
                                    "over_budget": f"flops {flops:.4g} > max_flops 1e+04"},
                        constraints={"max_flops": 1.0})


def study_of(tmp_path: Path, trials: list[optuna.trial.FrozenTrial], name: str = "views") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'views.db'}",
                                directions=DIRECTIONS)
    study.set_metric_names(["val_accuracy", "flops"])
    for trial in trials:
        study.add_trial(trial)
    return study


@pytest.fixture
def mixed(tmp_path: Path) -> optuna.Study:
    """mlp: one trained (on the front), one dominated; zeroflop: one trained at 0 FLOPs (on the
    front); one over budget; one failed."""
    return study_of(tmp_path, [
        trained("mlp", 0.90, 4700.0), trained("mlp", 0.50, 9000.0), trained("zeroflop", 0.20, 0.0),
        over_budget("mlp", 5e6), create_trial(state=TrialState.FAIL, user_attrs={"family": "mlp"}),
    ])


def test_every_view_puts_the_same_trials_on_the_front(mixed: optuna.Study) -> None:
    front = [t.number for t in pareto_front(mixed)]
    assert front == [0, 2]  # the 0-FLOPs trial included, the over-budget one not
    assert sorted(row.number for row in front_rows(StudyOutline.read(mixed))) == front
    drawn = points(StudyOutline.read(mixed))
    assert sorted(p.number for p in drawn) == [0, 1, 2]  # every trained trial, 0 FLOPs too
    assert sorted(p.number for p in drawn if p.on_front) == front
    assert sorted(hypervolume_history(mixed).trial_numbers) == [0, 1, 2]


def test_the_pareto_figure_draws_a_zero_flops_trial_at_a_marked_floor(mixed: optuna.Study) -> None:
    figure = pareto_figure(points(StudyOutline.read(mixed)), ["val_accuracy", "flops"])
    axis = figure.axes[0]
    xs = sorted(x for collection in axis.collections for x, _ in collection.get_offsets())
    assert len(xs) == 3 + 2  # three trials, two of them ringed as the front
    assert xs[0] == pytest.approx(470.0) and xs[0] > 0  # a decade below the least count above 0
    assert [line.get_xdata()[0] for line in axis.lines if line.get_linestyle() == ":"] == [pytest.approx(470.0)]
    assert "0 FLOPs" in axis.get_xlabel()


def _family_rows(page: str) -> dict[str, list[str]]:
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)]
        if cells and cells[0] in ("family", "mlp", "zeroflop") and len(cells) == 10:
            rows[cells[0]] = cells[:6]
    return rows


def test_the_report_counts_as_show_does_and_warns_of_zero_flops(mixed: optuna.Study, tmp_path: Path) -> None:
    page = write_report(mixed, "sqlite://", tmp_path / "report").read_text()
    assert _family_rows(page) == {
        "family": ["family", "trials", "completed", "failed", "on front", "over budget"],
        "mlp": ["mlp", "4", "3", "1", "1", "1"],
        "zeroflop": ["zeroflop", "1", "1", "0", "1", "0"],
    }
    assert "Pareto front of &#x27;views&#x27; (2 of 5 trials)" in page
    assert "family &#x27;zeroflop&#x27; counts 0 FLOPs per sample in 1 trial:" in page
    console = Console(record=True, width=200)
    print_front(mixed, console)
    shown = console.export_text()
    assert "(2 of 5 trials)" in shown and "warning: family 'zeroflop' counts 0 FLOPs per sample" in shown


def test_show_counts_over_budget_as_the_report_does_trained_or_not(tmp_path: Path) -> None:
    # Refused untrained, and trained 2 epochs but slower to its first decision point than the time
    # budget allowed: both are completed and not trained, so both are over budget in every view.
    slow = trained("mlp", 0.95, 4000.0)
    slow = create_trial(values=slow.values, params=slow.params, distributions=slow.distributions,
                        user_attrs={**slow.user_attrs, "epochs": 2}, constraints={"time_to_first_decision": 0.3})
    study = study_of(tmp_path, [trained("mlp", 0.90, 4700.0), over_budget("mlp", 5e6), slow])
    page = write_report(study, "sqlite://", tmp_path / "report").read_text()
    assert _family_rows(page)["mlp"] == ["mlp", "3", "3", "0", "1", "2"]
    console = Console(record=True, width=400)
    print_front(study, console)
    shown = console.export_text()
    assert "(1 of 3 trials)" in shown
    assert ("2 of 3 trials were over budget and left off the front: 1 never trained ('over_budget' user attr: "
            "a [budget] limit, or more of the time budget than a trial may take), 1 trained but over "
            "'time_to_first_decision' (a constraint above 0)") in shown
    emptied = study_of(tmp_path, [over_budget("mlp", 5e6), slow], name="emptied")
    console = Console(record=True, width=400)
    print_front(emptied, console)
    assert "empty: all 2 completed trials were over budget and left off the front: 1 never trained" in console.export_text()


def test_a_front_emptied_by_the_budget_says_why(tmp_path: Path) -> None:
    study = study_of(tmp_path, [over_budget("mlp", 5e6) for _ in range(3)])
    console = Console(record=True, width=200)
    print_front(study, console)
    shown = console.export_text()
    assert "(0 of 3 trials)" in shown and "(3 trials)" not in shown
    assert "empty: all 3 completed trials were over budget and never trained" in shown
    assert "[budget]" in shown  # printed as written, not read as markup
    page = write_report(study, "sqlite://", tmp_path / "report").read_text()
    assert "Nothing to draw: all 3 completed trials were over budget" in page


def test_a_study_with_no_completed_trial_says_so(tmp_path: Path) -> None:
    study = study_of(tmp_path, [create_trial(state=TrialState.FAIL), create_trial(state=TrialState.FAIL)])
    console = Console(record=True, width=200)
    print_front(study, console)
    assert "empty: no trial has completed yet (2 fail)" in console.export_text()


def test_export_refuses_a_trial_that_was_never_trained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "views.db"
    path = write_study(tmp_path, f'name = "fixed"\nstorage = "sqlite:///{database}"\n')
    plan = plan_study(load_study_file(path), path, registry())
    study = study_of(tmp_path, [], name="fixed")
    study.set_user_attr(CONFIG_ATTR, {**plan.config.to_dict(), "families": ["mlp"],
                                      "objectives": ["val_accuracy", "flops"]})
    study.set_user_attr(TASK_ATTR, plan.data.task.to_dict())
    config = {"family": "mlp", "mlp.depth": 1, "mlp.width": 64, "mlp.activation": "relu", "mlp.norm": "none",
              "mlp.dropout": 0.0, "train.optimizer": "adam", "train.lr": 1e-3, "train.weight_decay": 1e-6,
              "train.batch_size": 64}
    trial = over_budget("mlp", 5e6)
    study.add_trial(create_trial(values=trial.values, params=config,
                                 distributions={key: CategoricalDistribution([value]) for key, value in config.items()},
                                 user_attrs=trial.user_attrs, constraints=trial.constraints))
    out = tmp_path / "out"
    assert main(["export", "fixed", "--storage", plan.storage_url, "--trial", "0", "--format", "state_dict",
                 "--out", str(out)]) == 2
    assert "was never trained (flops 5e+06 > max_flops 1e+04)" in " ".join(capsys.readouterr().err.split())
    assert not out.exists()


def test_queued_trials_are_named_as_queued_not_counted_as_trials(mixed: optuna.Study, tmp_path: Path) -> None:
    for _ in range(3):  # as a study that samples until its deadline leaves them
        mixed.enqueue_trial({})
    console = Console(record=True, width=200)
    print_front(mixed, console)
    assert "(2 of 5 trials; 3 queued)" in console.export_text()
    page = write_report(mixed, "sqlite://", tmp_path / "report").read_text()
    assert "(2 of 5 trials; 3 queued)" in page
    assert "<td>None</td>" not in page  # a queued trial has no family yet: no row for it
    assert _family_rows(page)["mlp"][1] == "4"


def test_a_cross_validated_accuracy_is_shown_with_its_spread_over_the_folds(tmp_path: Path) -> None:
    folds = {"folds": 5, "fold_accuracies": [0.9, 1.0, 0.9, 0.9, 0.95], "val_accuracy_std": 0.04}
    study = study_of(tmp_path, [trained("mlp", 0.93, 4700.0, **folds), trained("mlp", 0.5, 900.0)])
    console = Console(record=True, width=200)
    print_front(study, console)
    shown = console.export_text()
    assert "0.9300 ± 0.040" in shown and "0.5000 ±" not in shown  # one validation split: no spread
    assert "val acc: the mean over 5 cross-validation folds ± their standard deviation" in shown
    page = html.unescape(write_report(study, "sqlite://", tmp_path / "report").read_text())
    assert "<td>0.9300 ± 0.0400 over 5 folds</td>" in page and "<td>0.5000</td>" in page
    note = trial_note(study.trials[0], ["val_accuracy", "flops"], DIRECTIONS)
    assert "validation accuracy 0.9300 ± 0.0400 over 5 folds" in note and "0.9000, 1.0000, 0.9000" in note
    assert "Cross-validated" not in trial_note(study.trials[1], ["val_accuracy", "flops"], DIRECTIONS)


def test_one_validation_split_shows_no_spread(mixed: optuna.Study) -> None:
    console = Console(record=True, width=200)
    print_front(mixed, console)
    assert "±" not in console.export_text() and "cross-validation" not in console.export_text()
