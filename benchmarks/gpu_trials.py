"""GPU trials at the cost of a plain loop, and trials packed on one GPU; a small CPU version without one.

1. Whole trials: for cnn, transformer and mlp on CIFAR-shaped generated images (3x32x32, 10
   learnable classes; 50,000 on a GPU, 3,000 on a CPU) and on digits, the same model, data and
   epochs are trained as real automl trials (the worker path of trial_overhead.InterleavedRuns:
   queued in an SQLite study, sampled, built, measured, trained, stored, artifacts, callbacks) and
   by a plain PyTorch loop (trial_overhead.plain_loop; on a GPU in bf16 autocast with cuDNN
   autotuning on, as one would write it). The plain loop's time runs from building the model and
   includes its first epoch's warm-up; "plain cold" is its first run in the process, before any
   automl trial of that case. A worker measures an architecture once and the repeated trials of a
   case share one, so the measurement (FLOPs, latency, peak memory: automl.training.efficiency, as
   the objective calls it) is timed on a fresh build of the model, and what the worker skipped for
   a repeat (FLOPs and latency; peak memory is taken every trial) is added to each trial's time:
   "automl s" is what a trial of a new architecture costs. Ratios
   pair each trial with the plain run right after it (median). The last lines are
   ``max_trial_ratio=`` and ``max_measure_share=`` (that measurement over the trial's time).
2. Packing: `automl run` of a study of small digits trials (mlp and cnn) and of CIFAR-shaped cnn
   trials, for K trials per GPU ([workers] trials_per_gpu = K; on a CPU, --workers K): the run's
   wall time, trials per hour, failed and out-of-memory trials, and for K = 1 the seconds the run
   adds of its own on top of its trials' wall times. The last line is ``packing_speedup_k4=``
   (trials per hour at K = 4 over K = 1, small trials). --quick packs 4 digits trials at K = 1 and 4.

    python benchmarks/gpu_trials.py --quick     # a few minutes on either device
    python benchmarks/gpu_trials.py             # GPU: 3-epoch trials, K = 1, 2, 4, 8
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch
from trial_overhead import SEED, InterleavedRuns, fresh_measure_s, plain_loop, typical_config

from automl.config import DataConfig
from automl.data.prepare import PreparedData, prepare, split_arrays
from automl.plugin.arrays import LabeledArrays
from automl.plugin.registry import registry
from automl.storage.schema import TrialAttr
from automl.training.device import resolve_device

FAMILIES = ("cnn", "transformer", "mlp")


def cifar_shaped(samples: int, seed: int) -> LabeledArrays:
    """``samples`` 3x32x32 images of 10 classes: a smooth pattern per class, random contrast, noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(10, 3, 8, 8)).astype(np.float32)
    templates = coarse.repeat(4, axis=2).repeat(4, axis=3)  # 8x8 blocks upscaled to 32x32
    y = rng.integers(0, 10, samples)
    contrast = rng.uniform(0.5, 1.5, size=(samples, 1, 1, 1)).astype(np.float32)
    x = templates[y] * contrast + rng.normal(scale=1.5, size=(samples, 3, 32, 32)).astype(np.float32)
    return LabeledArrays(x, y, "image")


def plain_run(family, stored: dict, data: PreparedData, epochs: int, device: torch.device, batch_size: int):
    """The plain loop as one writes it for this device: bf16 autocast on a GPU, fp32 on a CPU."""
    def run(seed: int) -> tuple[float, float]:
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            return plain_loop(family, stored, data, epochs, device, seed, batch_size)
    return run


def whole_trials(tasks: dict[str, PreparedData], epochs: int, repeats: int, batch_size: int, quantile: float,
                 accelerator: str, device: torch.device, folder: Path) -> None:
    print(f"{'task':<8} {'family':<12} {'plain cold s':>12} {'plain s':>8} {'automl s':>9} {'ratio':>6} "
          f"{'measure s':>9} {'share':>6} {'train s':>8} {'outside s':>9} "
          + " ".join(f"{part + ' s':>9}" for part in ("flops", "latency", "memory")), flush=True)
    ratios, shares = [], []
    for task_name, data in tasks.items():
        for name in FAMILIES:
            family = registry().families[name].obj
            stored = typical_config(family, data, quantile)
            plain = plain_run(family, stored, data, epochs, device, batch_size)
            cold_s, _ = plain(SEED)
            runs = InterleavedRuns(name, family, data, epochs, accelerator,
                                   Path(tempfile.mkdtemp(prefix=f"{task_name}-{name}-", dir=folder)), plain,
                                   batch_size)
            runs.run(stored, repeats)
            measure_parts = fresh_measure_s(family, stored, data, device, batch_size)
            measure_s = sum(measure_parts.values())
            trial_s = [t for t, _ in runs.new_architecture_runs(measure_parts)]
            ratio = statistics.median(a / p for a, (p, _) in zip(trial_s, runs.plain_runs))
            automl_s = statistics.median(trial_s)
            phase = {key: statistics.median(run[key] for run in runs.phases) for key in runs.phases[0]}
            share = measure_s / automl_s
            ratios.append(ratio)
            shares.append(share)
            print(f"{task_name:<8} {name:<12} {cold_s:>12.3f} {statistics.median(t for t, _ in runs.plain_runs):>8.3f} "
                  f"{automl_s:>9.3f} {ratio:>6.2f} {measure_s:>9.3f} {share:>6.1%} {phase['train']:>8.3f} "
                  f"{phase['outside']:>9.3f} " + " ".join(f"{v:>9.3f}" for v in measure_parts.values()), flush=True)
    print(f"max_trial_ratio={max(ratios):.3f}")
    print(f"max_measure_share={max(shares):.4f}", flush=True)


def study_text(name: str, data: str, families: list[str], n_trials: int, epochs: int, batch_size: int,
               trials_per_gpu: int, accelerator: str, folder: Path) -> str:
    return f"""
name = "{name}"
n_trials = {n_trials}
seed = {SEED}
storage = "sqlite:///{folder / (name + '.db')}"
{data}
[search]
families = {families!r}
pruner = "none"
[train]
max_epochs = {epochs}
batch_size = [{batch_size}]
accelerator = "{accelerator}"
[workers]
trials_per_gpu = {trials_per_gpu}
"""


def packed_run(study: str, k: int, on_gpu: bool, folder: Path) -> dict[str, float]:
    """One `automl run` of ``study`` with K trials per GPU (K workers on a CPU): what it achieved."""
    path = folder / f"{k}.toml"
    path.write_text(study)
    # On a GPU the run starts trials_per_gpu workers by itself; a CPU run is told how many.
    command = [sys.executable, "-m", "automl", "run", str(path), "--no-progress",
               *([] if on_gpu else ["--workers", str(k)])]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder)
    wall_s = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"automl run with K = {k} ended {result.returncode}:\n{result.stderr[-3000:]}")
    storage = study.split('storage = "', 1)[1].split('"', 1)[0]
    name = study.split('name = "', 1)[1].split('"', 1)[0]
    trials = optuna.load_study(study_name=name, storage=storage).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {"wall_s": wall_s, "trials": len(done), "failed": len(failed),
            "oom": sum("out of memory" in str(t.user_attrs.get(TrialAttr.FAIL_REASON, "")).lower() for t in failed),
            "per_hour": 3600 * len(done) / wall_s,
            "own_s": wall_s - sum(t.user_attrs.get(TrialAttr.WALL_TIME_S, 0.0) for t in trials) / k}


def packing(studies: dict[str, tuple[str, list[str], int]], ks: tuple[int, ...], epochs: int, batch_size: int,
            accelerator: str, on_gpu: bool, folder: Path) -> None:
    print(f"{'study':<8} {'K':>2} {'trials':>6} {'failed':>6} {'OOM':>4} {'wall s':>8} {'trials/h':>9} "
          f"{'speed-up':>8} {'own s':>6}", flush=True)
    speedups = {}
    for label, (data, families, n_trials) in studies.items():
        per_hour = {}
        for k in ks:
            run_folder = Path(tempfile.mkdtemp(prefix=f"pack-{label}-{k}-", dir=folder))
            study = study_text(f"{label}{k}", data, families, n_trials, epochs, batch_size, k, accelerator, run_folder)
            got = packed_run(study, k, on_gpu, run_folder)
            per_hour[k] = got["per_hour"]
            # For K = 1 the run's own seconds: start-up, plan-time checks, queueing, dashboard, the end.
            own = f"{got['own_s']:>6.2f}" if k == 1 else f"{'':>6}"
            print(f"{label:<8} {k:>2} {got['trials']:>6} {got['failed']:>6} {got['oom']:>4} {got['wall_s']:>8.2f} "
                  f"{got['per_hour']:>9.0f} {got['per_hour'] / per_hour[ks[0]]:>7.2f}x {own}", flush=True)
        speedups[label] = per_hour[4] / per_hour[1] if {1, 4} <= per_hour.keys() else float("nan")
    print(f"packing_speedup_k4={speedups['digits']:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smallest models, 1 epoch, fewer samples, trials "
                        "and K: a few minutes on either device")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--skip", action="append", default=[], choices=["trials", "packing"],
                        help="leave out a part (repeatable)")
    parser.add_argument("--k", type=int, action="append", help="trials per GPU to pack (repeatable; "
                        "default 1, 2, 4, 8 on a GPU, 1, 2, 4 on a CPU, 1 and 4 with --quick)")
    parser.add_argument("--samples", type=int, help="CIFAR-shaped images (default 50,000 on a GPU, 3,000 on a "
                        "CPU, 1,200 with --quick)")
    args = parser.parse_args(argv)
    device = resolve_device(args.accelerator)
    on_gpu = device.type == "cuda"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    torch.backends.cudnn.benchmark = on_gpu  # what one sets for a plain loop on a GPU
    samples = args.samples or (1200 if args.quick else 50_000 if on_gpu else 3000)
    epochs = 1 if args.quick else 3
    batch_size = 256 if on_gpu else 64
    ks = tuple(args.k) if args.k else (1, 4) if args.quick else (1, 2, 4, 8) if on_gpu else (1, 2, 4)
    # Removed at the end: each run writes its own studies and data (hundreds of MB on a GPU).
    with tempfile.TemporaryDirectory(prefix="automl-gpu-trials-") as name:
        folder = Path(name)
        cifar = cifar_shaped(samples, SEED)
        print(f"device {device}, {epochs} epoch(s) a trial, batch {batch_size}, CIFAR-shaped: {samples:,} images",
              flush=True)
        if "trials" not in args.skip:
            tasks = {"cifar": split_arrays(cifar, DataConfig(), SEED),
                     "digits": prepare(DataConfig(), registry(), SEED)}
            whole_trials(tasks, epochs, 1 if args.quick else 2 if not on_gpu else 3, batch_size,
                         0.0 if args.quick else 0.5, args.accelerator, device, folder)
        if "packing" not in args.skip:
            np.savez(folder / "cifar.npz", x=cifar.x, y=cifar.y)
            studies = {"digits": ('[data]\ndataset = "digits"', ["mlp", "cnn"], 4 if args.quick else 32),
                       "cifar": (f'[data]\ndataset = "npz"\npath = "{folder / "cifar.npz"}"', ["cnn"], 8)}
            if args.quick:
                del studies["cifar"]
            packing(studies, ks, epochs, batch_size, args.accelerator, on_gpu, folder)


if __name__ == "__main__":
    main()
