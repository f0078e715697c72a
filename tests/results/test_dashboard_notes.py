"""The dashboard's notes and figures, saved to a real SQLite study as `automl run` saves them.

The browser test (test_dashboard.py) checks that they render; these check what they say.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import optuna_dashboard
import pytest
from conftest import trial_id_of
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note

from automl.results.dashboard import FIGURE_IDS, DashboardUpdater, trial_note
from automl.storage._optuna import study_storage
from automl.storage.artifacts import CHECKPOINT, CURVE_JSON, CURVE_PNG, MIME_TYPES, SUMMARY, WEIGHTS, upload
from automl.storage.schema import CONFIG_ATTR, TrialAttr


def _study_id(study: optuna.Study) -> int:
    return study_storage(study).get_study_id_from_name(study.study_name)


def _trial(state: TrialState, family: str, curve: list[float], flops: float, values: list[float] | None = None,
           **attrs: object) -> optuna.trial.FrozenTrial:
    return create_trial(state=state, values=values, user_attrs={
        TrialAttr.FAMILY: family, TrialAttr.VAL_CURVE: curve, TrialAttr.FLOPS: flops, TrialAttr.N_PARAMS: flops / 2,
        TrialAttr.EPOCHS: len(curve), **attrs})


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    """Four trials of two families: two completed (one on the front), one pruned, one failed."""
    study = optuna.create_study(study_name="notes", storage=f"sqlite:///{tmp_path / 'notes.db'}",
                                directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    study.set_user_attr(CONFIG_ATTR, {"train": {"max_epochs": 3}})
    study.add_trial(_trial(TrialState.COMPLETE, "mlp", [0.5, 0.8, 0.9], 3392.0, [0.9, 3392.0],
                           **{TrialAttr.VAL_ACCURACY: 0.9, TrialAttr.TEST_ACCURACY: 0.88, TrialAttr.LATENCY_MS: 0.19}))
    study.add_trial(_trial(TrialState.COMPLETE, "cnn", [0.4, 0.6, 0.7], 600_000.0, [0.7, 600_000.0],
                           **{TrialAttr.VAL_ACCURACY: 0.7}))
    study.add_trial(_trial(TrialState.PRUNED, "cnn", [0.2], 91_000.0, **{TrialAttr.PRUNED_AT_EPOCH: 1, TrialAttr.RUNG: 0}))
    study.add_trial(_trial(TrialState.FAIL, "mlp", [], 100.0, **{TrialAttr.FAIL_REASON: "RuntimeError: boom"}))
    return study


def _note(study: optuna.Study, number: int) -> str:
    return get_note(optuna.Trial(study, trial_id_of(study, number)))


def _figures(study: optuna.Study) -> dict[str, dict]:
    """The plotly figures the dashboard's API serves for the study, by id (its WSGI app, in process)."""
    environ: dict = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = f"/api/studies/{_study_id(study)}"
    app = optuna_dashboard.wsgi(study_storage(study))
    served = json.loads(b"".join(app(environ, lambda status, headers, exc_info=None: None)))
    return {figure["id"]: json.loads(figure["graph_object"]) for figure in served["plotly_graph_objects"]}


def _note_versions(study: optuna.Study) -> dict[str, int]:
    """optuna-dashboard's version of each note saved to the study (one more at every save)."""
    return {key: value for key, value in study_storage(study).get_study_system_attrs(_study_id(study)).items()
            if key.endswith("note_ver")}


def test_notes_name_the_objectives_values_family_cost_and_where_each_front_trial_stopped(
        study: optuna.Study) -> None:
    DashboardUpdater().update(study)
    note = get_note(study)
    assert "| val_accuracy | maximize | fraction of the validation split" in note
    assert "| flops | minimize | forward FLOPs per sample" in note
    assert "2 complete, 1 pruned, 1 fail" in note

    done = _note(study, 0)
    assert done.startswith("### Trial 0: mlp")
    assert "| val_accuracy (maximize) | 0.9 |" in done and "| flops (minimize) | 3.39k |" in done
    assert "1.7k parameters, 3.39k FLOPs per sample, 0.19 ms latency" in done
    assert "completed, trained 3 of 3 epochs" in done and "0.8800" in done
    # Only the front's trials get a note (the dashboard reads every note at each call of the study's
    # page); the text a note would have says where any trial stopped.
    assert [_note(study, number) for number in (1, 2, 3)] == ["", "", ""]
    trials = study.get_trials()
    pruned = trial_note(trials[2], ["val_accuracy", "flops"], ["maximize", "minimize"], max_epochs=3)
    assert "pruned after epoch 1 of 3 (rung 0)" in pruned
    assert "| val_accuracy (maximize) | 0.2 (at epoch 1, not reported) |" in pruned and "91k" in pruned
    assert "failed after 0 of 3 epochs: RuntimeError: boom" in trial_note(
        trials[3], ["val_accuracy", "flops"], ["maximize", "minimize"], max_epochs=3)


def test_the_latency_objective_is_described_as_it_is_measured(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="latency", storage=f"sqlite:///{tmp_path / 'latency.db'}",
                                directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "latency_ms"])
    DashboardUpdater().update(study)
    # efficiency.latency reports the minimum of its timings (a median would move with the machine's load).
    assert "| latency_ms | minimize | milliseconds of one forward pass at latency_batch_size, the minimum " in get_note(study)

def test_figures_show_every_curve_the_front_on_log_flops_and_the_hypervolume(study: optuna.Study) -> None:
    DashboardUpdater().update(study)
    figures = _figures(study)
    assert sorted(figures) == sorted(FIGURE_IDS)

    curves = figures["learning-curves"]["data"]
    assert [trace["y"] for trace in curves] == [[0.5, 0.8, 0.9], [0.4, 0.6, 0.7], [0.2]]  # pruned too
    by_family = {trace["name"]: trace["line"]["color"] for trace in curves}
    assert len(set(by_family.values())) == 2 == len(by_family)
    assert [trace["line"]["dash"] for trace in curves] == ["solid", "solid", "dash"]

    front = figures["pareto-front"]
    assert front["layout"]["xaxis"]["type"] == "log"
    ringed = front["data"][-1]
    assert ringed["x"] == [3392.0]  # trial 0 dominates trial 1; the pruned one is no point

    hypervolume = figures["hypervolume"]["data"][0]
    assert len(hypervolume["y"]) == 2 and hypervolume["y"][1] >= hypervolume["y"][0] > 0


def test_updates_follow_the_study_and_rewrite_only_changed_notes(study: optuna.Study) -> None:
    updater = DashboardUpdater()
    updater.update(study)
    versions = _note_versions(study)
    study.add_trial(_trial(TrialState.COMPLETE, "mlp", [0.6, 0.95], 1000.0, [0.95, 1000.0],
                           **{TrialAttr.VAL_ACCURACY: 0.95}))
    updater.update(study)
    after = _note_versions(study)
    # The study's note (counts changed) and the new front trial's are written; the others are left alone.
    changed = {key for key in after if after[key] != versions.get(key)}
    assert changed == {"dashboard:note_ver", f"dashboard:{trial_id_of(study, 4)}:note_ver"}
    curves = _figures(study)["learning-curves"]["data"]
    assert [trace["y"] for trace in curves][0] == [0.5, 0.8, 0.9, None, 0.6, 0.95], "one trace per family and state"
    assert curves[0]["text"][-1] == "trial 4 (mlp, complete)"
    assert updater.updates == 2 and updater.spent_s > 0
    # Another process (a resumed run, `automl dashboard`) finds the notes saved and writes none.
    DashboardUpdater().update(study)
    assert _note_versions(study) == after


def test_as_a_trial_callback_it_updates_an_interval_after_the_start_then_once_an_interval(
        study: optuna.Study) -> None:
    updater = DashboardUpdater(interval_s=0.5)
    updater(study, study.trials[0])  # the study's first trials are not delayed by an update
    assert updater.updates == 0
    time.sleep(0.6)
    for trial in study.trials:
        updater(study, trial)
    assert updater.updates == 1


def test_it_waits_long_enough_that_updates_take_at_most_their_share_of_the_time(study: optuna.Study) -> None:
    updater = DashboardUpdater(interval_s=0, max_share=0.5)
    updater(study)
    first = updater.spent_s
    updater(study)  # the first update's time (plotly's one-time loading included) does not count
    assert updater.updates == 2
    taken = updater.spent_s - first
    updater(study)  # at once: the last one's time has not passed twice over
    assert updater.updates == 2
    time.sleep(2 * taken + 0.05)
    updater(study)
    assert updater.updates == 3


def test_in_background_it_updates_while_the_block_runs_and_at_its_end(study: optuna.Study) -> None:
    updater = DashboardUpdater(interval_s=0.2, max_share=1.0)
    with updater.in_background(study):
        deadline = time.monotonic() + 30
        while updater.updates < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        during = updater.updates
    assert during >= 2 and updater.updates == during + 1


def test_artifacts_are_stored_with_their_mime_type(study: optuna.Study, tmp_path: Path) -> None:
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    trial = study.ask()  # artifacts are uploaded while the trial runs
    for name in (SUMMARY, CURVE_PNG, CURVE_JSON, WEIGHTS, CHECKPOINT):
        (tmp_path / name).write_bytes(b"x")
        upload(store, tmp_path / name, trial)
    stored = {meta.filename: meta.mimetype for meta in optuna.artifacts.get_all_artifact_meta(trial)}
    assert stored == MIME_TYPES
    assert stored[WEIGHTS] == stored[CHECKPOINT] == "application/octet-stream"
    assert stored[CURVE_PNG] == "image/png" and stored[CURVE_JSON] == "application/json"
