"""`automl show` and `automl report` on a study of thousands of trials read every trial in outline
and in full only what they print or draw: never the whole study (which took tens of seconds and
hundreds of MB at 50,000 trials; benchmarks/study_scale.py measures it).

The trials are written into Optuna's tables in bulk, as a finished study leaves them (adding
thousands through Optuna would take longer than the test), then the commands run in-process with
Optuna's reading of every trial refused and the trials read in full counted.
"""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, distribution_to_json
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import automl.results.importance as importance
import automl.results.report as report
from automl.cli import main
from automl.storage.optuna_tables import PARAMS, TRIALS, USER_ATTRS, VALUES, OptunaTables
from automl.storage.schema import FAMILY_PARAM, TrialAttr

COUNT = 2000
FAMILIES = ["mlp", "cnn"]
DISTRIBUTIONS = {FAMILY_PARAM: CategoricalDistribution(FAMILIES), "train.lr": FloatDistribution(1e-4, 1e-1, log=True)}


def _write_trials(url: str, name: str, count: int) -> None:
    """``count`` finished trials: a third completed (accuracy and FLOPs), the rest pruned or failed."""
    rng = random.Random(0)
    engine = RDBStorage(url).engine
    with engine.begin() as connection:
        study_id = RDBStorage(url).get_study_id_from_name(name)
        rows: dict[str, list[dict[str, object]]] = {"trials": [], "params": [], "values": [], "attrs": []}
        start = datetime.datetime(2025, 1, 1)
        for number in range(count):
            trial_id, family = number + 1, FAMILIES[number % 2]
            state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED, TrialState.FAIL][number % 4]
            accuracy, flops = rng.uniform(0.3, 0.9), 10 ** rng.uniform(3, 7)
            curve = [round(accuracy - 0.1, 4), round(accuracy, 4)][:2 if state == TrialState.COMPLETE else 1]
            began = start + datetime.timedelta(seconds=2 * number)
            rows["trials"].append({"trial_id": trial_id, "number": number, "study_id": study_id, "state": state.name,
                                   "datetime_start": began, "datetime_complete": began + datetime.timedelta(seconds=1)})
            rows["params"] += [{"trial_id": trial_id, "param_name": key, "param_value": value,
                                "distribution_json": distribution_to_json(DISTRIBUTIONS[key])}
                               for key, value in ((FAMILY_PARAM, FAMILIES.index(family)),
                                                  ("train.lr", 10 ** rng.uniform(-4, -1)))]
            attrs: dict[str, object] = {TrialAttr.FAMILY: family, TrialAttr.FLOPS: flops, TrialAttr.N_PARAMS: 100,
                                        TrialAttr.VAL_CURVE: curve, TrialAttr.EPOCHS: len(curve)}
            if state == TrialState.COMPLETE:
                attrs.update({TrialAttr.VAL_ACCURACY: accuracy, TrialAttr.TEST_ACCURACY: accuracy - 0.01})
                rows["values"] += [{"trial_id": trial_id, "objective": index, "value": value, "value_type": "FINITE"}
                                   for index, value in enumerate((accuracy, flops))]
            elif state == TrialState.FAIL:
                attrs[TrialAttr.FAIL_REASON] = "RuntimeError: boom"
            rows["attrs"] += [{"trial_id": trial_id, "key": str(key), "value_json": json.dumps(value)}
                              for key, value in attrs.items()]
        for table, key in ((TRIALS, "trials"), (PARAMS, "params"), (VALUES, "values"), (USER_ATTRS, "attrs")):
            connection.execute(table.insert(), rows[key])


@pytest.fixture
def large(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'large.db'}"
    study = optuna.create_study(study_name="large", storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    _write_trials(url, "large", COUNT)
    return url


@pytest.fixture
def read_in_full(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The numbers of the trials read in full, as the commands run; Optuna's reading of every
    trial of a study refused."""
    numbers: list[int] = []
    original = OptunaTables.load

    def load(tables: OptunaTables, *args: object, **kwargs: object) -> object:
        stored = original(tables, *args, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("outline") is None:
            numbers.extend(row.trial.number for row in stored)
        return stored

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a view read every trial of the study through Optuna")

    monkeypatch.setattr(OptunaTables, "load", load)
    monkeypatch.setattr(RDBStorage, "get_all_trials", refused)
    return numbers


def test_show_reads_only_the_fronts_trials_in_full(large: str, read_in_full: list[int],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "large", "--storage", large]) == 0
    shown = capsys.readouterr().out
    front = optuna.load_study(study_name="large", storage=large).best_trials
    assert f"Pareto front of 'large' ({len(front)} of {COUNT:,} trials)" in shown
    assert f"{COUNT // 4} trials failed" in shown and f"{COUNT // 2:,} trials stopped early by the pruner" in shown
    assert sorted(read_in_full) == sorted(trial.number for trial in front)


def test_report_reads_in_full_only_the_trials_it_prints_or_draws(
        large: str, read_in_full: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "CURVES_DRAWN", 40)
    monkeypatch.setattr(importance, "IMPORTANCE_TRIALS", 30)
    assert main(["report", "large", "--storage", large, "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    front = {trial.number for trial in optuna.load_study(study_name="large", storage=large).best_trials}
    assert f"40 of the {COUNT:,} trials that validated one" in page
    assert "(30 of them, evenly spread over the study)" in page
    # The front's rows and curves, 40 curves in all, 30 trials for each objective's importance.
    assert front <= set(read_in_full) and len(read_in_full) <= len(front) + 40 + 2 * 30
