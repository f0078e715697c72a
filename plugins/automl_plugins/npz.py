"""A NumPy ``.npz`` file with arrays ``x`` (samples) and ``y`` (labels); the shape of ``x`` says the kind.

``[N, C, H, W]`` is an image task, ``[N, T, F]`` a sequence task, ``[N, F]`` a table, and integer
``[N, T]`` token ids when ``[data] kind = "tokens"`` (0 pads, so real tokens start at 1). The
user's own test and validation splits are arrays ``x_test``/``y_test`` and ``x_val``/``y_val`` in
the same file, or ``x``/``y`` in the files ``[data] test_path`` and ``val_path``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

import automl
from automl import DataPath, LabeledArrays, RawInputs, TaskKind, UsageError
from automl_plugins._files import FileOptions, data_path, encode_labels, merge_labels

KIND_BY_RANK = {4: "image", 3: "sequence", 2: "tabular"}
# How an .npz file (a zip archive) and a lone .npy array start.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"
RANK_BY_KIND = {"image": 4, "sequence": 3, "tabular": 2, "tokens": 2}


# The given splits' option keys and the suffix of their arrays inside the main file, validation first.
SPLIT_FILES = {"val_path": "val", "test_path": "test"}


class NpzOptions(FileOptions):
    path: DataPath = Field(description="an .npz file with arrays x and y")
    # The task kind when the shape of x does not say it (integer [N, T] is tokens only if asked).
    kind: TaskKind | None = None


def _check_format(path: Path) -> None:
    """An .npz file is a zip archive: anything else (a lone .npy array, a CSV) is named for what it is
    before NumPy tries to unpickle it."""
    with path.open("rb") as file:
        start = file.read(512)
    if start.startswith(ZIP_MAGIC):
        return
    if not start:
        raise UsageError(f"{path} is empty, not an .npz file with arrays x and y")
    save = "save x and y with np.savez(path, x=x, y=y)"
    if start.startswith(NPY_MAGIC):
        raise UsageError(f"{path} is a single NumPy array (.npy), not an .npz file with arrays x and y; {save}")
    if start and b"\x00" not in start:  # binary formats hold NUL bytes early, text never does
        line = start.decode("utf-8", errors="replace").splitlines()[0][:80]
        raise UsageError(f"{path} is a text file (it starts {line!r}), not an .npz file (a zip archive of "
                         f"arrays); for a CSV table use [data] dataset = \"csv\", else {save}")
    raise UsageError(f"{path} is not an .npz file (a zip archive of arrays written by np.savez; it starts "
                     f"with {start[:8]!r}); {save}")


def _read(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the .npz file ``path`` that it holds; ``x`` and ``y`` must be there."""
    _check_format(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in ("x", "y") if key not in arrays.files]
            if missing:
                raise UsageError(f"{path} has no array {' or '.join(missing)}; it holds "
                                 f"{', '.join(arrays.files) or 'nothing'}")
            return {name: arrays[name] for name in names if name in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path} is not a readable .npz file: {exc}") from None


def _splits(options: NpzOptions, path: Path, dataset: str) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """(where, x, y, split key) of the samples to split (key ""), then the given validation and
    test splits (keys "val_path", "test_path")."""
    arrays = _read(path, ("x", "y", *(f"{axis}_{split}" for split in SPLIT_FILES.values() for axis in "xy")))
    parts = [(f"{path}", arrays["x"], arrays["y"], "")]
    for key, split in SPLIT_FILES.items():
        inside = [f"{axis}_{split}" for axis in "xy" if f"{axis}_{split}" in arrays]
        if len(inside) == 1:
            raise UsageError(f"{path} holds {inside[0]} but not its pair; a {split} split needs "
                             f"x_{split} and y_{split}")
        if inside and getattr(options, key) is not None:
            raise UsageError(f"{path} holds x_{split} and y_{split}, and [data] {key} names another {split} split; "
                             "give one of them")
        if inside:
            parts.append((f"{path} (x_{split})", arrays[f"x_{split}"], arrays[f"y_{split}"], key))
        elif getattr(options, key) is not None:
            other = data_path(options, dataset, key=key)
            given = _read(other, ("x", "y"))
            parts.append((f"{other}", given["x"], given["y"], key))
    return parts


class NpzFile:
    name = "npz"
    options = NpzOptions

    def load(self, seed: int, options: NpzOptions) -> LabeledArrays:
        path = data_path(options, self.name)
        parts = _splits(options, path, self.name)
        for where, x_part, y_part, key in parts:
            if len(x_part) != len(y_part):
                raise UsageError(f"{where}: x has {len(x_part)} samples but y has {len(y_part)} labels")
            if key and not len(y_part):  # else automl would cut a test split of its own, unsaid
                raise UsageError(f"{where}: the given {SPLIT_FILES[key]} split has no samples; give it some, "
                                 "or leave it out")
            if x_part.shape[1:] != parts[0][1].shape[1:]:
                raise UsageError(f"{where}: x has samples of shape {list(x_part.shape[1:])}, but {parts[0][0]}'s are "
                                 f"{list(parts[0][1].shape[1:])}; every split needs samples of one shape")
        x = np.concatenate([x_part for _, x_part, _, _ in parts])
        kind = options.kind or KIND_BY_RANK.get(x.ndim)
        if kind is None or x.ndim != RANK_BY_KIND[kind]:
            raise UsageError(f"{path}: x has shape {list(parts[0][1].shape)}; expected [N, C, H, W] (image), "
                             "[N, T, F] (sequence), [N, F] (tabular) or integer [N, T] with [data] "
                             f"kind = \"tokens\"{f', for kind {kind!r}' if kind else ''}")
        labels = [y_part for _, _, y_part, _ in parts]
        class_names = None
        if any(y_part.dtype.kind in "USf" for y_part in labels):  # class names as strings, or labels as floats
            y, class_names = merge_labels([encode_labels(y_part, f"{where}: y") for where, _, y_part, _ in parts],
                                          f"{path}: y")
        else:
            y = np.concatenate(labels)
        vocab_size = int(x.max()) + 1 if kind == "tokens" and x.size and x.dtype.kind in "iu" else None
        sizes = {key: len(y_part) for _, _, y_part, key in parts}
        val_samples, test_samples = sizes.get("val_path", 0), sizes.get("test_path", 0)
        raw = RawInputs(description=f"one sample x[i] of {path.name}'s array x, as the file holds it")
        return LabeledArrays(x, y, kind, vocab_size=vocab_size, class_names=class_names, raw=raw,
                             val_samples=val_samples, test_samples=test_samples)


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(NpzFile())
