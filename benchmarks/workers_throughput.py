"""Trials per hour with 1 and with 2 workers on this machine, measured side by side in one run.

Each setting runs the same small study (MLPs on digits) through `automl run --workers N` on its
own SQLite file. Throughput counts from the first trial's start to the last trial's end, so
process start-up (importing torch) is left out; the wall time with start-up is shown beside it.

    .venv/bin/python benchmarks/workers_throughput.py [--trials 16] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState


def run(workers: int, trials: int, epochs: int, folder: Path) -> tuple[float, float]:
    """(trials per hour, wall seconds) of one `automl run --workers N`."""
    url = f"sqlite:///{folder / f'workers{workers}.db'}"
    study_file = folder / f"workers{workers}.toml"
    study_file.write_text(textwrap.dedent(f"""
        name = "throughput"
        n_trials = {trials}
        storage = "{url}"
        [search]
        families = ["mlp"]
        sampler = "random"
        [train]
        max_epochs = {epochs}
        batch_size = [64]
    """))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "automl", "run", str(study_file), "--workers", str(workers),
                    "--no-progress"], check=True, capture_output=True, cwd=folder)
    wall = time.perf_counter() - started
    done = optuna.load_study(study_name="throughput", storage=url).get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == trials, f"{len(done)} of {trials} trials completed"
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return trials / span * 3600, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per setting (default 16)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (default 2)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{args.trials} MLP trials on digits, {args.epochs} epochs each, {os.cpu_count()} CPUs")
    results = {}
    with tempfile.TemporaryDirectory(prefix="automl-throughput-") as folder:
        for workers in (1, 2):
            results[workers] = run(workers, args.trials, args.epochs, Path(folder))
            per_hour, wall = results[workers]
            print(f"{workers} worker(s): {per_hour:8.0f} trials/hour   ({wall:.1f} s wall with start-up)")
    print(f"2 workers / 1 worker: {results[2][0] / results[1][0]:.2f}x")


if __name__ == "__main__":
    main()
