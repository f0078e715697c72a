"""One real training epoch for every registered family on every kind it declares, on real data."""

from __future__ import annotations

import copy
import math

import optuna
import pytest
import torch

from automl.training.batches import LoaderBatches, TensorBatches
from automl.config import DataConfig
from automl.data.prepare import PreparedData, Split, prepare
from automl.training.efficiency import flops_per_sample
from automl.plugin.registry import registry
from automl.plugin.space import sample_params
from automl.training.device import fits_on_device, on_device
from automl.training.loop import NonFiniteLoss, TrainingParams, train
from conftest import DEVICES, REPO

PARAMS = TrainingParams(optimizer="adam", lr=3e-3, weight_decay=0.0, batch_size=64)


def _small(data: PreparedData, count: int = 256) -> PreparedData:
    """The first ``count`` samples of each split, so every family trains an epoch in seconds."""
    cut = lambda split: Split(split.x[:count], split.y[:count])  # noqa: E731
    return PreparedData(data.task, cut(data.train), cut(data.val), cut(data.test))


EXAMPLE_DATA = REPO / "examples" / "data"
DATA = {"image": DataConfig(dataset="digits"), "sequence": DataConfig(dataset="waveforms"),
        "tabular": DataConfig(dataset="csv", path=str(EXAMPLE_DATA / "wine.csv")),
        "tokens": DataConfig(dataset="text", path=str(EXAMPLE_DATA / "reviews.tsv"), max_length=12)}
CASES = [(family, kind) for family, registered in registry().families.items()
         for kind in DATA if kind in registered.obj.task_kinds]


@pytest.mark.parametrize(("family_name", "kind"), CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_one_epoch_trains_every_family(family_name: str, kind: str) -> None:
    data = _small(prepare(DATA[kind], registry(), 0))
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


TRAJECTORY_CASES = [pytest.param(on_device, *device.values, marks=device.marks,
                                 id=f"{'device-slices' if on_device else 'dataloader'}-{device.id}")
                    for device in DEVICES for on_device in (True, False)]


@pytest.mark.parametrize(("data_on_device", "device"), TRAJECTORY_CASES)
def test_fast_path_follows_the_plain_loop_trajectory(data_on_device: bool, device: torch.device) -> None:
    """Same seed, same batches: per-epoch losses and final weights match a plain PyTorch loop.

    Both batch sources are checked: slices of on-device tensors, and the DataLoader (with a
    worker process) that streams splits too large for the device.
    """
    data = _small(prepare(DataConfig(), registry(), 0), count=512)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                    torch.nn.Linear(32, 10)).to(device)
    model = copy.deepcopy(reference)
    optimizer = torch.optim.Adam(reference.parameters(), lr=PARAMS.lr)
    batches = (TensorBatches(data.train.x.to(device), data.train.y.to(device), PARAMS.batch_size, shuffle=True, seed=7)
               if data_on_device else LoaderBatches(data.train.x, data.train.y, PARAMS.batch_size, True, device, 0, seed=7))
    plain_curve = []
    for _ in range(3):
        losses = []
        for x, y in batches:
            loss = torch.nn.functional.cross_entropy(reference(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        plain_curve.append(sum(losses) / len(losses))
    result = train(model, data, PARAMS, device, "32-true", max_epochs=3, seed=7,
                   data_on_device=data_on_device, loader_workers=1)
    assert result.train_loss_curve == pytest.approx(plain_curve, rel=1e-5)
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert plain_curve[-1] < plain_curve[0] and math.isfinite(plain_curve[-1])
    assert result.val_accuracy > 0.5 and len(result.val_curve) == 3
    assert result.train_s > 0 and result.validate_s > 0


def test_splits_move_to_the_device_once_per_process() -> None:
    data = prepare(DataConfig(), registry(), 0)
    assert on_device(data, torch.device("cpu")) is on_device(data, torch.device("cpu"))
    assert fits_on_device(data, torch.device("cpu")), "on the CPU the splits are in memory already"


def test_non_finite_loss_stops_training_at_once() -> None:
    data = _small(prepare(DataConfig(), registry(), 0))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight.fill_(float("inf"))
    recorder = EpochRecorder()
    with pytest.raises(NonFiniteLoss, match="in epoch 0"):
        train(model, data, PARAMS, torch.device("cpu"), "32-true", max_epochs=3, seed=0, callbacks=[recorder])
    assert recorder.seen == []


class EpochRecorder:
    """A Fabric callback that records each validation and raises after ``stop_at`` epochs."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.seen: list[tuple[int, float]] = []
        self.stop_at = stop_at

    def on_validation_epoch_end(self, epoch: int, val_accuracy: float) -> None:
        self.seen.append((epoch, val_accuracy))
        if len(self.seen) == self.stop_at:
            raise StopIteration("pruned")


def test_epoch_callback_sees_every_epoch_and_can_stop_training() -> None:
    data = _small(prepare(DataConfig(), registry(), 0))
    recorder = EpochRecorder(stop_at=2)
    with pytest.raises(StopIteration):
        train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), data, PARAMS,
              torch.device("cpu"), "32-true", max_epochs=5, seed=0, callbacks=[recorder])
    seen = recorder.seen
    assert [epoch for epoch, _ in seen] == [0, 1] and all(0 <= a <= 1 for _, a in seen)


def test_augmented_training_runs_on_images() -> None:
    data = _small(prepare(DataConfig(), registry(), 0))
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 10))
    result = train(model, data, PARAMS, torch.device("cpu"), "32-true", max_epochs=2, seed=0, augment=True)
    assert result.epochs == 2 and all(math.isfinite(v) for v in result.train_loss_curve)
