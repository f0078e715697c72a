"""DatasetConformance on small datasets defined here and on every built-in one (the torchvision sets
by MNIST, read from files), and the checks failing on broken datasets (a suite that cannot fail
checks nothing)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from pydantic import ConfigDict, Field

import automl
from automl import conformance
from automl.testing import ConformanceError, DatasetConformance, registry
from datafiles import labels, write_mnist, write_npz, write_pngs, write_table


class GaussiansOptions(automl.DatasetOptions):
    classes: int = Field(3, ge=2)


class Gaussians:
    """One Gaussian blob per class in 4 features, drawn from the seed."""

    name = "gaussians"
    options = GaussiansOptions

    def load(self, seed: int, options: GaussiansOptions) -> automl.LabeledArrays:
        rng = np.random.default_rng(seed)
        y = np.repeat(np.arange(options.classes), 30)
        return automl.LabeledArrays(rng.normal(size=(len(y), 4)).astype(np.float32) + y[:, None], y, "tabular")


class TestGaussians(DatasetConformance):
    dataset = Gaussians()

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict:
        return {"classes": 4}


class TestDigits(DatasetConformance):
    dataset = registry().datasets["digits"].obj


class TestCsv(DatasetConformance):
    """A file dataset: the file is written first and named relative to tmp_path."""

    dataset = registry().datasets["csv"].obj

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict:
        rows = [f"{i % 7},{i % 5 / 2},{'small' if i % 2 else 'large'}" for i in range(40)]
        (tmp_path / "table.csv").write_text("width,height,size\n" + "\n".join(rows) + "\n")
        return {"path": "table.csv", "label": "size"}


class TestWaveforms(DatasetConformance):
    dataset = registry().datasets["waveforms"].obj


class TestNpz(DatasetConformance):
    dataset = registry().datasets["npz"].obj

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict:
        y = labels(3, 20)
        x = np.random.default_rng(0).normal(size=(len(y), 1, 4, 4)) + y[:, None, None, None]
        write_npz(tmp_path / "bars.npz", x.astype(np.float32), y)
        return {"path": "bars.npz"}


class TestText(DatasetConformance):
    dataset = registry().datasets["text"].obj

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict:
        rows = [[f"{'good fine' if label else 'bad poor'} film {i}", ["neg", "pos"][label]]
                for i, label in enumerate(labels(2, 30))]
        write_table(tmp_path / "reviews.tsv", ["text", "label"], rows)
        return {"path": "reviews.tsv", "max_length": 8}


class TestImageFolder(DatasetConformance):
    dataset = registry().datasets["imagefolder"].obj

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict:
        write_pngs(tmp_path / "shapes", {"dark": 20, "light": 20})
        return {"path": "shapes"}


class TestMnist(DatasetConformance):
    """A torchvision dataset, read from its files in torchvision's layout (never downloaded here)."""

    dataset = registry().datasets["mnist"].obj

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict:
        write_mnist(tmp_path / "root", train=100, test=40)
        return {"path": "root"}


class Unseeded(Gaussians):
    name = "unseeded"

    def load(self, seed: int, options: GaussiansOptions) -> automl.LabeledArrays:
        return super().load(int(np.random.default_rng().integers(1 << 30)), options)


class LooseOptions(GaussiansOptions):
    model_config = ConfigDict(extra="allow")


class Loose(Gaussians):
    name = "loose"
    options = LooseOptions


class OneClass(Gaussians):
    name = "oneclass"

    def load(self, seed: int, options: GaussiansOptions) -> automl.LabeledArrays:
        arrays = super().load(seed, options)
        return automl.LabeledArrays(arrays.x, np.zeros_like(arrays.y), "tabular")


class Tuples(Gaussians):
    name = "tuples"

    def load(self, seed: int, options: GaussiansOptions) -> tuple:
        arrays = super().load(seed, options)
        return arrays.x, arrays.y


class DictOptions(Gaussians):
    name = "dictoptions"
    options = {"classes": 3}


def _must_fail(test):
    """``test`` from the suite, expected to fail with ConformanceError (strict: passing fails it)."""
    @functools.wraps(test)
    def failing(*args, **kwargs):
        return test(*args, **kwargs)
    return pytest.mark.xfail(strict=True, raises=ConformanceError, reason="a broken dataset")(failing)


class TestUnseededFailsTheSuite(DatasetConformance):
    dataset = Unseeded()
    test_same_seed_same_arrays = _must_fail(DatasetConformance.test_same_seed_same_arrays)


def test_each_broken_dataset_fails_its_check(tmp_path: Path) -> None:
    options = GaussiansOptions(classes=3)
    with pytest.raises(ConformanceError, match=r"dataset 'dictoptions': options is \{'classes': 3\}; expected "
                                               r"a subclass of automl.DatasetOptions"):
        conformance.check_dataset_contract(DictOptions())
    with pytest.raises(ConformanceError, match="two loads with seed 0 differ in x; draw random numbers"):
        conformance.check_same_seed_same_arrays(Unseeded(), options, 0)
    with pytest.raises(ConformanceError, match="accept the unknown key 'no_such_option'"):
        conformance.check_refuses_unknown_option(Loose(), {}, tmp_path)
    with pytest.raises(ConformanceError, match="load returned tuple, expected automl.LabeledArrays"):
        conformance.load_arrays(Tuples(), options, 0)
    with pytest.raises(ConformanceError, match="every sample has label 0; classification needs at least two classes"):
        conformance.load_arrays(OneClass(), options, 0)
    with pytest.raises(ConformanceError, match="classes"):
        conformance.validate_options(Gaussians(), {"classes": 1}, tmp_path)


def test_arrays_that_automl_refuses_fail_the_load_check() -> None:
    class GappyLabels(Gaussians):
        def load(self, seed: int, options: GaussiansOptions) -> automl.LabeledArrays:
            arrays = super().load(seed, options)
            return automl.LabeledArrays(arrays.x, arrays.y * 2, "tabular")

    with pytest.raises(ConformanceError, match=r"labels must be 0..K-1 .* these are not: \[4\] \(missing: \[1\]\)"):
        conformance.load_arrays(GappyLabels(), GaussiansOptions(), 0)


def test_a_relative_path_is_taken_from_the_base_folder(tmp_path: Path) -> None:
    options = conformance.validate_options(registry().datasets["csv"].obj, {"path": "t.csv"}, tmp_path)
    assert options.path == tmp_path / "t.csv"
