"""Small data's training budget: more epochs, smaller batches and a cosine learning rate, for
the keys a study file leaves out; data of a thousand rows or more keeps the defaults."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import labels

from automl.config import DataConfig, StudyConfig
from automl.data.prepare import prepare
from automl.plugin.registry import registry
from automl.search.small_data import EPOCH_SAMPLES, MAX_SCALED_EPOCHS, SMALL_BATCH_SIZES, SMALL_LR, scaled_for_data
from automl.training.loop import TrainingParams, scheduled_lr, train
from automl.training.progress import Progress
from automl_plugins.mlp import MLPFamily


@pytest.fixture
def small(tmp_path: Path):
    y = labels(2, 30)
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32) + y[:, None], y=y)
    return prepare(DataConfig(dataset="npz", path=str(tmp_path / "d.npz")), registry(), 0)


def test_small_data_gets_epochs_small_batches_and_a_cosine_unless_the_file_sets_them(small) -> None:
    config, notes = scaled_for_data(StudyConfig(name="s"), small)
    rows = len(small.train.y)
    assert config.train.max_epochs == min(MAX_SCALED_EPOCHS, EPOCH_SAMPLES // rows)
    assert config.search.min_epochs == config.train.max_epochs // 30
    assert config.train.batch_size == SMALL_BATCH_SIZES and config.train.lr_schedule == "cosine"
    assert config.train.lr == SMALL_LR
    assert notes == [f"small data ({rows} training rows): up to {config.train.max_epochs} epochs per trial, first "
                     f"rung at {config.search.min_epochs}, batches of 8 or 16, lr in [0.001, 0.01], a cosine "
                     "learning-rate decay; [train] max_epochs, [train] batch_size, [train] lr, [train] lr_schedule, "
                     "[search] min_epochs set them"]
    chosen = StudyConfig(name="s", train={"max_epochs": 5, "batch_size": [64], "lr": [1e-4, 1e-3],
                                          "lr_schedule": "constant"})
    kept, notes = scaled_for_data(chosen, small)
    assert kept.train == chosen.train and kept.search.min_epochs == 1 and notes == []


def test_a_thousand_rows_or_more_keep_the_defaults() -> None:
    digits = prepare(DataConfig(), registry(), 0)
    assert len(digits.train.y) >= 1000
    config = StudyConfig(name="d")
    assert scaled_for_data(config, digits) == (config, [])


def test_the_cosine_decays_the_lr_over_the_epochs_and_a_resumed_training_goes_on_along_it(small) -> None:
    assert [scheduled_lr(0.1, "cosine", epoch, 4) for epoch in range(4)] == pytest.approx(
        [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2])
    assert scheduled_lr(0.1, "constant", 3, 4) == 0.1
    params = TrainingParams(optimizer="adam", lr=0.1, weight_decay=0.0, batch_size=16)
    model = MLPFamily().build({"depth": 1, "width": 8, "activation": "relu", "norm": "none", "dropout": 0.0},
                              small.task)
    first = Progress()
    train(model, small, params, torch.device("cpu"), "32-true", 2, seed=0, progress=first, lr_schedule="cosine")
    resumed = Progress()
    train(model, small, params, torch.device("cpu"), "32-true", 4, seed=0, progress=resumed, lr_schedule="cosine",
          resume=first.checkpoint)
    for progress, last_epoch, epochs in ((first, 1, 2), (resumed, 3, 4)):  # each checkpoint: its last epoch's lr
        assert progress.checkpoint is not None
        lr = progress.checkpoint.optimizer_state["param_groups"][0]["lr"]
        assert lr == pytest.approx(scheduled_lr(0.1, "cosine", last_epoch, epochs))
