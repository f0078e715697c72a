"""A trained model that takes inputs as the user's data holds them.

A family's module receives standardized inputs (automl.Family): the dataset's values, rescaled as
the dataset declares (``RawInputs.scale``: digits' 0..16 pixels to 0..1, an image folder's 0..255
to 0..1), then ``(x - mean) / std`` with the train split's statistics. ``raw_input_model`` puts
both in front of the trained module as its first layer, so an application feeds the values it
has; exports (ONNX, TorchScript, state dict) and ``automl.load_model`` are that model.

What no graph can do (decoding and resizing an image file, a tokenizer's vocabulary) is stated
by ``input_description``, which an export's JSON carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
import torch
from torch import nn

from automl.data.prepare import PreparedData
from automl.data.standardize import Standardization
from automl.plugin.arrays import RawInputs
from automl.plugin.task import Task
from automl.storage.schema import PREPROCESSING_ATTR, TASK_ATTR

FORMULA = "(inputs * scale - mean) / std"


class Standardize(nn.Module):
    """``(inputs * scale - mean) / std`` on float inputs ``[B, *input_shape]``: the dataset's
    scaling and the train split's statistics (buffers, broadcast per channel or feature)."""

    scale: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, scale: float, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (inputs * self.scale - self.mean) / self.std


class RawInputModel(nn.Module):
    """``model(standardize(inputs))``: the trained family module (``.model``) behind the
    preprocessing it was trained with (``.standardize``; ``nn.Identity`` for token ids)."""

    def __init__(self, standardize: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.standardize = standardize
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(self.standardize(inputs))


@dataclass(frozen=True)
class Preprocessing:
    """What turns the data as its owner holds it into a family's inputs: the task, the dataset's
    RawInputs, the train split's standardization (None for token ids) and the tokenizer's vocabulary
    as an export's JSON states it (None unless the data was texts).

    A study stores it when it is created (``record_preprocessing``), so that its models are
    exported and loaded with what they trained on, even when the data was given in memory or its
    file has moved since.
    """

    task: Task
    raw: RawInputs
    standardization: Standardization | None = None
    tokenize: dict[str, Any] | None = None

    @classmethod
    def of(cls, data: PreparedData) -> Preprocessing:
        return cls(data.task, data.raw, data.standardization,
                   data.vocabulary.to_dict() if data.vocabulary is not None else None)

    def to_dict(self) -> dict[str, Any]:
        names = self.raw.feature_names
        return {"raw": {"scale": float(self.raw.scale), "description": self.raw.description,
                        "feature_names": list(names) if names is not None else None},
                "standardization": self.standardization.to_dict() if self.standardization is not None else None,
                "tokenize": self.tokenize}

    @classmethod
    def from_dict(cls, stored: dict[str, Any], task: Task) -> Preprocessing:
        raw, standardization = stored["raw"], stored["standardization"]
        names = raw["feature_names"]
        return cls(task, RawInputs(raw["scale"], raw["description"], tuple(names) if names is not None else None),
                   Standardization.from_dict(standardization, len(task.input_shape)) if standardization else None,
                   stored["tokenize"])


def record_preprocessing(study: optuna.Study, data: PreparedData) -> None:
    """Store ``data``'s Preprocessing on ``study`` (PREPROCESSING_ATTR) unless it holds one."""
    if PREPROCESSING_ATTR not in study.user_attrs:
        study.set_user_attr(PREPROCESSING_ATTR, Preprocessing.of(data).to_dict())


def stored_preprocessing(study: optuna.Study) -> Preprocessing | None:
    """The Preprocessing ``study`` stored; None for a study created before automl stored it."""
    stored = study.user_attrs.get(PREPROCESSING_ATTR)
    if stored is None or TASK_ATTR not in study.user_attrs:
        return None
    return Preprocessing.from_dict(stored, Task.from_dict(study.user_attrs[TASK_ATTR]))


def _preprocessing(data: PreparedData | Preprocessing) -> Preprocessing:
    return data if isinstance(data, Preprocessing) else Preprocessing.of(data)


def raw_input_model(model: nn.Module, data: PreparedData | Preprocessing) -> RawInputModel:
    """``model`` (a family's module trained on ``data``) taking inputs as the user's data holds them.

    Inputs: ``[B, *data.task.input_shape]``; for image, sequence and tabular tasks float32 values
    in the user's units (0..16 pixel values for digits, 0..255 for an image folder or torchvision's
    files, a CSV's feature columns in ``data.raw.feature_names`` order as written); for a tokens
    task int64 token ids, as the dataset's tokenizer makes them (``input_description``).
    Output: unnormalized logits ``[B, data.task.num_classes]``. The first layer computes
    ``(inputs * scale - mean) / std`` (``data.raw.scale``, ``data.standardization``); the result
    is in ``model``'s mode (``eval()`` for inference) and on the CPU.
    """
    preprocessing = _preprocessing(data)
    standardization = preprocessing.standardization
    if standardization is None:
        standardize: nn.Module = nn.Identity()
    else:
        mean, std = (torch.from_numpy(values).float() for values in (standardization.mean, standardization.std))
        standardize = Standardize(float(preprocessing.raw.scale), mean, std)
    raw = RawInputModel(standardize, model.cpu())
    return raw.train(model.training)


def input_description(data: PreparedData | Preprocessing, dataset: str) -> dict[str, Any]:
    """What a raw-input model of ``dataset`` takes, as JSON: ``input`` (dtype, what its values are,
    the feature names when the dataset gives them) and ``preprocessing`` (``in_the_model``: the
    first layer's formula and numbers; ``before_the_model``: the tokenizer an application must
    apply itself, with its vocabulary)."""
    preprocessing = _preprocessing(data)
    raw, standardization = preprocessing.raw, preprocessing.standardization
    tokens = preprocessing.task.kind == "tokens"
    if preprocessing.tokenize is not None:
        values = ("int64 token ids [T] of one text, encoded as preprocessing.before_the_model.tokenize says "
                  "(pad id 0 on the left, unknown id 1)")
    elif tokens:
        values = raw.description or f"int64 token ids as dataset {dataset!r} loads them (0 pads)"
    else:
        values = raw.description or f"the values as dataset {dataset!r} loads them"
    described: dict[str, Any] = {"dtype": "int64" if tokens else "float32", "values": values}
    if raw.feature_names is not None:
        described["feature_names"] = list(raw.feature_names)
    in_the_model = None
    if standardization is not None:
        in_the_model = {"formula": FORMULA, "scale": float(raw.scale), **standardization.to_dict()}
    before = {"tokenize": preprocessing.tokenize} if preprocessing.tokenize is not None else None
    return {"input": described, "preprocessing": {"in_the_model": in_the_model, "before_the_model": before}}
