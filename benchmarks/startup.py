"""What `automl run` costs before, around and after its trials, side by side with a plain script.

Three measurements, all taken in this one run on this machine (each process with one CPU thread,
OMP_NUM_THREADS=1, so a busy machine moves both sides alike):

start-up: seconds from launching `automl run` on a one-trial digits study to the first training
    step of its first trial, against the same for a plain script that imports torch, loads digits
    with scikit-learn, splits and standardizes them, builds the same MLP and trains it. The study
    starts from a warm-start file naming that MLP and its training, so both train one model. A
    small launcher installs a global optimizer step hook when torch.optim loads and exits the
    process at the first step taken inside a trial (automl.search.objective; the pre-flight check's
    step does not count). The two are launched in turn; medians of ``--repeats`` launches each,
    their CPU seconds (user + system) beside them. ``startup_ratio`` = automl / plain (wall).
error: CPU seconds of `automl run` from launch to its exit with the one-line error (exit 2), for a
    misspelled study-file key, an unknown dataset and a data file that is not there (the study
    file is valid; its data is not). ``error_cpu_s`` is the largest, each the median of its runs.
run overhead: a 20-trial digits study (`automl run` with one worker, the mlp and cnn families, 2
    epochs, no pruner) from launch to exit, less the sum of its trials' wall times (Optuna's start
    to completion of each) and less the plain script's start-up measured above (what any script
    that trains pays): ``run_overhead_s``, automl's own seconds on top of its trials. The time
    before the first trial, between trials and after the last is printed beside it.

    python benchmarks/startup.py --quick      # one launch each, a 4-trial study: about a minute
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
# The one model both sides train: an MLP from the 64 digit pixels, its stored params and training.
WIDTH, LR, BATCH_SIZE = 32, 3e-3, 64
WARM_START = {"family": "mlp", "mlp.depth": 1, "mlp.width": WIDTH, "mlp.activation": "relu", "mlp.norm": "none",
              "mlp.dropout": 0.0, "train.optimizer": "adam", "train.lr": LR, "train.weight_decay": 1e-6,
              "train.batch_size": BATCH_SIZE}

# Runs a script (``plain PATH``) or automl's command line (``automl ARGS...``) as __main__ and writes,
# at the first optimizer step taken inside a trial (any step, for the plain script), the wall clock
# and the process's CPU seconds to OUT, then exits. torch.optim is hooked as it loads, so the
# launcher itself imports nothing that the program would not.
LAUNCHER = textwrap.dedent('''
    import importlib.util, json, os, resource, runpy, sys, time

    OUT, WHAT, ARGS = sys.argv[1], sys.argv[2], sys.argv[3:]
    HOOKED = "torch.optim.optimizer"

    def in_trial():
        frame = sys._getframe()
        while frame is not None:
            if frame.f_code.co_filename.endswith(os.path.join("search", "objective.py")):
                return True
            frame = frame.f_back
        return False

    def first_step(optimizer, args, kwargs):
        if WHAT == "plain" or in_trial():
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with open(OUT, "w") as out:
                json.dump({"at": time.time(), "cpu_s": usage.ru_utime + usage.ru_stime}, out)
            os._exit(0)

    class HookOptimizers:
        def find_spec(self, name, path=None, target=None):
            if name != HOOKED:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                module.register_optimizer_step_pre_hook(first_step)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, HookOptimizers())
    if WHAT == "plain":
        sys.argv = ARGS
        runpy.run_path(ARGS[0], run_name="__main__")
    else:
        sys.argv = ["automl", *ARGS]
        runpy.run_module("automl", run_name="__main__", alter_sys=True)
    sys.exit("the program ended without a training step")
''')

# The script one writes by hand for the same model on the same data.
PLAIN_SCRIPT = textwrap.dedent(f'''
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32)[:, None], digits.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state={SEED})
    mean, std = x_train.mean(), x_train.std()
    x_train, y_train = torch.from_numpy((x_train - mean) / std), torch.from_numpy(y_train)
    torch.manual_seed({SEED})
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, {WIDTH}), nn.ReLU(), nn.Linear({WIDTH}, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr={LR})
    for epoch in range(10):
        order = torch.randperm(len(y_train))
        for start in range(0, len(order), {BATCH_SIZE}):
            index = order[start:start + {BATCH_SIZE}]
            loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
''')


def study_file(folder: Path, name: str, n_trials: int, **sections: dict[str, object]) -> Path:
    """A study file in ``folder`` storing its study there; ``sections``: TOML tables by name."""
    lines = [f'name = "{name}"', f"n_trials = {n_trials}", f"seed = {SEED}",
             f'storage = "sqlite:///{folder / name}.db"']
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def automl_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "automl", *map(str, args)]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def launch_to_first_step(folder: Path, what: str, args: list[str]) -> tuple[float, float]:
    """Wall seconds from launching the program to its first trial's first training step, and the CPU
    seconds its process had used by then."""
    out = folder / "first_step.json"
    out.unlink(missing_ok=True)
    launcher = folder / "launcher.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    started = time.time()
    run = subprocess.run([sys.executable, str(launcher), str(out), what, *args], cwd=folder, env=environment(),
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"{what}: exit {run.returncode} before a training step:\n{run.stderr[-3000:]}")
    step = json.loads(out.read_text(encoding="utf-8"))
    return step["at"] - started, step["cpu_s"]


def startup(folder: Path, repeats: int) -> tuple[float, float, float]:
    """Median start-up of the plain script and of `automl run` (wall s), printed with CPU s; returns
    (plain, automl, ratio)."""
    plain_script = folder / "plain.py"
    plain_script.write_text(PLAIN_SCRIPT, encoding="utf-8")
    warm = folder / "warm.json"
    warm.write_text(json.dumps([WARM_START]), encoding="utf-8")
    study = study_file(folder, "first", 1, data={"dataset": "digits"},
                       search={"families": ["mlp"], "objectives": ["val_accuracy", "flops"],
                               "warm_start": [str(warm)]},
                       train={"max_epochs": 1})
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "automl": []}
    for _ in range(repeats):
        runs["plain"].append(launch_to_first_step(folder, "plain", [str(plain_script)]))
        for stale in folder.glob("first.db*"):
            stale.unlink()
        runs["automl"].append(launch_to_first_step(folder, "automl", ["run", str(study), "--no-progress"]))
    medians = {what: (statistics.median(wall for wall, _ in timed), statistics.median(cpu for _, cpu in timed))
               for what, timed in runs.items()}
    print(f"start-up, launch to the first trial's first training step (median of {repeats}):")
    for what, (wall, cpu) in medians.items():
        label = "plain script (torch, sklearn digits, the MLP)" if what == "plain" else "automl run, 1-trial study"
        print(f"  {label:<48} {wall:>7.2f} s wall {cpu:>7.2f} CPU-s")
    plain, automl = medians["plain"][0], medians["automl"][0]
    return plain, automl, automl / plain


def error_cpu(folder: Path, repeats: int) -> float:
    """The CPU seconds `automl run` spends until it exits with its error, per kind of error; the largest."""
    cases = {
        "misspelled key [train] max_epoch": study_file(folder, "typo", 5, data={"dataset": "digits"},
                                                       train={"max_epoch": 3}),
        "unknown dataset": study_file(folder, "unknown", 5, data={"dataset": "digitz"}),
        "data file not there": study_file(folder, "missing", 5, data={"dataset": "csv", "path": "missing.csv",
                                                                      "label": "label"}),
    }
    print(f"error: CPU seconds to the one-line error, exit 2 (median of {repeats}):")
    worst = 0.0
    for label, path in cases.items():
        spent = []
        for _ in range(repeats):
            before = children_cpu_s()
            run = subprocess.run(automl_command("run", path), cwd=folder, env=environment(), capture_output=True,
                                 text=True, timeout=600)
            spent.append(children_cpu_s() - before)
            if run.returncode != 2:
                raise RuntimeError(f"{label}: exit {run.returncode}, expected 2:\n{run.stderr[-3000:]}")
        message = " ".join(run.stderr.split())
        print(f"  {label:<36} {statistics.median(spent):>6.2f} CPU-s  {message[:90]}")
        worst = max(worst, statistics.median(spent))
    return worst


def run_overhead(folder: Path, n_trials: int, plain_startup_s: float) -> float:
    """`automl run`'s seconds on an ``n_trials`` digits study beyond its trials and a plain start-up."""
    import optuna

    path = study_file(folder, "overhead", n_trials, data={"dataset": "digits"},
                      search={"families": ["mlp", "cnn"], "objectives": ["val_accuracy", "flops"], "pruner": "none"},
                      train={"max_epochs": 2})
    started = time.time()
    run = subprocess.run(automl_command("run", path, "--no-progress"), cwd=folder, env=environment(),
                         capture_output=True, text=True, timeout=1800)
    ended = time.time()
    if run.returncode != 0:
        raise RuntimeError(f"the {n_trials}-trial study failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name="overhead", storage=f"sqlite:///{folder / 'overhead.db'}").trials
    spans = sorted((trial.datetime_start, trial.datetime_complete) for trial in trials)
    if len(spans) != n_trials or any(end is None for _, end in spans):
        raise RuntimeError(f"expected {n_trials} finished trials, found {[t.state.name for t in trials]}")
    in_trials = sum((end - start).total_seconds() for start, end in spans)
    before = spans[0][0].timestamp() - started
    between = sum((later[0] - earlier[1]).total_seconds() for earlier, later in itertools.pairwise(spans))
    after = ended - spans[-1][1].timestamp()
    total = ended - started
    overhead = total - in_trials - plain_startup_s
    print(f"run overhead: `automl run` on a {n_trials}-trial digits study (mlp, cnn; 2 epochs, no pruner):")
    print(f"  launch to exit {total:.2f} s = trials {in_trials:.2f} s + before the first {before:.2f} s "
          f"+ between trials {between:.2f} s + after the last {after:.2f} s")
    print(f"  less the trials and a plain script's start-up ({plain_startup_s:.2f} s): {overhead:.2f} s")
    return overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one launch of each, a 4-trial study: a smoke run")
    parser.add_argument("--repeats", type=int, help="launches per side and per error, median kept (default 5, quick 1)")
    parser.add_argument("--trials", type=int, help="trials of the run-overhead study (default 20, quick 4)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 5)
    n_trials = args.trials or (4 if args.quick else 20)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; one torch thread per process")
    with tempfile.TemporaryDirectory(prefix="automl-startup-") as temporary:
        folder = Path(temporary)
        plain_s, _, ratio = startup(folder, repeats)
        error_s = error_cpu(folder, repeats)
        overhead_s = run_overhead(folder, n_trials, plain_s)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"startup_ratio={ratio:.3f}")
    print(f"error_cpu_s={error_s:.3f}")
    print(f"run_overhead_s={overhead_s:.3f}")


if __name__ == "__main__":
    main()
