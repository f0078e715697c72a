"""What a trial costs over the plain PyTorch loop that trains the same model.

For every installed family on digits, on a generated 28x28 image set and on the waveform
sequences, the same model (same params, seed, epochs, batch size, optimizer and learning rate) is
trained twice in this process: once as a real automl trial (the objective `automl run` calls,
FLOPs and latency measurement included) and once by a plain loop over the same in-memory tensors.
Prints a table of wall times, their ratio and both validation accuracies; the last line is
``max_ratio=<number>``.

    python benchmarks/trial_overhead.py --quick     # well under two minutes on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import lightning as L
import numpy as np
import optuna
import torch
import torch.nn.functional as F

from automl.arrays import LabeledArrays
from automl.config import DataConfig, parse_study
from automl.data import PreparedData, prepare, split_arrays
from automl.efficiency import count_parameters
from automl.objective import Objective
from automl.plugins import registry
from automl.space import sample_params
from automl.training import resolve_device

LR, BATCH_SIZE, WEIGHT_DECAY, SEED = 1e-3, 64, 1e-6, 0


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


def median_config(family, data: PreparedData, candidates: int = 7) -> dict:
    """The stored params of the median-sized model among a few sampled ones: a typical trial."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEED))
    sampled = []
    for _ in range(candidates):
        trial = study.ask()
        params = sample_params(family, trial, data.task)
        sampled.append((count_parameters(family.build(params, data.task)), dict(trial.params)))
        study.tell(trial, 0.0)
    sampled.sort(key=lambda pair: pair[0])
    return sampled[len(sampled) // 2][1]


def automl_trial(objective: Objective, stored: dict) -> tuple[float, float]:
    """One real trial of the objective `automl run` uses; returns (seconds, val accuracy)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial({**stored, "train.optimizer": "adam", "train.lr": LR,
                         "train.weight_decay": WEIGHT_DECAY, "train.batch_size": BATCH_SIZE})
    trial = study.ask()
    started = time.perf_counter()
    values = objective(trial)
    return time.perf_counter() - started, values[0]


def plain_loop(family, stored: dict, data: PreparedData, epochs: int, device: torch.device
               ) -> tuple[float, float]:
    """The loop one writes by hand: shuffled index slices, Adam, accuracy each epoch and at the end."""
    started = time.perf_counter()
    params = {key.split(".", 1)[1]: value for key, value in stored.items() if key != "family"}
    L.seed_everything(SEED, verbose=False)
    model = family.build(params, data.task).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    train_x, train_y = data.train.x.to(device), data.train.y.to(device)
    generator = torch.Generator(device=device).manual_seed(SEED)

    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        model.eval()
        with torch.inference_mode():
            correct = sum((model(x[i:i + 1024]).argmax(1) == y[i:i + 1024]).sum() for i in range(0, len(y), 1024))
        return float(correct) / len(y)

    val_x, val_y = data.val.x.to(device), data.val.y.to(device)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_y), generator=generator, device=device)
        for start in range(0, len(train_y) - (len(train_y) % BATCH_SIZE == 1), BATCH_SIZE):
            index = order[start:start + BATCH_SIZE]
            loss = F.cross_entropy(model(train_x[index]), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_accuracy = accuracy(val_x, val_y)
    accuracy(data.test.x.to(device), data.test.y.to(device))
    return time.perf_counter() - started, val_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 20, quick 6)")
    parser.add_argument("--repeats", type=int, help="timed runs per path, median kept (default 3, quick 2)")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); "
                        "1 keeps the ratio steadier on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (6 if args.quick else 20)
    repeats = args.repeats or (2 if args.quick else 3)
    device = resolve_device(args.accelerator)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tasks = {"digits": prepare(DataConfig(dataset="digits"), registry(), SEED), "digits28": digits_28(SEED),
             "waveforms": prepare(DataConfig(dataset="waveforms"), registry(), SEED)}
    print(f"device {device}, {torch.get_num_threads()} CPU threads, {epochs} epochs, batch {BATCH_SIZE}, median of {repeats} runs per path")
    print(f"{'task':<10} {'family':<12} {'params':>9} {'plain s':>8} {'automl s':>9} {'ratio':>6} "
          f"{'plain acc':>9} {'automl acc':>10}")
    ratios, gaps = [], []
    for task_name, data in tasks.items():
        for name, registered in registry().families.items():
            family = registered.obj
            if data.task.kind not in family.task_kinds:
                continue
            stored = median_config(family, data)
            config = parse_study({
                "name": "bench", "seed": SEED,
                "search": {"families": [name]},
                "train": {"max_epochs": epochs, "accelerator": args.accelerator, "lr": [LR, LR],
                          "weight_decay": [WEIGHT_DECAY, WEIGHT_DECAY], "batch_size": [BATCH_SIZE],
                          "optimizer": ["adam"]},
            }, Path("benchmark"))
            objective = Objective(config, {name: family}, data)
            automl_trial(objective, stored)  # warm-up: first-call costs are not per-trial costs
            plain_loop(family, stored, data, 1, device)
            plain_runs, automl_runs = [], []
            for repeat in range(repeats):
                # Alternate the order so neither path always runs on a warmer machine.
                pair = [lambda: plain_runs.append(plain_loop(family, stored, data, epochs, device)),
                        lambda: automl_runs.append(automl_trial(objective, stored))]
                for run in pair if repeat % 2 == 0 else reversed(pair):
                    run()
            plain_s = statistics.median(t for t, _ in plain_runs)
            automl_s = statistics.median(t for t, _ in automl_runs)
            plain_acc, automl_acc = plain_runs[-1][1], automl_runs[-1][1]
            ratios.append(automl_s / plain_s)
            gaps.append(abs(plain_acc - automl_acc))
            n_params = count_parameters(family.build(
                {k.split(".", 1)[1]: v for k, v in stored.items() if k != "family"}, data.task))
            print(f"{task_name:<10} {name:<12} {n_params:>9,} {plain_s:>8.3f} {automl_s:>9.3f} "
                  f"{automl_s / plain_s:>6.3f} {plain_acc:>9.4f} {automl_acc:>10.4f}", flush=True)
    print(f"accuracy gap (max |plain - automl|): {max(gaps):.4f}")
    print(f"max_ratio={max(ratios):.3f}")


if __name__ == "__main__":
    main()
