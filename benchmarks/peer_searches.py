"""The peers that benchmarks/vs_peers.py runs against automl, one search per process.

- ``optuna``: the pattern of Optuna's PyTorch Lightning example, in our own words: an MLP of 1 to 3
  layers of 4 to 128 units (log scale) with one dropout rate in [0.2, 0.5], Adam at its default
  learning rate, batches of 128, validation accuracy as the single objective, TPE, a
  MedianPruner fed by optuna-integration's PyTorchLightningPruningCallback, and a Lightning
  Trainer per trial; ``study.optimize`` stops starting trials when the budget is spent.
- ``neps``: NePS's multi-objective MO-ASHA (``optimizer="moasha"``, fidelity = epochs) over the
  main knobs of automl's ``mlp`` and ``cnn`` families and of automl's training defaults (the study
  file's ``[train]`` ranges), the models built by the families' own ``build``, trained by a plain
  PyTorch loop from scratch at each rung; objectives validation error and log10 FLOPs per sample
  (log10 because the epsilon-net that ranks MO-ASHA's promotions measures plain Euclidean
  distances, where raw FLOPs would swamp the error). NePS has no wall-clock limit: it runs until
  vs_peers.py ends the process.

Both read the data, the split, the families and the maximum epochs from the study file that
automl runs, so every tool trains and validates on the same tensors for as many epochs at most.
Every finished evaluation is appended at once to a JSON-lines file, with its time since
``--started`` (the moment vs_peers.py launched the process), so a run ended at its deadline keeps
all it finished. FLOPs per sample are counted as automl counts them (flops_per_sample).

    python benchmarks/peer_searches.py optuna STUDY.toml --budget 240 --started T --out runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

import lightning as L
import numpy as np
import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from automl.config import load_study_file
from automl.data.prepare import PreparedData
from automl.plugin.registry import registry
from automl.search.plan import StudyPlan, plan_study
from automl.training.efficiency import flops_per_sample
from automl_plugins.cnn import BASE_CHANNELS
from automl_plugins.mlp import NORMALIZATIONS, WIDTHS

# Optuna's example: batches of 128, Adam at its default learning rate.
OPTUNA_BATCH_SIZE = 128
# Evaluation in chunks: a wide CNN over all 28x28 validation images at once would take gigabytes.
EVAL_CHUNK = 256
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "sgd": lambda params, **kwargs: torch.optim.SGD(params, momentum=0.9, nesterov=True, **kwargs)}


class Records:
    """Finished evaluations as JSON lines, flushed one by one: ``t`` seconds since the launch,
    ``state`` ("complete" or "pruned"), ``epochs`` trained, ``val_accuracy`` and ``flops``."""

    def __init__(self, file: TextIO, started: float) -> None:
        self.file, self.started = file, started

    def add(self, state: str, epochs: int, val_accuracy: float | None = None, flops: int | None = None) -> None:
        record = {"t": round(time.time() - self.started, 3), "state": state, "epochs": epochs,
                  "val_accuracy": val_accuracy, "flops": flops}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.inference_mode():
        correct = sum(int((model(x[i:i + EVAL_CHUNK]).argmax(1) == y[i:i + EVAL_CHUNK]).sum())
                      for i in range(0, len(y), EVAL_CHUNK))
    return correct / len(y)


class LightningMLP(L.LightningModule):
    """The example's LightningModule: log-softmax outputs, NLL loss, Adam, ``val_acc`` logged."""

    def __init__(self, layers: nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.layers(x), dim=1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        x, y = batch
        return F.nll_loss(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        x, y = batch
        # One batch holds the whole validation split, so its mean is the split's accuracy.
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters())


def example_mlp(trial: optuna.Trial, data: PreparedData) -> nn.Module:
    """The example's define-by-run space: 1-3 layers, 4-128 units each (log), one dropout rate."""
    n_layers = trial.suggest_int("n_layers", 1, 3)
    dropout = trial.suggest_float("dropout", 0.2, 0.5)
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(data.task.input_shape)
    for index in range(n_layers):
        units = trial.suggest_int(f"n_units_l{index}", 4, 128, log=True)
        layers += [nn.Linear(features, units), nn.ReLU(), nn.Dropout(dropout)]
        features = units
    layers.append(nn.Linear(features, data.task.num_classes))
    return nn.Sequential(*layers)


def run_optuna(plan: StudyPlan, seed: int, deadline: float, records: Records) -> None:
    from optuna_integration import PyTorchLightningPruningCallback

    data, epochs = plan.data, plan.config.train.max_epochs
    train_loader = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=OPTUNA_BATCH_SIZE, shuffle=True)
    val_loader = DataLoader(TensorDataset(data.val.x, data.val.y), batch_size=len(data.val.y))

    def objective(trial: optuna.Trial) -> float:
        L.seed_everything(seed + trial.number, verbose=False)
        layers = example_mlp(trial, data)
        trial.set_user_attr("flops", flops_per_sample(layers, data.train.x[:1]))
        pruning = PyTorchLightningPruningCallback(trial, monitor="val_acc")
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[pruning])
        trainer.fit(LightningMLP(layers), train_loader, val_loader)
        pruning.check_pruned()
        trial.set_user_attr("epochs", trainer.current_epoch)
        return trainer.callback_metrics["val_acc"].item()

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            records.add("complete", trial.user_attrs["epochs"], trial.value, trial.user_attrs["flops"])
        elif trial.state == optuna.trial.TrialState.PRUNED:
            records.add("pruned", len(trial.intermediate_values))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, timeout=max(0.0, deadline - time.time()), callbacks=[record])


def neps_space(plan: StudyPlan) -> Any:
    """automl's mlp and cnn knobs (flat: a config carries both, its family uses its own) and training ranges."""
    import neps

    train = plan.config.train
    domains = {
        "family": neps.Categorical(tuple(plan.families)),
        "mlp_depth": neps.Integer(1, 4), "mlp_width": neps.Categorical(tuple(WIDTHS)),
        "mlp_activation": neps.Categorical(("relu", "gelu")),
        "mlp_norm": neps.Categorical(tuple(NORMALIZATIONS)), "mlp_dropout": neps.Float(0.0, 0.5),
        "cnn_blocks": neps.Integer(1, 4), "cnn_channels": neps.Categorical(tuple(BASE_CHANNELS)),
        "cnn_kernel": neps.Categorical((3, 5)), "cnn_norm": neps.Categorical(("none", "batch")),
        "cnn_pool": neps.Categorical(("max", "avg")),
        "optimizer": neps.Categorical(tuple(train.optimizer)), "lr": neps.Float(*train.lr, log=True),
        "weight_decay": neps.Float(*train.weight_decay, log=True),
        "batch_size": neps.Categorical(tuple(train.batch_size)),
        "epochs": neps.IntegerFidelity(1, train.max_epochs),
    }
    space = neps.PipelineSpace()
    for name, domain in domains.items():
        setattr(space, name, domain)
    return space


def fit(model: nn.Module, data: PreparedData, config: dict[str, Any], seed: int) -> float:
    """Train for ``config["epochs"]`` shuffled epochs from scratch; the validation accuracy at the end."""
    optimizer = OPTIMIZERS[config["optimizer"]](model.parameters(), lr=config["lr"],
                                                weight_decay=config["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    x, y, batch_size = data.train.x, data.train.y, config["batch_size"]
    for _ in range(config["epochs"]):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        # A last batch of one sample would break batch norm; it is left out.
        for start in range(0, len(y) - (len(y) % batch_size == 1), batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return accuracy(model, data.val.x, data.val.y)


def run_neps(plan: StudyPlan, seed: int, folder: Path, records: Records) -> None:
    import neps

    data = plan.data
    # NePS draws from the global generators; it takes no seed of its own.
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    evaluations = 0

    def evaluate(**config: Any) -> dict[str, Any]:
        nonlocal evaluations
        evaluations += 1
        family = config["family"]
        params = {key.removeprefix(f"{family}_"): value for key, value in config.items()
                  if key.startswith(f"{family}_")}
        torch.manual_seed(seed + evaluations)
        model = plan.families[family].build(params, data.task)
        flops = flops_per_sample(model, data.train.x[:1])
        val_accuracy = fit(model, data, config, seed + evaluations)
        records.add("complete", config["epochs"], val_accuracy, flops)
        return {"objective_to_minimize": [1.0 - val_accuracy, math.log10(max(flops, 1))]}

    # No budget of NePS's own: vs_peers.py ends the process at its deadline (NePS warns of that).
    warnings.filterwarnings("ignore", message="None of the following were set")
    neps.run(evaluate, neps_space(plan), root_directory=folder / "neps", overwrite_root_directory=True,
             optimizer="moasha")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tool", choices=["optuna", "neps"])
    parser.add_argument("study_file", type=Path, help="the study file automl runs: data, split, seed, families")
    parser.add_argument("--budget", type=float, required=True, help="seconds from --started")
    parser.add_argument("--started", type=float, required=True, help="time.time() when the process was launched")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file of finished evaluations")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    plan = plan_study(load_study_file(args.study_file), args.study_file, registry())
    with args.out.open("a", encoding="utf-8") as file:
        records = Records(file, args.started)
        if args.tool == "optuna":
            run_optuna(plan, plan.config.seed, args.started + args.budget, records)
        else:
            run_neps(plan, plan.config.seed, args.out.parent, records)


if __name__ == "__main__":
    main()
