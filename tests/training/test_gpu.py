"""The GPU path on a real GPU: bf16 autocast, channels-last convolutions, cudnn autotuning,
torch.compile, and small trials packed on one GPU. Skipped where there is no GPU (CI has none)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

from automl.config import DataConfig
from automl.data.prepare import prepare
from automl.plugin.registry import registry
from automl.training.device import resolve_precision
from automl.training.loop import TrainingParams, train
from conftest import NEEDS_GPU, run_cli, write_study

pytestmark = NEEDS_GPU
CUDA = torch.device("cuda")
PARAMS = TrainingParams(optimizer="adam", lr=3e-3, weight_decay=0.0, batch_size=64)


def test_images_train_in_bf16_channels_last_with_autotuned_convolutions() -> None:
    data = prepare(DataConfig(), registry(), 0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    seen: list[tuple[torch.dtype, bool]] = []
    # The second convolution's input has 16 channels, so its layout tells channels-last apart.
    model[2].register_forward_hook(lambda _module, inputs, output: seen.append(
        (output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last))))
    torch.backends.cudnn.benchmark = False
    assert resolve_precision("auto", CUDA) == "bf16-mixed"
    result = train(model, data, PARAMS, CUDA, "auto", max_epochs=4, seed=0, augment=True)
    assert torch.backends.cudnn.benchmark
    assert model[2].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[2].weight.dtype == torch.float32, "autocast, not a bf16 copy of the weights"
    assert seen and all(dtype == torch.bfloat16 and channels_last for dtype, channels_last in seen)
    assert all(math.isfinite(loss) for loss in result.train_loss_curve)
    assert result.train_loss_curve[-1] < result.train_loss_curve[0]
    assert result.val_accuracy > 0.3  # ten classes: chance is 0.1


def test_compiled_model_trains_and_keeps_its_state_dict_keys() -> None:
    data = prepare(DataConfig(), registry(), 0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    keys = list(model.state_dict())
    result = train(model, data, PARAMS, CUDA, "auto", max_epochs=3, seed=0, compile=True)
    assert model._compiled_call_impl is not None, "train(compile=True) did not compile the model"
    assert list(model.state_dict()) == keys, "export reads these keys"
    assert result.train_loss_curve[-1] < result.train_loss_curve[0]
    assert result.val_accuracy > 0.5


def test_trials_per_gpu_packs_workers_on_one_gpu(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'packed.db'}"
    study_file = write_study(tmp_path, f"""
        name = "packed"
        n_trials = 12
        storage = "{url}"
        [search]
        families = ["mlp", "cnn"]
        [train]
        max_epochs = 2
        [workers]
        trials_per_gpu = 2
    """)
    run = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # Each worker announces itself as "worker HOST:PID: ...": the host is the same, the PIDs differ.
    started = set(re.findall(r"^worker (\S+:\d+):", run.stderr, re.MULTILINE))
    assert len(started) == 2, run.stderr
    trials = optuna.load_study(study_name="packed", storage=url).trials
    assert len(trials) == 12
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    assert {t.user_attrs["device"] for t in trials} == {"cuda"}
    assert all(t.user_attrs["peak_memory_mb"] > 0 for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "one worker ran every trial"
