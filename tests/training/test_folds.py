"""Cross-validated trials: one model per fold trained in lockstep, their means and spread, the
ranked signal that breaks accuracy ties by loss, and the final model on every non-test row."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, write_study
from datafiles import labels

from automl.config import DataConfig
from automl.data.prepare import prepare
from automl.plugin.registry import registry
from automl.results.retrain import _merged
from automl.search.moasha import MOASHAPruner
from automl.search.signal import ranked_accuracy
from automl.training.loop import TrainingParams, train
from automl.training.progress import Checkpoint, Progress
from automl_plugins.cnn import CNNFamily
from automl_plugins.mlp import MLPFamily

PARAMS = TrainingParams(optimizer="adam", lr=1e-2, weight_decay=0.0, batch_size=16)
MLP = {"depth": 1, "width": 16, "activation": "relu", "norm": "none", "dropout": 0.0}


def _small_sequences(tmp_path: Path):
    y = labels(2, 30)
    x = np.random.default_rng(0).normal(size=(60, 16, 1)).astype(np.float32) + y[:, None, None]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return prepare(DataConfig(dataset="npz", path=str(tmp_path / "d.npz")), registry(), 0)


def test_folds_train_in_lockstep_and_report_means(tmp_path: Path) -> None:
    data = _small_sequences(tmp_path)
    assert len(data.folds) == 3
    torch.manual_seed(0)
    model = MLPFamily().build(MLP, data.task)
    progress = Progress()
    result = train(model, data, PARAMS, torch.device("cpu"), "32-true", 3, seed=0, progress=progress)
    assert result.epochs == 3 and len(result.val_curve) == len(result.val_loss_curve) == 3
    assert len(result.fold_accuracies) == 3
    assert result.val_accuracy == pytest.approx(sum(result.fold_accuracies) / 3)
    assert result.val_accuracy > 0.8 and result.test_accuracy is not None and result.test_accuracy > 0.8
    # The checkpoint holds every fold's model, the first being the model passed in.
    checkpoint = progress.checkpoint
    assert checkpoint is not None and len(checkpoint.fold_states()) == 3
    restored = Checkpoint.from_bytes(checkpoint.to_bytes())
    assert len(restored.other_folds) == 2 and restored.val_loss_curve == result.val_loss_curve
    first = restored.model_state
    assert all(torch.equal(first[key], value) for key, value in model.state_dict().items())


def test_the_final_model_trains_on_every_non_test_row(tmp_path: Path) -> None:
    data = _small_sequences(tmp_path)
    merged = _merged(data)
    assert not merged.folds and len(merged.train.y) == len(data.train.y) + len(data.val.y)


def test_no_test_split_reports_no_test_accuracy(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32), y=labels(2, 20))
    data = prepare(DataConfig(dataset="npz", path=str(tmp_path / "d.npz"), test_size=0, folds=1), registry(), 0)
    result = train(MLPFamily().build(MLP, data.task), data, PARAMS, torch.device("cpu"), "32-true", 1, seed=0)
    assert result.test_accuracy is None and math.isfinite(result.val_accuracy)


def test_ranked_accuracy_breaks_ties_by_loss_and_keeps_accuracy_order() -> None:
    samples = 50
    assert ranked_accuracy(1.0, 0.01, samples) > ranked_accuracy(1.0, 0.5, samples)
    # One sample more right outweighs any loss.
    assert ranked_accuracy(1.0, 50.0, samples) > ranked_accuracy(49 / 50, 0.0, samples)
    assert ranked_accuracy(0.9, None, samples) == 0.9


def test_moasha_keeps_the_surer_of_two_tied_models() -> None:
    pruner = MOASHAPruner(["flops"], max_epochs=9, min_epochs=1, reduction_factor=2)
    attrs = {"val_curve": [1.0], "flops": 100.0, "val_samples": 20}
    sure, unsure = ({**attrs, "val_loss_curve": [loss]} for loss in (0.05, 0.9))
    assert pruner.point(sure, 1) < pruner.point(unsure, 1)  # a lower point is better


@pytest.mark.parametrize("params", [
    {"blocks": 3, "channels": 16, "kernel": "8-5-3", "norm": "batch", "convs": 1, "residual": False, "pool": "none"},
    {"blocks": 3, "channels": 8, "kernel": "8-5-3", "norm": "batch", "convs": 3, "residual": True, "pool": "none"},
], ids=["fcn", "resnet"])
def test_time_series_fcn_and_resnet_keep_the_length_and_classify(params: dict) -> None:
    from automl.plugin.task import Task

    task = Task("sequence", (37, 2), 4)
    model = CNNFamily().build(params, task)
    convs = [layer for layer in model.modules() if isinstance(layer, torch.nn.Conv1d) and layer.kernel_size[0] > 1]
    assert [conv.kernel_size[0] for conv in convs] == ([8, 5, 3] if params["convs"] == 1 else [8, 5, 3] * 3)
    assert model(torch.randn(5, 37, 2)).shape == (5, 4)
    body = model[1:]  # after the time-as-channels transpose
    features = body[:-3](torch.randn(5, 2, 37))
    assert features.shape[-1] == 37  # no pooling, "same" padding: every step kept to the global pooling


def test_retrain_without_a_test_split_and_of_a_cross_validated_trial(tmp_path: Path) -> None:
    """`automl retrain` with test_size = 0 says there is no test split (it failed an assertion);
    with folds, the trial's stored test accuracy is named as its fold models' mean, and `automl
    export`'s JSON gives the test accuracy of the model it exports (trained on every non-test row)."""
    rng = np.random.default_rng(0)
    y = labels(2, 12)
    np.savez(tmp_path / "d.npz", x=(rng.normal(size=(24, 3)) + y[:, None]).astype(np.float32), y=y)
    for name, keys in (("none", "test_size = 0\n            folds = 1"), ("cv", "folds = 2")):
        study = write_study(tmp_path, f"""
            name = "{name}"
            n_trials = 1
            storage = "sqlite:///{tmp_path / 'small.db'}"
            [data]
            dataset = "npz"
            path = "d.npz"
            {keys}
            [search]
            families = ["mlp"]
            [train]
            max_epochs = 1
        """, name=f"{name}.toml")
        run = run_cli("run", str(study), "--no-progress", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        retrained = run_cli("retrain", name, "--storage", f"sqlite:///{tmp_path / 'small.db'}", "--trial", "0",
                            cwd=tmp_path)
        assert retrained.returncode == 0, retrained.stderr
        if name == "none":
            assert "retrained on train+validation (24 samples, 1 epochs): no test split" in retrained.stdout
        else:
            fold_mean = r"test accuracy ([01]\.\d{4}) \(the mean of its 2 fold models: [01]\.\d{4}\)"
            found = re.search(fold_mean, retrained.stdout)
            assert found, retrained.stdout
            # export trains the same model on every non-test row; its JSON measures that model.
            exported = run_cli("export", name, "--storage", f"sqlite:///{tmp_path / 'small.db'}", "--trial", "0",
                               "--format", "state_dict", "--out", str(tmp_path / "out"), cwd=tmp_path)
            assert exported.returncode == 0, exported.stderr
            described = json.loads((tmp_path / "out" / "trial0.state_dict.pt.json").read_text())
            assert described["weights"] == "trained on every non-test row (cross-validated trial)"
            measured = described["measured"]
            assert measured["train_samples"] == 20 and "val_accuracy" not in measured
            assert measured["test_accuracy"] == pytest.approx(float(found[1]), abs=1e-4)
