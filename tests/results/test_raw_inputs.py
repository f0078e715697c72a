"""A trained model taking inputs as the user's data holds them: each built-in dataset's values,
fed as they are, give the logits the model gives the prepared (scaled, standardized) split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import labels, write_mnist, write_table
from PIL import Image
from torch import nn

from automl import LabeledArrays, RawInputs, UsageError
from automl.config import DataConfig
from automl.data.prepare import PreparedData, prepare
from automl.data.splits import split_indices
from automl.plugin.registry import registry
from automl.results.raw_inputs import input_description, raw_input_model


def _prepare(dataset: str = "digits", **options: object) -> tuple[PreparedData, np.ndarray]:
    """The study's data and its test rows' indices into what the dataset loaded."""
    config = DataConfig(dataset=dataset, **options)
    arrays = registry().datasets[dataset].obj.load(0, registry().datasets[dataset].obj.options.model_validate(
        config.options))
    return prepare(config, registry(), 0), split_indices(arrays, config, 0).test


def _a_model(data: PreparedData) -> nn.Module:
    torch.manual_seed(0)
    features = int(np.prod(data.task.input_shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(features, data.task.num_classes)).eval()


def _same_logits(data: PreparedData, raw_test_inputs: np.ndarray) -> None:
    """The raw-input model on the user's values gives the logits the model gives the prepared split."""
    model = _a_model(data)
    with torch.no_grad():
        expected = model(data.test.x)
        got = raw_input_model(model, data)(torch.from_numpy(raw_test_inputs.astype(np.float32)))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_digits_take_their_0_to_16_pixels() -> None:
    from sklearn.datasets import load_digits

    data, test_rows = _prepare()
    pixels = load_digits().images[test_rows][:, None]  # [N, 1, 8, 8], 0..16
    assert pixels.max() == 16
    _same_logits(data, pixels)
    described = input_description(data, "digits")
    assert "0..16" in described["input"]["values"] and "load_digits" in described["input"]["values"]
    folded = described["preprocessing"]["in_the_model"]
    assert folded["formula"] == "(inputs * scale - mean) / std" and folded["scale"] == 1 / 16
    assert folded["per"] == "channel" and len(folded["mean"]) == len(folded["std"]) == 1


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_an_image_folder_takes_its_0_to_255_pixels(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(0)
    for index, name in enumerate(("cat", "dog")):
        (tmp_path / name).mkdir()
        for number in range(20):
            shape = (10, 12) if mode == "L" else (10, 12, 3)
            pixels = np.clip(rng.normal(80 + 60 * index, 40, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode).save(tmp_path / name / f"{number}.png")
    paths = sorted(tmp_path.glob("*/*.png"))  # as the dataset reads them: by class, then by name
    data, test_rows = _prepare("imagefolder", path=str(tmp_path))
    # As the JSON says: decoded, converted to RGB, resized (here to its own size), channel 0 if gray.
    raw = np.stack([np.asarray(Image.open(paths[row]).convert("RGB").resize((12, 10))) for row in test_rows])
    raw = raw.transpose(0, 3, 1, 2)[:, :1 if mode == "L" else 3]
    assert raw.max() > 200
    _same_logits(data, raw)
    values = input_description(data, "imagefolder")["input"]["values"]
    assert "0..255" in values and "resized to 12x10" in values and ("grayscale" in values) == (mode == "L")


def test_mnist_files_take_their_0_to_255_pixels(tmp_path: Path) -> None:
    root = write_mnist(tmp_path, train=60, test=20)
    data, test_rows = _prepare("mnist", path=str(root), val_size=0.2)
    arrays = registry().datasets["mnist"].obj.load(0, registry().datasets["mnist"].obj.options(path=root))
    _same_logits(data, np.rint(arrays.x[test_rows] * 255))
    assert "0..255" in input_description(data, "mnist")["input"]["values"]


def test_a_csv_model_names_its_feature_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = labels(2, 30)
    features = np.column_stack([rng.normal(1000, 300, 60) + 200 * y, rng.normal(0.01, 0.002, 60)])
    path = write_table(tmp_path / "houses.csv", ["area", "label", "ratio"],
                       [[area, label, ratio] for (area, ratio), label in zip(features, y)])
    data, test_rows = _prepare("csv", path=str(path))
    _same_logits(data, features[test_rows])
    described = input_description(data, "csv")["input"]
    assert described["feature_names"] == ["area", "ratio"] and "houses.csv" in described["values"]


def test_texts_state_their_tokenizer_and_take_token_ids(tmp_path: Path) -> None:
    rows = [[f"{'good' if label else 'bad'} film", label] for label in labels(2, 30)]
    data, _ = _prepare("text", path=str(write_table(tmp_path / "t.csv", ["text", "label"], rows)))
    model = nn.Sequential(nn.Embedding(data.task.vocab_size, 3), nn.Flatten(), nn.Linear(3 * 64, 2)).eval()
    with torch.no_grad():
        torch.testing.assert_close(raw_input_model(model, data)(data.test.x), model(data.test.x))
    described = input_description(data, "text")
    assert described["input"]["dtype"] == "int64" and described["preprocessing"]["in_the_model"] is None
    assert described["preprocessing"]["before_the_model"]["tokenize"]["vocabulary"] == data.vocabulary.ids
    json.dumps(described)  # all of it is JSON


def test_the_raw_input_model_keeps_the_mode_and_its_state_dict_round_trips() -> None:
    data, _ = _prepare()
    model = raw_input_model(_a_model(data), data)
    assert not model.training
    rebuilt = raw_input_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), data)
    rebuilt.load_state_dict(model.state_dict())
    assert set(model.state_dict()) == {"standardize.scale", "standardize.mean", "standardize.std",
                                       "model.1.weight", "model.1.bias"}


@pytest.mark.parametrize(("raw", "message"), [
    (RawInputs(scale=0.0), r"RawInputs.scale is 0.0; expected a positive number"),
    (RawInputs(scale=float("nan")), r"RawInputs.scale is nan"),
    (RawInputs(feature_names=("a",)), r"RawInputs.feature_names names 1 features, but x has 2 along its last axis"),
])
def test_a_dataset_declaring_impossible_raw_inputs_is_named(raw: RawInputs, message: str) -> None:
    arrays = LabeledArrays(np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]), "tabular", raw=raw)
    with pytest.raises(UsageError, match=rf"dataset 'mine': {message}"):
        arrays.checked("dataset 'mine'")
