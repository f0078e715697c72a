"""One real training epoch for every registered family, on real digits and waveform data."""

from __future__ import annotations

import copy
import math

import optuna
import pytest
import torch

from automl.batches import TensorBatches
from automl.config import DataConfig
from automl.data import PreparedData, Split, prepare
from automl.efficiency import flops_per_sample
from automl.plugins import registry
from automl.space import sample_params
from automl.training import TrainingParams, train

PARAMS = TrainingParams(optimizer="adam", lr=3e-3, weight_decay=0.0, batch_size=64)


def _small(data: PreparedData, count: int = 256) -> PreparedData:
    """The first ``count`` samples of each split, so every family trains an epoch in seconds."""
    cut = lambda split: Split(split.x[:count], split.y[:count])  # noqa: E731
    return PreparedData(data.task, cut(data.train), cut(data.val), cut(data.test))


DATA = {"image": "digits", "sequence": "waveforms"}
CASES = [(family, kind) for family, registered in registry().families.items()
         for kind in DATA if kind in registered.obj.task_kinds]


@pytest.mark.parametrize(("family_name", "kind"), CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_one_epoch_trains_every_family(family_name: str, kind: str) -> None:
    data = _small(prepare(DataConfig(dataset=DATA[kind]), registry(), 0))
    family = registry().family(family_name)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    model = family.build(sample_params(family, trial, data.task), data.task)
    before = [p.detach().clone() for p in model.parameters()]
    assert flops_per_sample(model, data.train.x[:1]) > 0
    result = train(model, data, PARAMS, torch.device("cpu"), "32-true", max_epochs=1, seed=0)
    assert result.epochs == 1 and len(result.val_curve) == 1
    assert 0.0 <= result.val_accuracy <= 1.0 and 0.0 <= result.test_accuracy <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no weight changed"
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_one_epoch_matches_a_plain_loop() -> None:
    """Same seed, same batches: the Lightning path ends at the weights a plain loop reaches."""
    data = _small(prepare(DataConfig(), registry(), 0), count=512)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                    torch.nn.Linear(32, 10))
    model = copy.deepcopy(reference)
    optimizer = torch.optim.Adam(reference.parameters(), lr=PARAMS.lr)
    losses = []
    for x, y in TensorBatches(data.train.x, data.train.y, PARAMS.batch_size, shuffle=True, seed=7):
        loss = torch.nn.functional.cross_entropy(reference(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    result = train(model, data, PARAMS, torch.device("cpu"), "32-true", max_epochs=1, seed=7)
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert losses[-1] < losses[0] and math.isfinite(losses[-1])
    assert result.val_accuracy > 0.25  # chance is 0.1; eight steps are a start, not a model
