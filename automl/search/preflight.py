"""Checks a plan passes before anything is stored: what would otherwise fail trial after trial.

A study file that asks for a device or precision the machine lacks, an artifact folder that
cannot be written, or data that every model fails on, would create the study and fail every trial
in turn (after training it, for the artifacts) until the failure streak stops the run, leaving
failed and queued trials behind. Here the device and precision are checked against the machine,
a file is written to the artifact folder (and removed), and each family's smallest sampled config
is built and trained for one step on two samples of each real split, on the study's device and
in its precision, through the same ``train`` the trials use (tens of milliseconds for small
models); when it fails, the next smallest of the configs drawn is tried, so that one config (a
parameter-free baseline, a kernel too large for the input) never stands for the whole family. A
family none of whose configs train only earns a note, as its trials fail with their reason
stored; all failing is an error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from automl.config import StudyConfig
from automl.data.prepare import PreparedData, Split
from automl.errors import UsageError
from automl.plugin.build import build_model
from automl.plugin.contract import Family
from automl.plugin.space import random_study, sample_params
from automl.search.objective import sample_training
from automl.storage.artifacts import artifact_dir, check_writable
from automl.training.classifier import TrainingParams
from automl.training.device import free_memory, resolve_device, resolve_precision
from automl.training.efficiency import count_parameters
from automl.training.loop import train

# Configs drawn per family to find its smallest, and samples per split in the training step: two,
# the fewest batch norm trains on. The check asks whether a step runs, and its cost grows with the
# samples: on 1,460-step series one attention model's check took 19 CPU-s on 8 samples, 4.4 on 2.
DRAWS = 4
SAMPLES = 2


def check_device(config: StudyConfig, path: Path | str) -> torch.device:
    """The study's device, after checking that it and the precision exist on this machine."""
    accelerator, precision = config.train.accelerator, config.train.precision
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise UsageError(f"{path}: key 'train.accelerator': \"gpu\" but no CUDA GPU is visible (torch "
                         f"{torch.__version__}); use \"auto\" or \"cpu\"")
    device = resolve_device(accelerator)
    resolved = resolve_precision(precision, device)
    if resolved == "16-mixed" and device.type != "cuda":
        raise UsageError(f"{path}: key 'train.precision': \"16-mixed\" needs a CUDA GPU (float16 autocast "
                         "does not run on the CPU); use \"bf16-mixed\", \"32-true\" or \"auto\"")
    if resolved == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"{path}: key 'train.precision': \"bf16-mixed\" but "
                         f"{torch.cuda.get_device_name(device)} has no bfloat16 support; use \"16-mixed\", "
                         "\"32-true\" or \"auto\"")
    return device


def check_artifact_folder(config: StudyConfig, storage_url: str, path: Path | str) -> None:
    """Refuse an artifact folder that cannot be written (read-only, another user's, full) before
    anything is stored: else every trial would train and then fail to save what it made."""
    try:
        check_writable(artifact_dir(storage_url, config.artifacts), "artifact folder")
    except UsageError as exc:
        key = "the study file's artifacts" if config.artifacts else "beside the SQLite file, or set artifacts = DIR"
        raise UsageError(f"{path}: {exc} ({key})") from None


def _built(family: Family, data: PreparedData, config: StudyConfig
           ) -> tuple[list[tuple[dict[str, Any], TrainingParams, torch.nn.Module]], str | None]:
    """A few drawn configs that build, fewest parameters first, with their training params and
    modules; and why the first draw that did not build failed (None when all built)."""
    study = random_study(config.seed)
    built: list[tuple[int, dict[str, Any], TrainingParams, torch.nn.Module]] = []
    error: str | None = None
    for _ in range(DRAWS):
        trial = study.ask()
        params = sample_params(family, trial, data.task)
        training = sample_training(trial, config.train)
        try:
            model = build_model(family, params, data.task, data.train.x[:2])
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; the message names it
            error = error or _reason(exc, params)
            continue
        built.append((count_parameters(model), params, training, model))
    built.sort(key=lambda entry: entry[0])
    return [(params, training, model) for _, params, training, model in built], error


def _reason(error: Exception, params: dict[str, Any]) -> str:
    reason = " ".join(f"{type(error).__name__}: {error}".split())[:500]
    return f"{reason} (params {params})" if params else reason


def _one_step(family: Family, data: PreparedData, config: StudyConfig, device: torch.device,
              deadline: float | None) -> str | None:
    """Why one training step fails on every one of a few drawn configs of the family, smallest first
    (the first config's reason); None as soon as one trains, or when the deadline comes first."""
    train_split, val_split, test_split = (Split(split.x[:SAMPLES], split.y[:SAMPLES])
                                          for split in (data.train, data.val, data.test))
    few = PreparedData(data.task, train_split, val_split, test_split)
    try:
        configs, error = _built(family, few, config)
    except Exception as exc:  # noqa: BLE001 - the family's search space may raise too
        return _reason(exc, {})
    reasons = []
    for params, training, model in configs:
        if deadline is not None and time.time() >= deadline:
            return None
        try:
            train(model, few, training, device, config.train.precision, max_epochs=1, seed=config.seed,
                  augment=config.train.augment, data_on_device=True, loader_workers=0)
            return None
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; the message names it
            reasons.append(_reason(exc, params))
    return reasons[0] if reasons else error


def check_training_step(config: StudyConfig, families: dict[str, Family], data: PreparedData,
                        device: torch.device, path: Path | str, deadline: float | None = None) -> list[str]:
    """Train a few drawn configs of each family one step, smallest first, until one trains; notes
    for the families none of whose configs train, an error naming the device, precision and every
    reason when that is every family. Families not reached by ``deadline`` (``time.time()``
    seconds) are not judged."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        outcomes = {name: _one_step(family, data, config, device, deadline) for name, family in families.items()}
    free_memory(device)  # the checked models, kept alive by Lightning's reference cycles
    failures = {name: reason for name, reason in outcomes.items() if reason is not None}
    where = f"on {device} in precision {resolve_precision(config.train.precision, device)}"
    if failures and len(failures) == len(families):
        reasons = "; ".join(f"family {name!r}: {reason}" for name, reason in failures.items())
        raise UsageError(f"{path}: one training step {where} fails on each of {DRAWS} drawn configs of every "
                         f"family, so every trial would (the smallest config's reason): {reasons}. Nothing was "
                         "stored; fix the cause (the [train] accelerator and precision, the data or the family), "
                         "or leave the family out with [search] families")
    return [f"family {name!r}: one training step {where} fails on each of {DRAWS} drawn configs ({reason}); "
            "its trials will fail and store why" for name, reason in failures.items()]
