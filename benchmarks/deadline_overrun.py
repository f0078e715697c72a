"""How far past its time budget `automl run --timeout T` ends, on a study of 20 trials and on the same
study grown to thousands, side by side.

A real `automl run` makes a study of 20 trials (``--base-trials``; mlp and cnn on digits); its
trials are then copied in SQL to reach ``--trials``, without dashboard notes, as `automl worker`s on
several machines would leave a study. Each copy is resumed with ``--timeout T`` and no trial count
(so it samples until the deadline) in a fresh process; the time from the process's start to its
exit, less T, is its overrun. Every cost that grows with the study (the dashboard's notes and
figures, the front, the queue) falls inside the budget or stops at the deadline, and the alarm 5 s
past it ends what does not (automl.workers.hard_deadline); what comes after that is the
interpreter's own exit, measured beside each run (``exit_*_s``). Prints each overrun, its exit
share, and their difference.

    python benchmarks/deadline_overrun.py                   # about two minutes on 2 cores
    python benchmarks/deadline_overrun.py --trials 5000 --timeout 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """
name = "overrun"
storage = "sqlite:///base.db"
[search]
families = ["mlp", "cnn"]
[train]
max_epochs = 3
"""
BASE_TRIALS = 20
# The tables holding a trial's rows besides the trial itself (Optuna's RDB schema).
TRIAL_TABLES = {"trial_user_attributes": "trial_id, key, value_json",
                "trial_system_attributes": "trial_id, key, value_json",
                "trial_params": "trial_id, param_name, param_value, distribution_json",
                "trial_values": "trial_id, objective, value, value_type",
                "trial_intermediate_values": "trial_id, step, intermediate_value, intermediate_value_type"}


def grow(path: Path, trials: int) -> None:
    """Repeat the finished trials of the study in ``path`` until it holds about ``trials``."""
    db = sqlite3.connect(path)
    rows = db.execute("select trial_id, number, study_id, state, datetime_start, datetime_complete from trials "
                      "where state in ('COMPLETE', 'PRUNED')").fetchall()
    last = db.execute("select max(trial_id), max(number) from trials").fetchone()
    offset = last[0] + 1
    copies = max(0, (trials - last[1] - 1) // len(rows))
    for copy in range(1, copies + 1):
        shift = copy * offset
        db.executemany("insert into trials values (?, ?, ?, ?, ?, ?)",
                       [(tid + shift, last[1] + 1 + (copy - 1) * len(rows) + index, *rest)
                        for index, (tid, _, *rest) in enumerate(rows)])
        ids = ", ".join(str(tid) for tid, *_ in rows)
        for table, columns in TRIAL_TABLES.items():
            rest = columns.split(", ", 1)[1]
            db.execute(f"insert into {table}({columns}) select trial_id + {shift}, {rest} from {table} "
                       f"where trial_id in ({ids})")
    db.commit()
    db.close()


def automl(*args: str, cwd: Path) -> tuple[float, str]:
    """Run ``automl ARGS`` in a fresh interpreter; its seconds from start to exit, and its stderr."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "automl", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "AUTOML_LOAD_PLUGINS": ""}, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"automl {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return time.monotonic() - started, result.stderr


# A process that imports what `automl run` imports, then exits: its time from the last exit
# function to its end is the interpreter's own teardown of thousands of modules (Lightning brings
# most), which no run can shorten: a second or less on a quiet machine, several on a busy one.
TEARDOWN = """
import atexit, sys, time
import lightning, optuna, sklearn, torch
import automl.cli, automl.runner, automl.search.objective
atexit.register(lambda: print(time.time()))
"""


def teardown_s() -> float:
    """Seconds the interpreter takes to exit after its exit functions, with automl's libraries loaded."""
    result = subprocess.run([sys.executable, "-c", TEARDOWN], capture_output=True, text=True, check=True)
    return time.time() - float(result.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3000, help="trials of the large study")
    parser.add_argument("--timeout", type=float, default=30.0, help="the time budget of each run, seconds")
    parser.add_argument("--base-trials", type=int, default=BASE_TRIALS,
                        help=f"trials of the small study, run for real (default {BASE_TRIALS})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "study.toml").write_text(STUDY)
        automl("run", "study.toml", "--n-trials", str(args.base_trials), "--no-progress", cwd=work)
        sizes = {"small": args.base_trials, "large": args.trials}
        for name, trials in sizes.items():
            shutil.copy(work / "base.db", work / f"{name}.db")
            grow(work / f"{name}.db", trials)
        overruns: dict[str, float] = {}
        exits: dict[str, float] = {}
        for name in sizes:
            held = sqlite3.connect(work / f"{name}.db").execute("select count(*) from trials").fetchone()[0]
            seconds, stderr = automl("run", "study.toml", "--storage", f"sqlite:///{name}.db", "--timeout",
                                     str(args.timeout), "--no-progress", cwd=work)
            overruns[name] = seconds - args.timeout
            exits[name] = teardown_s()  # measured right after, under the same load
            ran = sqlite3.connect(work / f"{name}.db").execute(
                "select count(*) from trials where state in ('COMPLETE', 'PRUNED')").fetchone()[0]
            tracebacks = stderr.count("Traceback")
            print(f"{name:>5}: {held:>6} trials before, {args.timeout:g} s budget: ended after {seconds:.1f} s, "
                  f"overrun {overruns[name]:+.1f} s, of which the interpreter's exit about {exits[name]:.1f} s "
                  f"({ran} finished trials after; {tracebacks} tracebacks)", flush=True)
    for name in sizes:
        print(f"overrun_{name}_s={overruns[name]:.1f}")
        print(f"exit_{name}_s={exits[name]:.1f}")
    print(f"large - small: {overruns['large'] - overruns['small']:+.1f} s")


if __name__ == "__main__":
    main()
