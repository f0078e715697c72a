"""Where a trial trains: the device and precision, the splits kept on it, and memory given back."""

from __future__ import annotations

import functools
import gc
from typing import Literal

import torch

from automl.data.prepare import PreparedData, Split


def resolve_device(accelerator: str) -> torch.device:
    """The device trials run on: a GPU when asked for or, with "auto", when one is present."""
    if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


# The precisions a trial trains in (Lightning Fabric's names); study files may also say "auto".
Precision = Literal["32-true", "bf16-mixed", "16-mixed"]


def resolve_precision(precision: Precision | Literal["auto"], device: torch.device) -> Precision:
    """``precision``, or for "auto" bf16 mixed precision on a GPU that has it and 32-bit otherwise."""
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


@functools.lru_cache(maxsize=4)
def on_device(data: PreparedData, device: torch.device) -> tuple[Split, Split, Split]:
    """The splits on ``device``, copied once per process and reused by every trial."""
    return data.train.to(device), data.val.to(device), data.test.to(device)


@functools.lru_cache(maxsize=4)
def fits_on_device(data: PreparedData, device: torch.device) -> bool:
    """Whether the splits take under half of the GPU's free memory; always on the CPU, where they are.

    Decided once per process: once the splits are on the GPU, its free memory no longer shows it.
    """
    if device.type != "cuda":
        return True
    size = sum(t.element_size() * t.nelement()
               for split in (data.train, data.val, data.test) for t in (split.x, split.y))
    free, _ = torch.cuda.mem_get_info(device)
    return size < free / 2



def free_memory(device: torch.device) -> None:
    """Collect the garbage of the finished trial and give cached GPU blocks back to the driver.

    Lightning objects reference each other, so a trial's model, and the tensors of a
    trial that ran out of memory, live on until the cyclic collector happens to run, which it
    does on Python allocations, not on GPU memory; the next trial would run out too.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
