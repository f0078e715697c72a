"""Built-in datasets: scikit-learn's digits and a generated waveform sequence task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import automl
from automl import DatasetOptions, LabeledArrays, RawInputs


class Digits:
    """8x8 images of handwritten digits that ship with scikit-learn (1,797 samples, 10 classes)."""

    name = "digits"
    options = DatasetOptions

    def load(self, seed: int, options: DatasetOptions) -> LabeledArrays:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
        raw = RawInputs(scale=1 / 16, description="pixel values 0..16 of an 8x8 image as [1, 8, 8], as "
                        "sklearn.datasets.load_digits() gives them (its images[i])")
        return LabeledArrays(images, bunch.target.astype(np.int64), "image", raw=raw)


class Waveforms:
    """Noisy sine, square, sawtooth and triangle waves, 64 steps x 2 channels, generated from the seed.

    The second channel is the first one delayed by a random lag, so order matters across channels.
    """

    name = "waveforms"
    options = DatasetOptions
    samples_per_class = 400
    steps = 64

    def load(self, seed: int, options: DatasetOptions) -> LabeledArrays:
        rng = np.random.default_rng(seed)
        n = 4 * self.samples_per_class
        labels = np.repeat(np.arange(4), self.samples_per_class)
        time = np.linspace(0.0, 1.0, self.steps, dtype=np.float32)
        frequency = rng.uniform(1.5, 6.0, size=(n, 1))
        phase = rng.uniform(0.0, 1.0, size=(n, 1))
        lag = rng.uniform(0.02, 0.2, size=(n, 1))
        channels = [self._wave(labels, frequency * time + phase + shift) for shift in (0.0, -lag)]
        x = np.stack(channels, axis=-1) + rng.normal(0.0, 0.6, size=(n, self.steps, 2))
        order = rng.permutation(n)
        return LabeledArrays(x[order].astype(np.float32), labels[order], "sequence")

    @staticmethod
    def _wave(labels: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        fraction = cycles % 1.0
        shapes = np.stack([
            np.sin(2 * np.pi * cycles),
            np.where(fraction < 0.5, 1.0, -1.0),
            2.0 * fraction - 1.0,
            4.0 * np.abs(fraction - 0.5) - 1.0,
        ])
        return shapes[labels, np.arange(len(labels))]


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(Digits())
    register(Waveforms())
