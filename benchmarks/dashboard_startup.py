"""The dashboard's start-up on studies of N and 4N trials without notes, as `automl dashboard` finds a
study run by `automl worker`s alone: automl's update against optuna-dashboard's own save_note per
trial (what automl did before), side by side on copies of one SQLite file.

A cost that grows with the trials takes about 4 times as long on 4N trials; one that grows with
their square, 16 times. Prints seconds and both ratios.

    python benchmarks/dashboard_startup.py            # about three minutes on 2 cores, save_note most of them
    python benchmarks/dashboard_startup.py --trials 1000
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from automl.results.dashboard import DashboardUpdater, study_note, trial_note
from automl.storage._optuna import study_storage
from automl.storage.schema import CONFIG_ATTR, TrialAttr

STUDY = "bench"
# Stored once through Optuna, then copied in SQL to reach the sizes measured.
BASE_TRIALS = 100


def _base(path: Path) -> None:
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{path}", directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    study.set_user_attr(CONFIG_ATTR, {"train": {"max_epochs": 5}})
    study.add_trials([create_trial(
        state=TrialState.COMPLETE, values=[0.5 + i / 400, 1e4 * (1 + i % 17)],
        user_attrs={TrialAttr.FAMILY: ["mlp", "cnn"][i % 2], TrialAttr.EPOCHS: 5, TrialAttr.FLOPS: 1e4 * (1 + i % 17),
                    TrialAttr.N_PARAMS: 5000, TrialAttr.VAL_ACCURACY: 0.5 + i / 400, TrialAttr.TEST_ACCURACY: 0.5,
                    TrialAttr.VAL_CURVE: [0.3, 0.4, 0.45, 0.5, 0.5 + i / 400]}) for i in range(BASE_TRIALS)])


def _copied(base: Path, path: Path, trials: int) -> optuna.Study:
    """A copy of the base study with its trials repeated up to ``trials`` (new ids and numbers)."""
    shutil.copy(base, path)
    db = sqlite3.connect(path)
    rows = db.execute("select trial_id, number, study_id, state, datetime_start, datetime_complete from trials"
                      ).fetchall()
    children = {"trial_user_attributes": "trial_id, key, value_json",
                "trial_values": "trial_id, objective, value, value_type"}
    offset = 10 * trials
    for copy in range(1, trials // BASE_TRIALS):
        db.executemany("insert into trials values (?, ?, ?, ?, ?, ?)",
                       [(tid + copy * offset, number + copy * BASE_TRIALS, *rest) for tid, number, *rest in rows])
        for table, columns in children.items():
            rest = columns.split(", ", 1)[1]
            db.execute(f"insert into {table}({columns}) select trial_id + {copy * offset}, {rest} from {table} "
                       f"where trial_id <= {BASE_TRIALS}")
    db.commit()
    db.close()
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{path}")


def automl_update(study: optuna.Study) -> None:
    DashboardUpdater().update(study)


def save_note_per_trial(study: optuna.Study) -> None:
    """The notes as optuna_dashboard.save_note writes them, one by one (automl's update before)."""
    from optuna_dashboard import save_note

    trials = study.get_trials(deepcopy=False)
    objectives, directions = list(study.metric_names), [d.name.lower() for d in study.directions]
    save_note(study, study_note(STUDY, trials, objectives, directions, ""))
    storage = study_storage(study)
    study_id = storage.get_study_id_from_name(STUDY)
    for trial in trials:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        save_note(optuna.Trial(study, trial_id), trial_note(trial, objectives, directions, 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="N (a multiple of 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base.db"
        _base(base)
        DashboardUpdater().update(_copied(base, Path(folder) / "warm.db", BASE_TRIALS))  # imports, once
        seconds: dict[tuple[str, int], float] = {}
        for trials in (args.trials, 4 * args.trials):
            for name, update in (("automl", automl_update), ("save_note", save_note_per_trial)):
                study = _copied(base, Path(folder) / f"{name}-{trials}.db", trials)
                started = time.perf_counter()
                update(study)
                seconds[name, trials] = time.perf_counter() - started
                print(f"{name:>9} {trials:>6} trials: {seconds[name, trials]:7.2f} s", flush=True)
    for name in ("automl", "save_note"):
        print(f"{name:>9}: {4 * args.trials} trials / {args.trials} trials = "
              f"{seconds[name, 4 * args.trials] / seconds[name, args.trials]:.1f}x (linear 4x, quadratic 16x)")
    for trials in (args.trials, 4 * args.trials):
        print(f"save_note / automl at {trials} trials: {seconds['save_note', trials] / seconds['automl', trials]:.1f}x")


if __name__ == "__main__":
    main()
