"""Batch augmentation on the device: random crops of the padded image, half of them mirrored."""

from __future__ import annotations

import pytest
import torch

from automl.training.augment import random_crop_flip
from conftest import DEVICES


@pytest.mark.parametrize("device", DEVICES)
def test_without_padding_each_image_is_itself_or_its_mirror(device: torch.device) -> None:
    images = torch.randn(64, 3, 8, 8, device=device)
    out = random_crop_flip(images, padding=0, generator=torch.Generator(device).manual_seed(0))
    assert out.device == images.device
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 10 < int(mirrored.sum()) < 54, "about half the batch should be flipped"


@pytest.mark.parametrize("device", DEVICES)
def test_crops_are_windows_of_the_padded_image(device: torch.device) -> None:
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32, device=device).reshape(2, 1, 6, 6)
    out = random_crop_flip(images, padding=2, generator=torch.Generator(device).manual_seed(3))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect")
    for index in range(2):
        windows = [padded[index, :, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        candidates = windows + [w.flip(-1) for w in windows]
        assert any(torch.equal(out[index], window) for window in candidates)
    assert out.shape == images.shape


def test_same_generator_seed_same_augmentation() -> None:
    images = torch.randn(8, 1, 8, 8)
    first = random_crop_flip(images, 2, torch.Generator().manual_seed(5))
    second = random_crop_flip(images, 2, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)
