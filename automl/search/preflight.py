"""Checks a plan passes before anything is stored: what would otherwise fail trial after trial.

A study file that asks for a device or precision the machine lacks, or data that every model
fails on, would create the study and fail every trial in turn until the failure streak stops the
run, leaving failed and queued trials behind. Here the device and precision are checked against
the machine, and each family's smallest sampled config is built and trained for one step on a few
samples of the real splits, on the study's device and in its precision, through the same
``train`` the trials use (tens of milliseconds for small models). A family that fails there only
earns a note, as its trials fail with their reason stored; all failing is an error.
"""

from __future__ import annotations

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
from automl.training.classifier import TrainingParams
from automl.training.device import free_memory, resolve_device, resolve_precision
from automl.training.efficiency import count_parameters
from automl.training.loop import train

# Configs drawn per family to find its smallest, and samples per split in the training step.
DRAWS = 4
SAMPLES = 8


def check_device(config: StudyConfig, path: Path) -> torch.device:
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


def _smallest(family: Family, data: PreparedData, config: StudyConfig
              ) -> tuple[dict[str, Any], TrainingParams, torch.nn.Module]:
    """The config with the fewest parameters of a few drawn, its training params and its module;
    raises what building the last draw raised when none builds."""
    study = random_study(config.seed)
    built: list[tuple[int, dict[str, Any], TrainingParams, torch.nn.Module]] = []
    error: Exception | None = None
    for _ in range(DRAWS):
        trial = study.ask()
        params = sample_params(family, trial, data.task)
        training = sample_training(trial, config.train)
        try:
            model = build_model(family, params, data.task, data.train.x[:2])
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; the message names it
            error = exc
            continue
        built.append((count_parameters(model), params, training, model))
    if not built:
        assert error is not None
        raise error
    _, params, training, model = min(built, key=lambda entry: entry[0])
    return params, training, model


def _one_step(family: Family, data: PreparedData, config: StudyConfig, device: torch.device) -> str | None:
    """Why one training step of the family's smallest config fails; None when it does not."""
    train_split, val_split, test_split = (Split(split.x[:SAMPLES], split.y[:SAMPLES])
                                          for split in (data.train, data.val, data.test))
    few = PreparedData(data.task, train_split, val_split, test_split)
    params: dict[str, Any] = {}
    try:
        params, training, model = _smallest(family, few, config)
        train(model, few, training, device, config.train.precision, max_epochs=1, seed=config.seed,
              augment=config.train.augment, data_on_device=True, loader_workers=0)
    except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; the message names it
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        return f"{reason} (params {params})" if params else reason
    return None


def check_training_step(config: StudyConfig, families: dict[str, Family], data: PreparedData,
                        device: torch.device, path: Path) -> list[str]:
    """Train each family's smallest config one step; notes for the families that fail, an error
    naming the device, precision and every reason when all do."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        outcomes = {name: _one_step(family, data, config, device) for name, family in families.items()}
    free_memory(device)  # the checked models, kept alive by Lightning's reference cycles
    failures = {name: reason for name, reason in outcomes.items() if reason is not None}
    where = f"on {device} in precision {resolve_precision(config.train.precision, device)}"
    if failures and len(failures) == len(families):
        reasons = "; ".join(f"family {name!r}: {reason}" for name, reason in failures.items())
        raise UsageError(f"{path}: one training step of each family's smallest config {where} fails, "
                         f"so every trial would: {reasons}. Nothing was stored; fix the cause (the "
                         "[train] accelerator and precision, the data or the family), or leave the "
                         "family out with [search] families")
    return [f"family {name!r}: one training step of its smallest config {where} fails ({reason}); "
            "its trials will fail and store why" for name, reason in failures.items()]
