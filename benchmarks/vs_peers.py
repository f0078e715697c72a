"""automl's defaults against its peers at equal wall-clock budget and thread count.

Three tools search the same image task, each (tool, seed) in its own process with one thread and
a hard wall-clock limit:

- automl:  its defaults through the real CLI, `automl run STUDY.toml`: families mlp and cnn,
           objectives val_accuracy and flops, ``timeout`` = the budget, everything else default;
- optuna:  the pattern of Optuna's PyTorch Lightning example (benchmarks/peer_searches.py);
- neps:    NePS's multi-objective MO-ASHA over automl's mlp and cnn knobs (ditto).

The task: 5,000 28x28 single-channel digits made offline from scikit-learn's 8x8 digits (each
upscaled with a small random rotation, scale and shift), written once to an .npz file that automl
reads through its ``npz`` dataset. The peers read it through the same study file, so every tool
trains and validates on automl's own split (stratified, fixed by the seed) for at most automl's
default maximum epochs. Copies of one 8x8 digit can land in both train and validation, which
flatters every tool's accuracy alike.

Every run's clock starts when its process is launched (imports and data preparation count). A
run is stopped at the budget plus a short grace; a trial counts only if it finished within the
budget: for automl and Optuna a COMPLETE trial (a pruned one is no front point), for NePS every
evaluation it finished, at whatever epochs MO-ASHA gave it (each is a model trained and validated
for that many epochs). The front is scored by the hypervolume of (validation accuracy, log10 FLOPs
per sample) against one fixed reference point, accuracy 0 and 1e8 FLOPs, at 10, 25, 50 and 100%
of the budget. The last two lines compare automl with the best peer of each seed, median over
seeds: ``hv_ratio_vs_best_peer_at_25=`` (at a quarter of the budget) and ``hv_ratio_vs_best_peer=``
(at the end); inf when the best peer has no front point but automl has, nan when neither has one.

The peers are an optional extra. NePS asks for torchvision, whose newest release would upgrade
torch; pin the torch already installed:

    .venv/bin/pip install -e ".[peers]" "torch==$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"

Where torch is a local build that the index's torchvision does not match (its import fails with
"operator torchvision::nms does not exist", and torchmetrics imports it), remove torchvision
afterwards: NePS runs without it (`.venv/bin/pip uninstall -y torchvision`).

    .venv/bin/python benchmarks/vs_peers.py --quick     # one 60 s run per tool: about 3 minutes
    .venv/bin/python benchmarks/vs_peers.py             # 240 s x 3 seeds x 3 tools, two at a time: ~25 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from search_efficiency import hypervolume
from sklearn.datasets import load_digits

from automl.config import load_study_file
from automl.storage.schema import is_feasible

TOOLS = ("automl", "optuna", "neps")
REFERENCE_LOG_FLOPS = 8.0  # log10 of the reference point's 1e8 FLOPs per sample
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SAMPLES, DATA_SEED = 5000, 0
# After the budget a run may still be writing its last result; then it is stopped (SIGTERM, and
# SIGKILL if it lingers). Nothing finished after the budget counts.
GRACE_S, KILL_AFTER_S = 10.0, 10.0
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
HERE = Path(__file__).resolve().parent
# Exit codes of a run that ended by itself or was stopped at its deadline: by the signal, or by
# its own handler exiting with 128 + the signal's number as a shell does (automl's does).
STOPPED = {0} | {code for sig in (signal.SIGTERM, signal.SIGKILL) for code in (-sig, 128 + sig)}


def digit_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images ``[N, 1, 28, 28]`` in [0, 1] and their labels: every 8x8 digit about
    equally often, each copy upscaled with its own rotation (+-0.2 rad), scale (0.9-1.1) and shift."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    picks = rng.permutation(np.resize(rng.permutation(len(digits.target)), count))
    images = torch.from_numpy(digits.images[picks, None].astype(np.float32) / 16.0)
    angle, scale = rng.uniform(-0.2, 0.2, count), rng.uniform(0.9, 1.1, count)
    theta = np.zeros((count, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = scale * np.cos(angle)
    theta[:, 0, 1], theta[:, 1, 0] = -scale * np.sin(angle), scale * np.sin(angle)
    theta[:, :, 2] = rng.uniform(-0.1, 0.1, (count, 2))
    grid = F.affine_grid(torch.from_numpy(theta), [count, 1, 28, 28], align_corners=False)
    x = F.grid_sample(images, grid, align_corners=False).numpy()
    return x, digits.target[picks].astype(np.int64)


def write_study(folder: Path, seed: int, budget_s: float) -> Path:
    """automl's study file for ``seed``: the npz data, mlp and cnn, accuracy and FLOPs, the rest default
    (no ``n_trials``: with a time budget, a run samples until its deadline)."""
    path = folder / f"study-s{seed}.toml"
    path.write_text(f"""name = "vs-peers-s{seed}"
timeout = {budget_s}
seed = {seed}
storage = "sqlite:///{folder / f'automl-s{seed}.db'}"

[data]
dataset = "npz"
path = "digits28.npz"

[search]
families = ["mlp", "cnn"]
objectives = ["val_accuracy", "flops"]
""", encoding="utf-8")
    return path


def log_flops(flops: float) -> float:
    return math.log10(max(flops, 1.0))  # a model of no multiply-adds at all counts as one FLOP


@dataclass
class Run:
    tool: str
    seed: int
    budget_s: float
    max_epochs: int
    # (seconds since launch, val accuracy, FLOPs, epochs) of each counted trial, in finishing order.
    points: list[tuple[float, float, float, int]] = field(default_factory=list)
    pruned: int = 0
    note: str = ""

    def hypervolume_at(self, seconds: float) -> float:
        return hypervolume([(acc, log_flops(flops)) for t, acc, flops, _ in self.points if t <= seconds],
                           REFERENCE_LOG_FLOPS)

    @property
    def best_accuracy(self) -> float:
        return max((acc for _, acc, _, _ in self.points), default=math.nan)

    @property
    def partial(self) -> int:
        return sum(epochs < self.max_epochs for *_, epochs in self.points)

    @property
    def first_front_s(self) -> float:
        return min((t for t, acc, flops, _ in self.points
                    if acc > 0 and log_flops(flops) < REFERENCE_LOG_FLOPS), default=math.inf)


@dataclass
class Job:
    tool: str
    seed: int
    study: Path
    folder: Path
    process: subprocess.Popen | None = None
    started: float = 0.0
    stopping: float | None = None

    def command(self, budget_s: float) -> list[str]:
        if self.tool == "automl":
            return [str(Path(sys.executable).with_name("automl")), "run", str(self.study), "--no-progress"]
        return [sys.executable, str(HERE / "peer_searches.py"), self.tool, str(self.study), "--budget",
                str(budget_s), "--started", str(self.started), "--out", str(self.folder / "records.jsonl")]

    def launch(self, budget_s: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        with (self.folder / "log.txt").open("wb") as log:
            # A session of its own: the whole process group is stopped at the deadline.
            self.process = subprocess.Popen(self.command(budget_s), cwd=self.folder, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, **ONE_THREAD})

    def poll(self, budget_s: float) -> bool:
        """Stop the run once past its deadline; True when its process has ended."""
        if self.process.poll() is not None:
            return True
        now = time.time()
        if self.stopping is None and now > self.started + budget_s + GRACE_S:
            self.stopping = now
            os.killpg(self.process.pid, signal.SIGTERM)
        elif self.stopping is not None and now > self.stopping + KILL_AFTER_S:
            os.killpg(self.process.pid, signal.SIGKILL)
        return False

    def log_tail(self, lines: int = 15) -> str:
        text = (self.folder / "log.txt").read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def run_jobs(jobs: list[Job], budget_s: float, parallel: int) -> None:
    waiting, running = list(jobs), []
    while waiting or running:
        while waiting and len(running) < parallel:
            job = waiting.pop(0)
            job.launch(budget_s)
            running.append(job)
            print(f"  started {job.tool} seed {job.seed} ({job.folder})", file=sys.stderr, flush=True)
        time.sleep(0.5)
        running = [job for job in running if not job.poll(budget_s)]


def read_automl(job: Job, budget_s: float, max_epochs: int) -> Run:
    """The trials of the job's study that completed (or were pruned) within the budget."""
    run = Run(job.tool, job.seed, budget_s, max_epochs)
    config = load_study_file(job.study)
    try:
        study = optuna.load_study(study_name=config.name, storage=config.storage)
    except KeyError:
        run.note = "no study was created"
        return run
    for trial in study.get_trials(deepcopy=False):
        finished = trial.datetime_complete.timestamp() - job.started if trial.datetime_complete else math.inf
        if finished > budget_s:
            continue
        if trial.state == optuna.trial.TrialState.PRUNED:
            run.pruned += 1
        elif trial.state == optuna.trial.TrialState.COMPLETE and is_feasible(trial):
            run.points.append((finished, trial.values[0], trial.values[1],
                               trial.user_attrs.get("epochs", max_epochs)))
    if sum(t.state == optuna.trial.TrialState.WAITING for t in study.trials) == 0:
        run.note = "its queue ran out before the budget"
    run.points.sort()
    return run


def read_records(job: Job, budget_s: float, max_epochs: int) -> Run:
    run = Run(job.tool, job.seed, budget_s, max_epochs)
    path = job.folder / "records.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for record in map(json.loads, lines):
        if record["t"] > budget_s:
            continue
        if record["state"] == "pruned":
            run.pruned += 1
        else:
            run.points.append((record["t"], record["val_accuracy"], record["flops"], record["epochs"]))
    return run


def median(values: list[float]) -> float:
    """The median of the values that are numbers (a run without a front has no best accuracy)."""
    known = [value for value in values if not math.isnan(value)]
    return statistics.median(known) if known else math.nan


def ratio(ours: float, best_peer: float) -> float:
    if best_peer > 0:
        return ours / best_peer
    return math.inf if ours > 0 else math.nan


def median_ratio(runs: dict[str, list[Run]], seconds_fraction: float) -> float:
    """automl's hypervolume over the best peer's, per seed at ``seconds_fraction`` of the budget; the median."""
    ratios = []
    for index, ours in enumerate(runs["automl"]):
        at = seconds_fraction * ours.budget_s
        peers = [tool_runs[index].hypervolume_at(at) for tool, tool_runs in runs.items() if tool != "automl"]
        ratios.append(ratio(ours.hypervolume_at(at), max(peers, default=0.0)))
    return median(ratios)


def print_tables(runs: dict[str, list[Run]]) -> None:
    header = ("seed " + " ".join(f"{f'hv@{fraction:.0%}':>8}" for fraction in FRACTIONS)
              + f" {'best acc':>8} {'finished':>8} {'<max ep':>7} {'pruned':>6} {'1st front s':>11}")
    for tool, tool_runs in runs.items():
        print(f"\n{tool}")
        print(header)
        rows = []
        for run in tool_runs:
            row = [run.hypervolume_at(fraction * run.budget_s) for fraction in FRACTIONS]
            row += [run.best_accuracy, len(run.points), run.partial, run.pruned, run.first_front_s]
            rows.append(row)
            print(f"{run.seed:>4} " + format_row(row) + (f"  ({run.note})" if run.note else ""))
        if len(rows) > 1:
            print(f"{'med':>4} " + format_row([median(column) for column in zip(*rows)]))


def format_row(row: list[float]) -> str:
    *volumes, best, finished, partial, pruned, first = row
    return (" ".join(f"{value:>8.3f}" for value in volumes) + f" {best:>8.4f} {finished:>8.0f} {partial:>7.0f}"
            f" {pruned:>6.0f} {first:>11.1f}")


def format_ratio(value: float) -> str:
    return str(value) if math.isinf(value) or math.isnan(value) else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, help="wall-clock seconds per run (default 240; quick 60)")
    parser.add_argument("--seeds", type=int, help="seeds per tool (default 3; quick 1)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS),
                        help="tools to run (automl always: the ratios are automl's)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each (default 2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 60 s, one seed")
    parser.add_argument("--folder", type=Path, help="where the data, studies and logs go (default: a new temporary folder)")
    args = parser.parse_args()
    budget_s = args.budget or (60.0 if args.quick else 240.0)
    seeds = args.seeds or (1 if args.quick else 3)
    tools = ["automl", *(tool for tool in args.tools if tool != "automl")]
    folder = (args.folder or Path(tempfile.mkdtemp(prefix="vs-peers-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    x, y = digit_images(SAMPLES, DATA_SEED)
    np.savez(folder / "digits28.npz", x=x, y=y)
    studies = {seed: write_study(folder, seed, budget_s) for seed in range(seeds)}
    max_epochs = load_study_file(studies[0]).train.max_epochs
    print(f"{len(tools)} tools x {seeds} seed(s), {budget_s:.0f} s each, {args.parallel} run(s) at a time on "
          f"{os.cpu_count()} cores, 1 thread per run; {SAMPLES} 28x28 digits, max {max_epochs} epochs; "
          f"in {folder}", flush=True)
    jobs = [Job(tool, seed, studies[seed], folder / f"{tool}-s{seed}") for seed in range(seeds) for tool in tools]
    run_jobs(jobs, budget_s, args.parallel)
    runs: dict[str, list[Run]] = {tool: [] for tool in tools}
    for job in jobs:
        read = read_automl if job.tool == "automl" else read_records
        run = read(job, budget_s, max_epochs)
        if job.process.returncode not in STOPPED:
            run.note = f"exited with {job.process.returncode}; see {job.folder / 'log.txt'}"
            print(f"{job.tool} seed {job.seed} failed:\n{job.log_tail()}", file=sys.stderr)
        runs[job.tool].append(run)
    print(f"\nhypervolume of (val accuracy, log10 FLOPs) from (0, {REFERENCE_LOG_FLOPS:g}); trials finished within "
          "the budget (<max ep: of them, trained fewer than max epochs; pruned: stopped early, not counted)")
    print_tables(runs)
    (folder / "runs.json").write_text(json.dumps({tool: [run.__dict__ for run in tool_runs]
                                                  for tool, tool_runs in runs.items()}), encoding="utf-8")
    print(f"\nhv_ratio_vs_best_peer_at_25={format_ratio(median_ratio(runs, 0.25))}")
    print(f"hv_ratio_vs_best_peer={format_ratio(median_ratio(runs, 1.0))}")


if __name__ == "__main__":
    main()
