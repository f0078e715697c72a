"""A trial the time budget stopped counts with the epochs it validated, and every view says so."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from automl.results.front import front_rows, print_front
from automl.results.report import front_table
from automl.storage.outline import StudyOutline
from automl.storage.schema import DEADLINE, FAMILY_PARAM, TrialAttr

FAMILY = {FAMILY_PARAM: CategoricalDistribution(["mlp"])}


def _trial(state: TrialState, epochs: int | None, stopped: str | None = None, values: list[float] | None = None,
           **attrs: object) -> optuna.trial.FrozenTrial:
    user_attrs = {TrialAttr.FAMILY: "mlp", **attrs}
    if epochs is not None:
        user_attrs.update({TrialAttr.EPOCHS: epochs, TrialAttr.VAL_ACCURACY: values[0] if values else None,
                           TrialAttr.FLOPS: values[1] if values else None})
    if stopped:
        user_attrs[TrialAttr.STOPPED] = stopped
    return create_trial(state=state, values=values, params={FAMILY_PARAM: "mlp"}, distributions=FAMILY,
                        user_attrs=user_attrs)


def _study(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(study_name="stops", storage=f"sqlite:///{tmp_path / 'stops.db'}",
                                directions=["maximize", "minimize"])
    study.add_trials([
        _trial(TrialState.COMPLETE, 10, values=[0.95, 2000.0]),
        _trial(TrialState.COMPLETE, 3, "time budget", values=[0.97, 9000.0]),
        _trial(TrialState.COMPLETE, 2, "deadline", values=[0.98, 50000.0]),
        _trial(TrialState.FAIL, None, **{TrialAttr.FAIL_REASON: DEADLINE}),
        _trial(TrialState.FAIL, None, **{TrialAttr.FAIL_REASON: "RuntimeError: boom"}),
    ])
    return study


def test_show_marks_stopped_trials_and_tells_deadline_catches_from_failures(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    print_front(_study(tmp_path), console)
    text = console.export_text()
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in text.splitlines()
            if line.startswith("│") and line.split("│")[1].strip().isdigit()}
    assert rows == {"0": "10", "1": "3*", "2": "2*"}
    assert "* stopped before max_epochs (1 by the deadline, 1 by the time budget; 'stopped' user attr)" in text
    assert "1 trial failed" in text
    assert "1 trial was under way when the time budget ran out" in text
    assert "it is queued again" in " ".join(text.split())


def test_the_report_names_why_a_front_trial_stopped(tmp_path: Path) -> None:
    table = front_table(front_rows(StudyOutline.read(_study(tmp_path))))
    assert "<td>3, stopped by the time budget</td>" in table and "<td>2, stopped by the deadline</td>" in table
    assert "<td>10</td>" in table
