"""Two choices inside a trial, each timed side by side against the usual way in one run.

- The learning-curve PNG every trial uploads: drawn with Pillow (automl.search.curve_image) against the
  same figure drawn with matplotlib.
- The optimizer step: the multi-tensor (foreach) Adam kernels automl uses on the CPU too, against
  PyTorch's CPU default (one tensor at a time), on each family's median-sized model for digits.
- The training step (forward, backward, optimizer step on a batch of 64), on the same models:
  automl's step (automl.training.loop.step_function) against the same step through Fabric's autocast,
  backward and optimizer wrappers.

Prints milliseconds per call and the ratio (usual / automl) for each.

    python benchmarks/trial_parts.py     # well under a minute on 2 cores
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import optuna
import torch
from matplotlib.figure import Figure

from automl.training.classifier import Classifier, TrainingParams
from automl.config import DataConfig
from automl.search.curve_image import draw_curve
from automl.data.prepare import prepare
from automl.training.efficiency import count_parameters
from automl.plugin.registry import registry
from automl.plugin.space import sample_params
from automl.training.loop import step_function

REPEATS = 7


def median_ms(call: Callable[[], None], repeats: int = REPEATS) -> float:
    call()  # warm-up
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


def matplotlib_curve(accuracy: list[float], loss: list[float], path: Path) -> None:
    """The figure as matplotlib draws it: two axes, markers, a constrained layout."""
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    axis = figure.subplots()
    epochs = range(1, len(accuracy) + 1)
    axis.plot(epochs, accuracy, marker="o", color="tab:blue")
    axis.set(xlabel="epoch", title="trial 0 (mlp)")
    axis.set_ylabel("validation accuracy", color="tab:blue")
    loss_axis = axis.twinx()
    loss_axis.plot(epochs, loss, marker=".", color="tab:orange")
    loss_axis.set_ylabel("training loss", color="tab:orange")
    figure.savefig(path, dpi=100)


def median_model(family, task) -> torch.nn.Module:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    models = []
    for _ in range(7):
        trial = study.ask()
        models.append(family.build(sample_params(family, trial, task), task))
        study.tell(trial, 0.0)
    return sorted(models, key=count_parameters)[len(models) // 2]


def training_steps(model: torch.nn.Module, task, x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], None]]:
    """A step through Fabric's wrappers (``usual``) and automl's step, on one set-up model."""
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="32-true", loggers=[])
    module, optimizer = fabric.setup(*_module_and_optimizer(model, task))
    classifier = module.module
    automl_step = step_function(fabric, classifier, optimizer, "32-true")

    def usual() -> None:
        with fabric.autocast():
            loss = classifier.training_step((x, y), 0)
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(loss)
        optimizer.step()

    return {"usual": usual, "automl": lambda: automl_step((x, y), 0)}


def _module_and_optimizer(model: torch.nn.Module, task) -> tuple[Classifier, torch.optim.Optimizer]:
    module = Classifier(model, task.num_classes, TrainingParams("adam", 1e-3, 0.0, 64))
    return module, module.configure_optimizers()


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    print(f"{'what':<40} {'usual ms':>9} {'automl ms':>10} {'ratio':>6}")
    accuracy = [0.5 + epoch / 50 for epoch in range(20)]
    loss = [2.0 - epoch / 20 for epoch in range(20)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "curve.png"
        usual = median_ms(lambda: matplotlib_curve(accuracy, loss, path))
        ours = median_ms(lambda: draw_curve(accuracy, loss, "trial 0 (mlp)", path))
    print(f"{'learning-curve PNG':<40} {usual:>9.2f} {ours:>10.2f} {usual / ours:>6.2f}")
    data = prepare(DataConfig(), registry(), 0)
    task = data.task
    x, y = data.train.x[:64], data.train.y[:64]
    for name, registered in registry().families.items():
        model = median_model(registered.obj, task)
        for parameter in model.parameters():
            parameter.grad = torch.randn_like(parameter)
        steps = {foreach: torch.optim.Adam(model.parameters(), lr=1e-3, foreach=foreach).step
                 for foreach in (False, True)}
        usual, ours = median_ms(steps[False], 50), median_ms(steps[True], 50)
        label = f"Adam step, {name} ({count_parameters(model):,} params)"
        print(f"{label:<40} {usual:>9.3f} {ours:>10.3f} {usual / ours:>6.2f}")
        # Alternated in rounds, so both see the same machine; the median round is kept.
        steps = training_steps(model, task, x, y)
        rounds = [(median_ms(steps["usual"], 30), median_ms(steps["automl"], 30)) for _ in range(REPEATS)]
        usual, ours = (statistics.median(r[i] for r in rounds) for i in (0, 1))
        label = f"training step, {name}"
        print(f"{label:<40} {usual:>9.3f} {ours:>10.3f} {usual / ours:>6.2f}")


if __name__ == "__main__":
    main()
