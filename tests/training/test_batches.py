"""In-memory mini-batches: every sample once per epoch, reshuffled, no one-sample batch."""

from __future__ import annotations

import torch

from automl.training.batches import TensorBatches


def test_shuffled_batches_cover_every_sample_once_and_reshuffle() -> None:
    x = torch.arange(10).float().unsqueeze(1)
    batches = TensorBatches(x, torch.arange(10), batch_size=4, shuffle=True, seed=0)
    epochs = [[y.tolist() for _, y in batches] for _ in range(2)]
    assert len(batches) == 3 == len(epochs[0])
    for epoch in epochs:
        assert sorted(sum(epoch, [])) == list(range(10))
    assert epochs[0] != epochs[1]
    for features, labels in batches:
        assert torch.equal(features.squeeze(1).long(), labels)


def test_a_trailing_single_sample_batch_is_skipped_only_when_shuffling() -> None:
    x, y = torch.zeros(9, 2), torch.arange(9)
    assert [len(b) for b, _ in TensorBatches(x, y, 4, shuffle=True)] == [4, 4]
    assert [len(b) for b, _ in TensorBatches(x, y, 4, shuffle=False)] == [4, 4, 1]
