"""What a trial costs over the plain PyTorch loop that trains the same model.

For every installed family on digits, on a generated 28x28 image set and on the waveform
sequences, the same model (same params, seed, epochs, batch size, optimizer and learning rate) is
trained twice in this process: once as a real automl trial and once by a plain loop over the same
in-memory tensors. The automl trial takes the path of `automl run`: queued in a study in an SQLite
file, popped by a worker, sampled, built, measured (FLOPs, latency), trained, its user attributes
and artifacts stored, told, and the worker's after-trial callbacks run. A worker measures an
architecture's FLOPs and latency once and the trials here all train one, so each automl time is
charged a new architecture's measurement, timed on a fresh build (fresh_measure_s). A case whose
plain run would take over 30 s (1 s with --quick) trains for fewer epochs (see epochs_for). Prints a table
of epochs, wall times (median of each path), the median ratio of paired runs and both validation
accuracies, then where the automl trials' time went; the last line is ``max_ratio=<number>``.

    python benchmarks/trial_overhead.py --quick     # about a minute on 2 cores: a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import optuna
import torch
import torch.nn.functional as F

from automl.plugin.arrays import LabeledArrays
from automl.storage.artifacts import artifact_dir, open_store
from automl.config import DataConfig, parse_study
from automl.data.prepare import PreparedData, prepare, split_arrays
from automl.training.efficiency import count_parameters, flops_per_sample, latency, peak_memory_mb
from automl.search.objective import Objective
from automl.plugin.registry import registry
from automl.plugin.space import sample_params
from automl.search.plan import StudyPlan
from automl.search.study import create_or_resume, join_study
from automl.storage.schema import FAMILY_PARAM, TrialAttr
from automl.training.device import resolve_device
from automl.workers.worker import run_worker

LR, BATCH_SIZE, WEIGHT_DECAY, SEED = 1e-3, 64, 1e-6, 0
MAX_RUN_S, QUICK_MAX_RUN_S = 30.0, 1.0
SHORT_RUN_S, SHORT_REPEATS = 5.0, 15


def digits_28(seed: int) -> PreparedData:
    """A few thousand 28x28 images: each digit upscaled twice, at two random sub-pixel shifts."""
    digits = registry().datasets["digits"].obj.load(seed, DataConfig())
    images = torch.from_numpy(digits.x)
    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(2):
        shift = torch.from_numpy(rng.uniform(-0.1, 0.1, size=(len(images), 2)).astype(np.float32))
        theta = torch.zeros(len(images), 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, (len(images), 1, 28, 28), align_corners=False)
        copies.append(F.grid_sample(images, grid, align_corners=False))
    x = torch.cat(copies).numpy()
    y = np.concatenate([digits.y, digits.y])
    return split_arrays(LabeledArrays(x, y, "image"), DataConfig(), seed)


def typical_config(family, data: PreparedData, quantile: float, candidates: int = 7) -> dict:
    """The stored params of the model at ``quantile`` of size among a few sampled ones."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEED))
    sampled = []
    for _ in range(candidates):
        trial = study.ask()
        params = sample_params(family, trial, data.task)
        sampled.append((count_parameters(family.build(params, data.task)), dict(trial.params)))
        study.tell(trial, 0.0)
    sampled.sort(key=lambda pair: pair[0])
    return sampled[round(quantile * (len(sampled) - 1))][1]


class InterleavedRuns:
    """A worker of a study in an SQLite file runs the queued trials; between them, the plain loop runs.

    One worker runs ``1 + repeats`` queued trials in a row, as in `automl run`. The worker calls
    back after each trial (after its result, attributes and artifacts are stored); the callback
    runs the plain loop with that trial's seed, so the two paths alternate on the same machine
    state. A trial's time runs from the end of the previous callback to its own callback: the pop
    from the queue, sampling, building, measuring, training, storing and the worker's own
    after-trial work. Trial 0 is a warm-up; its time includes the worker's start-up and is dropped.
    """

    def __init__(self, name: str, family, data: PreparedData, epochs: int, accelerator: str,
                 folder: Path, plain: Callable[[int], tuple[float, float]], batch_size: int = BATCH_SIZE) -> None:
        self.batch_size = batch_size
        self.config = parse_study({
            "name": "bench", "seed": SEED, "storage": f"sqlite:///{folder / 'bench.db'}",
            # The same model trains for every epoch on both paths: nothing may stop it early.
            "search": {"families": [name], "pruner": "none"},
            "train": {"max_epochs": epochs, "accelerator": accelerator, "lr": [LR, LR],
                      "weight_decay": [WEIGHT_DECAY, WEIGHT_DECAY], "batch_size": [batch_size],
                      "optimizer": ["adam"]},
        }, Path("benchmark"))
        self.plan = StudyPlan(self.config, self.config.storage, {name: family}, data)
        self.plain = plain
        self.automl_runs: list[tuple[float, float]] = []
        self.plain_runs: list[tuple[float, float]] = []
        self.phases: list[dict[str, float]] = []
        self._resumed = 0.0

    def _after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = time.perf_counter()
        if trial.state != optuna.trial.TrialState.COMPLETE:
            raise RuntimeError(f"benchmark trial {trial.number} ended {trial.state.name}: "
                               f"{trial.user_attrs.get(TrialAttr.FAIL_REASON)}")
        if trial.number > 0:
            self.automl_runs.append((finished - self._resumed, trial.values[0]))
            self.phases.append(phases(trial, finished - self._resumed))
            self.plain_runs.append(self.plain(self.config.seed + trial.number))
        self._resumed = time.perf_counter()

    def new_architecture_runs(self, measured: dict[str, float]) -> list[tuple[float, float]]:
        """The automl runs, each charged what measuring a new architecture costs (``measured``, from
        fresh_measure_s): a worker measures an architecture's FLOPs and latency once, and every trial
        here trains the same one. Peak memory is taken every trial, so it is in the runs already."""
        extra = measured["flops"] + measured["latency"]
        return [(seconds + extra, accuracy) for seconds, accuracy in self.automl_runs]

    def run(self, stored: dict, repeats: int) -> None:
        queue = create_or_resume(self.plan)
        for _ in range(1 + repeats):
            queue.enqueue_trial({**stored, "train.optimizer": "adam", "train.lr": LR,
                                 "train.weight_decay": WEIGHT_DECAY, "train.batch_size": self.batch_size})
        study, requeue = join_study(self.plan)
        objective = Objective(self.config, self.plan.families, self.plan.data,
                              open_store(artifact_dir(self.plan.storage_url)))
        run_worker(study, objective, self.config.workers, requeue, objective.device,
                   callbacks=[self._after_trial])


# Each phase and the trial attr holding its seconds.
PHASES = {"build": TrialAttr.TIME_BUILD_S, "measure": TrialAttr.TIME_MEASURE_S, "train": TrialAttr.TIME_TRAIN_S,
          "validate": TrialAttr.TIME_VALIDATE_S, "other": TrialAttr.TIME_OTHER_S}


def phases(trial: optuna.trial.FrozenTrial, trial_s: float) -> dict[str, float]:
    """The phase timings the trial stored, plus the time spent outside its objective (storage,
    sampler, callbacks): where the difference from the plain loop comes from."""
    attrs = trial.user_attrs
    return {**{phase: attrs[attr] for phase, attr in PHASES.items()}, "outside": trial_s - attrs[TrialAttr.WALL_TIME_S]}


def fresh_measure_s(family, stored: dict, data: PreparedData, device: torch.device,
                    batch_size: int) -> dict[str, float]:
    """Seconds each part of the objective's measure phase takes on a new architecture, in its order
    (automl.training.efficiency.measure, then peak memory): FLOPs on the CPU, latency and peak memory
    on ``device``."""
    model = family.build({k.split(".", 1)[1]: v for k, v in stored.items() if k != FAMILY_PARAM}, data.task)
    example = data.train.x[:1]
    parts = {"flops": lambda: flops_per_sample(model.cpu(), example),
             "latency": lambda: latency(model.to(device), example.to(device)),
             "memory": lambda: peak_memory_mb(model.to(device), example.to(device), batch_size)}
    seconds = {}
    for part, call in parts.items():
        started = time.perf_counter()
        call()
        seconds[part] = time.perf_counter() - started
    return seconds


def epochs_for(one_epoch_s: float, max_epochs: int, max_run_s: float) -> int:
    """Epochs for a case whose plain epoch takes ``one_epoch_s``: up to about ``max_run_s`` a run.

    A run of minutes meets the machine's slow spells, which swing it by far more than a trial's
    fixed cost, and allows too few pairs for a median to reject one. Fewer epochs make that fixed
    cost a larger share of the run, so the ratio gets stricter, not looser.
    """
    return max(1, min(max_epochs, int(max_run_s / one_epoch_s)))


def repeats_for(run_s: float, default: int) -> int:
    """Timed runs per path for a run of about ``run_s`` seconds: more where runs are short.

    Runs of a second or two swing by 10-20% on a shared machine, more than the fixed cost being
    measured: there more repeats cost little.
    """
    return max(default, SHORT_REPEATS) if run_s < SHORT_RUN_S else default


def plain_loop(family, stored: dict, data: PreparedData, epochs: int, device: torch.device,
               seed: int, batch_size: int = BATCH_SIZE) -> tuple[float, float]:
    """The loop one writes by hand: shuffled index slices, Adam, accuracy each epoch and at the end."""
    started = time.perf_counter()
    params = {key.split(".", 1)[1]: value for key, value in stored.items() if key != FAMILY_PARAM}
    L.seed_everything(seed, verbose=False)
    model = family.build(params, data.task).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    train_x, train_y = data.train.x.to(device), data.train.y.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)

    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        model.eval()
        with torch.inference_mode():
            correct = sum((model(x[i:i + 1024]).argmax(1) == y[i:i + 1024]).sum() for i in range(0, len(y), 1024))
        return float(correct) / len(y)

    val_x, val_y = data.val.x.to(device), data.val.y.to(device)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_y), generator=generator, device=device)
        for start in range(0, len(train_y) - (len(train_y) % batch_size == 1), batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(train_x[index]), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_accuracy = accuracy(val_x, val_y)
    accuracy(data.test.x.to(device), data.test.y.to(device))
    return time.perf_counter() - started, val_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smallest models, runs of about a second, "
                        "two repeats: a smoke run in well under two minutes")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 20, quick 4), fewer where "
                        f"a plain run would take over {MAX_RUN_S:.0f} s ({QUICK_MAX_RUN_S:.0f} s quick)")
    parser.add_argument("--repeats", type=int, help="timed runs per path, median kept (default 3, and "
                        f"{SHORT_REPEATS} where a plain run takes under {SHORT_RUN_S:.0f} s; quick 2)")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); "
                        "1 keeps the ratio steadier on a busy machine")
    parser.add_argument("--case", action="append", metavar="TASK/FAMILY",
                        help="run only this case (repeatable), e.g. waveforms/mlp")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (4 if args.quick else 20)
    repeats = args.repeats or (2 if args.quick else 3)
    max_run_s = QUICK_MAX_RUN_S if args.quick else MAX_RUN_S
    # A typical trial is the median-sized model; --quick takes the smallest sampled one to stay short.
    quantile = 0.0 if args.quick else 0.5
    device = resolve_device(args.accelerator)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    tasks = {"digits": prepare(DataConfig(dataset="digits"), registry(), SEED), "digits28": digits_28(SEED),
             "waveforms": prepare(DataConfig(dataset="waveforms"), registry(), SEED)}
    print(f"device {device}, {torch.get_num_threads()} CPU threads, up to {epochs} epochs (fewer where a "
          f"run would take over {max_run_s:.0f} s), batch {BATCH_SIZE}, median of {repeats} runs per path"
          + ("" if args.quick or args.repeats else f" ({SHORT_REPEATS} for runs under {SHORT_RUN_S:.0f} s)"))
    print(f"{'task':<10} {'family':<12} {'params':>9} {'epochs':>6} {'plain s':>8} {'automl s':>9} {'ratio':>6} "
          f"{'plain acc':>9} {'automl acc':>10}")
    ratios, gaps, breakdown = [], [], []
    for task_name, data in tasks.items():
        for name, registered in registry().families.items():
            family = registered.obj
            if data.task.kind not in family.task_kinds or (args.case and f"{task_name}/{name}" not in args.case):
                continue
            stored = typical_config(family, data, quantile)
            one_epoch_s, _ = plain_loop(family, stored, data, 1, device, SEED)  # also a warm-up
            case_epochs = epochs_for(one_epoch_s, epochs, max_run_s)
            runs = InterleavedRuns(name, family, data, case_epochs, args.accelerator,
                                   Path(tempfile.mkdtemp(prefix="automl-bench-")),
                                   lambda seed: plain_loop(family, stored, data, case_epochs, device, seed))
            case_repeats = repeats if args.quick or args.repeats else repeats_for(one_epoch_s * case_epochs, repeats)
            runs.run(stored, case_repeats)
            plain_runs = runs.plain_runs
            automl_runs = runs.new_architecture_runs(fresh_measure_s(family, stored, data, device, BATCH_SIZE))
            plain_s = statistics.median(t for t, _ in plain_runs)
            automl_s = statistics.median(t for t, _ in automl_runs)
            plain_acc, automl_acc = plain_runs[-1][1], automl_runs[-1][1]
            # Each trial is paired with the plain run right after it: the machine's speed drifts by
            # more than a trial's overhead over a minute, but little between two neighbouring runs.
            ratio = statistics.median(a / p for (a, _), (p, _) in zip(automl_runs, plain_runs))
            ratios.append(ratio)
            gaps.append(abs(plain_acc - automl_acc))
            n_params = count_parameters(family.build(
                {k.split(".", 1)[1]: v for k, v in stored.items() if k != FAMILY_PARAM}, data.task))
            print(f"{task_name:<10} {name:<12} {n_params:>9,} {case_epochs:>6} {plain_s:>8.3f} {automl_s:>9.3f} "
                  f"{ratio:>6.3f} {plain_acc:>9.4f} {automl_acc:>10.4f}", flush=True)
            breakdown.append((task_name, name, {key: statistics.median(run[key] for run in runs.phases)
                                                for key in runs.phases[0]}))
    print("where an automl trial's time went (median s; other: set-up around training, outside: "
          "storage, sampler and callbacks)")
    print(f"{'task':<10} {'family':<12} " + " ".join(f"{key:>8}" for key in (*PHASES, "outside")))
    for task_name, name, medians in breakdown:
        print(f"{task_name:<10} {name:<12} " + " ".join(f"{value:>8.4f}" for value in medians.values()))
    print(f"accuracy gap (max |plain - automl|): {max(gaps):.4f}")
    print(f"max_ratio={max(ratios):.3f}")


if __name__ == "__main__":
    main()
