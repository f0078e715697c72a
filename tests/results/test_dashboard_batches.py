"""The dashboard's notes of a large study are written in batches from one read of the study's
attributes and its hypervolume history computed again only when the front changes (its start-up
grows with the trials, not with their square); they keep their progress when cut short, and
`automl dashboard` says what it is doing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import trial_id_of
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note

import automl.results.dashboard as dashboard
from automl.cli import main
from automl.results.dashboard import NOTES_ATTR, DashboardUpdater
from automl.results.dashboard_storage import DashboardStorage
from automl.results.hypervolume import front_volumes
from automl.storage._optuna import compute_hypervolume, study_storage
from automl.storage.schema import CONFIG_ATTR, TrialAttr

TRIALS = 25
BATCH = 10


def _study_id(study: optuna.Study) -> int:
    return study_storage(study).get_study_id_from_name(study.study_name)


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> optuna.Study:
    monkeypatch.setattr(dashboard, "NOTES_PER_BATCH", BATCH)
    monkeypatch.setattr(dashboard, "NOTES_PER_SHARD", 8)
    study = optuna.create_study(study_name="many", storage=f"sqlite:///{tmp_path / 'many.db'}",
                                directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    study.set_user_attr(CONFIG_ATTR, {"train": {"max_epochs": 2}})
    study.add_trials([create_trial(state=TrialState.COMPLETE, values=[0.5 + i / 100, 1000.0 + i], user_attrs={
        TrialAttr.FAMILY: "mlp", TrialAttr.VAL_CURVE: [0.4, 0.5 + i / 100], TrialAttr.EPOCHS: 2,
        TrialAttr.FLOPS: 1000.0 + i, TrialAttr.N_PARAMS: 500}) for i in range(TRIALS)])
    return study


class Counted:
    """Counts a storage method's calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        original = getattr(RDBStorage, name)

        def counted(storage: RDBStorage, *args: object, **kwargs: object) -> object:
            self.calls += 1
            return original(storage, *args, **kwargs)

        monkeypatch.setattr(RDBStorage, name, counted)


def test_two_reads_of_the_study_attrs_and_a_write_per_batch(study: optuna.Study,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    reads = Counted(monkeypatch, "get_study_system_attrs")
    single_writes = Counted(monkeypatch, "set_study_system_attr")
    progress: list[tuple[int, int]] = []
    updater = DashboardUpdater(progress=lambda done, total: progress.append((done, total)))
    updater.update(study)
    notes = TRIALS + 1  # the study's note and one per trial
    # One read for the notes and their digests, one for the metric names (Optuna's Study.metric_names);
    # optuna_dashboard.save_note reads them all twice per note.
    assert reads.calls == 2 and single_writes.calls == 0
    assert progress == [(10, notes), (20, notes), (notes, notes)] and updater.notes_written == notes
    assert get_note(optuna.Trial(study, trial_id_of(study, 17))).startswith("### Trial 17: mlp")
    assert "26 complete" not in get_note(study) and "25 complete" in get_note(study)
    # The notes' digests, in shards of 8 trials: an update with nothing new writes no note.
    attrs = study_storage(study).get_study_system_attrs(_study_id(study))
    assert sorted(key for key in attrs if key.startswith(NOTES_ATTR)) == [
        f"{NOTES_ATTR}:{shard}" for shard in ("0", "1", "2", "3", "study")]
    again = DashboardUpdater()
    again.update(study)
    assert again.notes_written == 0


def test_a_start_up_cut_short_keeps_the_notes_it_wrote(study: optuna.Study) -> None:
    def interrupt(done: int, total: int) -> None:
        if done == 20:
            raise KeyboardInterrupt  # Ctrl-C during `automl dashboard`'s start-up

    with pytest.raises(KeyboardInterrupt):
        DashboardUpdater(progress=interrupt).update(study)
    resumed = DashboardUpdater()
    resumed.update(study)
    assert resumed.notes_written == TRIALS + 1 - 20


def test_digests_of_an_earlier_release_are_read(study: optuna.Study) -> None:
    DashboardUpdater().update(study)
    storage, study_id = study_storage(study), _study_id(study)
    attrs = storage.get_study_system_attrs(study_id)
    legacy = {key: digest for name, shard in attrs.items() if name.startswith(f"{NOTES_ATTR}:")
              for key, digest in shard.items()}
    for name in [name for name in attrs if name.startswith(f"{NOTES_ATTR}:")]:
        storage.set_study_system_attr(study_id, name, {})
    storage.set_study_system_attr(study_id, NOTES_ATTR, legacy)  # all digests in one attr, as before
    updater = DashboardUpdater()
    updater.update(study)
    assert updater.notes_written == 0


def test_automl_dashboard_says_what_it_brings_up_to_date(study: optuna.Study, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    served: list[object] = []
    monkeypatch.setattr("optuna_dashboard.run_server", lambda storage, **options: served.append(storage))
    assert main(["dashboard", "--storage", f"sqlite:///{tmp_path / 'many.db'}",
                 "--artifacts", str(tmp_path / "artifacts")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "study 'many' (25 trials): bringing its dashboard notes and figures up to date" in err
    assert "study 'many': 10 of 26 notes written" in err and "26 notes written, figures saved, in" in err
    assert served and err.index("notes written, figures saved") < err.index("serving")


def test_automl_dashboard_serves_a_sample_of_a_large_study_and_says_so(study: optuna.Study, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    served: list[DashboardStorage] = []
    monkeypatch.setattr("optuna_dashboard.run_server", lambda storage, **options: served.append(storage))
    monkeypatch.setattr("automl.cli.DASHBOARD_TRIALS", 30)
    study.add_trials([create_trial(values=[0.1, 9999.0]) for _ in range(20)])  # dominated: off the front
    url = f"sqlite:///{tmp_path / 'many.db'}"
    assert main(["dashboard", "--storage", url]) == 0
    assert "its page shows 30 of its 45 trials" in " ".join(capsys.readouterr().err.split())
    served_numbers = {trial.number for trial in served[0].get_all_trials(_study_id(study))}
    assert len(served_numbers) == 30 and set(range(TRIALS)) <= served_numbers  # the front's 25 and 5 others
    assert main(["dashboard", "--storage", url, "--all-trials"]) == 0
    assert "its page shows" not in capsys.readouterr().err
    assert len(served[1].get_all_trials(_study_id(study))) == 45


def test_the_hypervolume_history_is_computed_again_only_when_the_front_changes() -> None:
    losses = np.random.default_rng(0).uniform(0, 1, size=(300, 3))
    reference = np.full(3, 1.1)
    expected = [float(compute_hypervolume(losses[: i + 1], reference)) for i in range(len(losses))]
    assert front_volumes(losses, reference) == pytest.approx(expected, rel=1e-12)
