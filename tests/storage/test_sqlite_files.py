"""What a process leaves of an SQLite study on disk: the .db file alone holds it once the process exits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
from optuna.trial import TrialState

# A run in miniature: creates the study as `automl run` does, then runs a trial on a worker's
# storage (heartbeats, BEGIN IMMEDIATE) with the collector frozen as a worker freezes it, and exits
# without closing anything itself (objects the collector never frees keep their connections open).
RUN = textwrap.dedent("""
    import gc, sys, warnings
    import optuna
    from automl.storage.trial_queue import Requeue, queue_trials
    from automl.storage.urls import Heartbeat, open_storage
    from automl.storage.worker_storage import open_worker_storage

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    queue_trials(optuna.create_study(study_name="wal", storage=open_storage(sys.argv[1])), 1)
    storage = open_worker_storage(sys.argv[1], Heartbeat(60, 120, Requeue(0)))
    study = optuna.load_study(study_name="wal", storage=storage)
    gc.freeze()
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
""")


def test_after_a_process_exits_a_copy_of_the_db_file_alone_holds_the_study(tmp_path: Path) -> None:
    database = tmp_path / "study.db"
    subprocess.run([sys.executable, "-c", RUN, f"sqlite:///{database}"], check=True, timeout=120)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["study.db"], "the WAL was left beside the file"
    backup = tmp_path / "backup"
    backup.mkdir()
    shutil.copy(database, backup)  # what a user does next: copy the file the study file names
    study = optuna.load_study(study_name="wal", storage=f"sqlite:///{backup / 'study.db'}")
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE]
