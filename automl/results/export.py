"""Exporting a trial's model as ONNX, TorchScript or a state dict, checked against PyTorch.

The exported model takes inputs as the user's data holds them: the dataset's scaling and the
standardization are its first layer (automl.results.raw_inputs). Each export is loaded back by
what would run it (onnxruntime, torch.jit.load, a rebuilt module) and must reproduce the PyTorch
logits on a fresh batch of another size; a JSON beside the file says what the model is, what it
expects and how it scored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.artifacts import FileSystemArtifactStore
from torch import nn

from automl.data.prepare import PreparedData
from automl.errors import AutomlError, UsageError
from automl.plugin.build import example_inputs
from automl.plugin.registry import Registry
from automl.plugin.task import Task
from automl.results.raw_inputs import Preprocessing, input_description, raw_input_model, stored_preprocessing
from automl.results.retrain import Retrained, retrain
from automl.results.stored import StoredTrial
from automl.storage.artifacts import load_weights, output_dir
from automl.storage.schema import TrialAttr, is_trained

SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "state_dict": ".state_dict.pt"}
RTOL, ATOL = 1e-3, 1e-4
EXPORT_BATCH, CHECK_BATCH = 2, 5  # different sizes, so a batch size baked into an export shows up
Runner = Callable[[torch.Tensor], np.ndarray]
Rebuild = Callable[[], nn.Module]  # the exported module's architecture with fresh weights
# The trial attrs the JSON repeats under "measured".
MEASURED = (TrialAttr.VAL_ACCURACY, TrialAttr.TEST_ACCURACY, TrialAttr.FLOPS, TrialAttr.N_PARAMS,
            TrialAttr.LATENCY_MS, TrialAttr.EPOCHS)


@dataclass(frozen=True)
class Exported:
    path: Path
    json_path: Path
    max_abs_diff: float
    check_batch: int
    fixed_batch: int | None  # set when the model pins its batch size


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Silence the exporters' notes (optional operator sets, deprecations) around an export."""
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is the format asked for.
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, UserWarning))
        yield


class Mismatch(Exception):
    """An export whose logits differ from PyTorch's."""


# torch.onnx.export(dynamo=True), the torch.export-based exporter that keeps the batch size free, is
# documented for torch 2.6 and later.
ONNX_MIN_TORCH = "2.6"


def check_destination(fmt: str, out_dir: Path) -> None:
    """Raise UsageError when this torch cannot write ``fmt`` or ``out_dir`` cannot be made (which it
    then is): callers check before any loading or training, export_model again before writing."""
    # torch.__version__ is a TorchVersion: it compares with a string as a version ("2.13" > "2.6"), not as text.
    if fmt == "onnx" and torch.__version__ < ONNX_MIN_TORCH:
        raise UsageError(f"--format onnx needs torch >= {ONNX_MIN_TORCH} for its exporter; "
                         f"this is torch {torch.__version__}: upgrade torch, or use --format torchscript or "
                         "state_dict")
    output_dir(out_dir, "export folder")


def _onnx(model: nn.Module, example: torch.Tensor, path: Path, rebuild: Rebuild, dynamic: bool) -> Runner:
    import onnxruntime

    # One self-contained file; ONNX's protobuf limit forces external weights only past 2 GB.
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > 1_500_000_000
    torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["inputs"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic else None,
                      external_data=external, verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if dynamic and isinstance(session.get_inputs()[0].shape[0], int):
        # The exporter fixes the batch size by itself where the model pins it.
        raise Mismatch("the exporter fixed the batch size")
    return lambda x: session.run(None, {"inputs": x.numpy()})[0]


def _torchscript(model: nn.Module, example: torch.Tensor, path: Path, rebuild: Rebuild, dynamic: bool) -> Runner:
    if dynamic:
        # Scripting keeps control flow and every batch size; tracing records one run of it.
        scripted = torch.jit.script(model)
    else:
        with torch.no_grad():
            scripted = torch.jit.trace(model, example, check_trace=False)
    torch.jit.save(scripted, str(path))
    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    return lambda x: loaded(x).detach().numpy()


def _state_dict(model: nn.Module, example: torch.Tensor, path: Path, rebuild: Rebuild, dynamic: bool) -> Runner:
    torch.save(model.state_dict(), path)
    rebuilt = rebuild().eval()
    rebuilt.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return lambda x: rebuilt(x).detach().numpy()


EXPORTERS = {"onnx": _onnx, "torchscript": _torchscript, "state_dict": _state_dict}


def _inputs_of(stored: StoredTrial, data: PreparedData | Preprocessing | str) -> dict[str, Any]:
    """The JSON's ``input`` and ``preprocessing``: from the study's data, or why it is missing."""
    if not isinstance(data, str):
        return input_description(data, stored.config.data.dataset)
    tokens = stored.task.kind == "tokens"
    values = ("int64 token ids" if tokens else "standardized values, (x - mean) / std with the statistics of the "
              "study's training split, which could not be recovered")
    return {"input": {"dtype": "int64" if tokens else "float32", "values": values},
            "preprocessing": {"unavailable": data}}


def _measured(stored: StoredTrial, retrained: Retrained | None) -> dict[str, Any]:
    """What the trial measured; for a model retrained on train+validation, its own test accuracy and
    epochs instead (its validation accuracy was measured on data it trained on, so it is left out)."""
    measured: dict[str, Any] = {key: stored.trial.user_attrs[key] for key in MEASURED
                                if key in stored.trial.user_attrs}
    if retrained is None:
        return measured
    measured.pop(TrialAttr.VAL_ACCURACY, None)
    return {**measured, TrialAttr.TEST_ACCURACY: retrained.test_accuracy, TrialAttr.EPOCHS: retrained.epochs,
            "train_samples": retrained.train_samples}


def description(stored: StoredTrial, fmt: str, path: Path, weights: str, data: PreparedData | Preprocessing | str,
                retrained: Retrained | None, max_abs_diff: float, check_batch: int,
                fixed_batch: int | None) -> dict[str, Any]:
    """What goes in the JSON beside an export."""
    trial, task = stored.trial, stored.task
    objectives = stored.study.metric_names or [f"objective_{i}" for i in range(len(trial.values))]
    inputs = _inputs_of(stored, data)
    return {
        "study": stored.study.study_name, "trial": trial.number, "family": stored.family.name,
        "params": stored.params, "training": dataclasses.asdict(stored.training), "stored_params": trial.params,
        "task": task.to_dict(),
        "metrics": dict(zip(objectives, trial.values, strict=True)),
        "measured": _measured(stored, retrained),
        "format": fmt, "file": path.name, "weights": weights,
        "input": {"name": "inputs", "shape": [fixed_batch or "batch", *task.input_shape], **inputs["input"]},
        "preprocessing": inputs["preprocessing"],
        "output": {"name": "logits", "shape": [fixed_batch or "batch", task.num_classes]},
        "check": {"runtime": {"onnx": "onnxruntime", "torchscript": "torch.jit.load",
                              "state_dict": "rebuilt module"}[fmt],
                  "batch": check_batch, "max_abs_diff": max_abs_diff, "rtol": RTOL, "atol": ATOL},
    }


def _export_and_check(model: nn.Module, fmt: str, path: Path, task: Task, rebuild: Rebuild, dynamic: bool
                      ) -> tuple[float, int]:
    """Export, load back, and compare with PyTorch on fresh inputs: (max abs difference, batch size)."""
    run = EXPORTERS[fmt](model, example_inputs(task, EXPORT_BATCH if dynamic else 1), path, rebuild, dynamic)
    batch = CHECK_BATCH if dynamic else 1
    inputs = example_inputs(task, batch, seed=1)
    with torch.no_grad():
        expected = model(inputs).numpy()
    got = run(inputs)
    if got.shape != expected.shape:
        raise Mismatch(f"logits of shape {got.shape}, PyTorch's {expected.shape}")
    max_abs_diff = float(np.max(np.abs(got - expected)))
    if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
        raise Mismatch(f"max abs difference {max_abs_diff:.3g} from PyTorch's logits (rtol {RTOL}, atol {ATOL})")
    return max_abs_diff, batch


def export_model(stored: StoredTrial, model: nn.Module, fmt: str, out_dir: Path, weights: str,
                 data: PreparedData | Preprocessing | str, retrained: Retrained | None = None) -> Exported:
    """Write ``model`` (the trial's trained family module) in ``fmt`` to ``out_dir``, taking inputs
    as the user's data holds them, check it against PyTorch, and write its JSON.

    ``data`` is the study's data (PreparedData, or the Preprocessing the study stored), whose
    scaling and standardization become the exported model's first layer
    (automl.results.raw_inputs.raw_input_model); where neither could be had, the reason, and the
    export then takes standardized inputs, as the JSON says. The batch size stays free where the
    model allows; a model that pins it somewhere (``len(x)`` used as a number, say) is exported
    for one sample at a time. ``weights`` says where the weights came
    from; ``retrained`` replaces the trial's measurements with the retrained model's. Raises
    AutomlError when no export reproduces PyTorch.
    """
    check_destination(fmt, out_dir)
    path = out_dir / f"trial{stored.trial.number}{SUFFIXES[fmt]}"

    def with_inputs(module: nn.Module) -> nn.Module:
        return module if isinstance(data, str) else raw_input_model(module, data)

    model = with_inputs(model.cpu()).eval()

    def rebuild() -> nn.Module:
        return with_inputs(stored.build())

    fixed_batch = None
    with _quiet_exporters():
        try:
            max_abs_diff, check_batch = _export_and_check(model, fmt, path, stored.task, rebuild, dynamic=True)
        except Exception as dynamic_failure:
            if fmt == "state_dict":
                raise AutomlError(f"{stored.label}: the state dict in {path} does not reproduce the model: "
                                  f"{dynamic_failure}") from dynamic_failure
            try:
                max_abs_diff, check_batch = _export_and_check(model, fmt, path, stored.task, rebuild, dynamic=False)
            except Exception as exc:
                raise AutomlError(f"{stored.label}: no {fmt} export reproduces PyTorch's outputs ({exc}; with a "
                                  f"free batch size: {dynamic_failure}); try another --format") from exc
            fixed_batch = 1
    json_path = path.with_name(path.name + ".json")
    record = description(stored, fmt, path, weights, data, retrained, max_abs_diff, check_batch, fixed_batch)
    json_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return Exported(path, json_path, max_abs_diff, check_batch, fixed_batch)


def check_trained(stored: StoredTrial) -> None:
    """Raise UsageError for a trial refused before training (automl.storage.schema.is_trained):
    it has no model to export."""
    if not is_trained(stored.trial):
        raise UsageError(f"{stored.label} was never trained ({stored.trial.user_attrs.get(TrialAttr.OVER_BUDGET)}): "
                         "it has no model to export; `automl retrain` trains its config anyway, and its --out "
                         "saves the model")


def trained_model(stored: StoredTrial, store: FileSystemArtifactStore, registry: Registry,
                  note: Callable[[str], None]) -> tuple[nn.Module, str, Retrained | None]:
    """The trial's model with its trained weights, where they came from, and, for a cross-validated
    trial trained again on every non-test row, that training (its own test accuracy and epochs).

    Weights come from the artifact store; a trial without them (not on the front when it finished)
    is trained again as it was, with its seed and epochs, which ``note`` announces.
    """
    check_trained(stored)
    state = load_weights(store, stored.study, stored.trial)
    if stored.trial.user_attrs.get(TrialAttr.FOLDS):
        # A cross-validated trial trained one model per fold, each on part of the rows: the model
        # to ship is its configuration trained on every non-test row. Without the data, the
        # stored weights (its first fold's model) are what there is.
        try:
            data = stored.data(registry)
        except UsageError as exc:
            if state is None:
                raise
            note(f"{stored.label} was cross-validated, but its data cannot be loaded ({exc}); exporting its "
                 "first fold's model, trained on all but that fold's rows")
        else:
            note(f"{stored.label} was cross-validated; training its configuration on every non-test row, "
                 "for its epochs, before exporting")
            retrained = retrain(stored, data)
            return retrained.model, "trained on every non-test row (cross-validated trial)", retrained
    if state is not None:
        model = stored.build()
        model.load_state_dict(state)
        return model, "stored", None
    note(f"{stored.label} stored no weights (only trials on the Pareto front when they finished do); "
         "training it again as it trained, with its seed and epochs, before exporting")
    return retrain(stored, stored.data(registry), with_validation=False).model, "retrained (none stored)", None


def study_data(stored: StoredTrial, registry: Registry, note: Callable[[str], None]) -> Preprocessing | str:
    """What turns the study's data into its models' inputs (for the export's first layer): as the
    study stored it, else made again from its dataset (a study created before automl stored it),
    or why neither is there.

    A dataset that no longer loads (moved, deleted) does not stop an export of stored weights:
    ``note`` says so, and the export takes standardized inputs, which its JSON says.
    """
    stored_there = stored_preprocessing(stored.study)
    if stored_there is not None:
        return stored_there
    try:
        return Preprocessing.of(stored.data(registry))
    except UsageError as exc:
        note(f"the export takes standardized inputs, not the data's own values, since the study's data does "
             f"not load to recover its scaling and statistics: {exc}")
        return str(exc)
