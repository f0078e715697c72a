"""A NumPy ``.npz`` file with arrays ``x`` (samples) and ``y`` (labels); the shape of ``x`` says the kind.

``[N, C, H, W]`` is an image task, ``[N, T, F]`` a sequence task, ``[N, F]`` a table, and integer
``[N, T]`` token ids when ``[data] kind = "tokens"`` (0 pads, so real tokens start at 1).
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
from automl_plugins._files import FileOptions, data_path, encode_labels

KIND_BY_RANK = {4: "image", 3: "sequence", 2: "tabular"}
# How an .npz file (a zip archive) and a lone .npy array start.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"
RANK_BY_KIND = {"image": 4, "sequence": 3, "tabular": 2, "tokens": 2}


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


class NpzOptions(FileOptions):
    path: DataPath = Field(description="an .npz file with arrays x and y")
    # The task kind when the shape of x does not say it (integer [N, T] is tokens only if asked).
    kind: TaskKind | None = None


class NpzFile:
    name = "npz"
    options = NpzOptions

    def load(self, seed: int, options: NpzOptions) -> LabeledArrays:
        path = data_path(options, self.name)
        _check_format(path)
        try:
            with np.load(path, allow_pickle=False) as arrays:
                missing = [key for key in ("x", "y") if key not in arrays.files]
                if missing:
                    raise UsageError(f"{path} has no array {' or '.join(missing)}; it holds "
                                     f"{', '.join(arrays.files) or 'nothing'}")
                x, y = arrays["x"], arrays["y"]
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{path} is not a readable .npz file: {exc}") from None
        kind = options.kind or KIND_BY_RANK.get(x.ndim)
        if kind is None or x.ndim != RANK_BY_KIND[kind]:
            raise UsageError(f"{path}: x has shape {list(x.shape)}; expected [N, C, H, W] (image), "
                             "[N, T, F] (sequence), [N, F] (tabular) or integer [N, T] with [data] "
                             f"kind = \"tokens\"{f', for kind {kind!r}' if kind else ''}")
        class_names = None
        if y.dtype.kind in "USf":  # class names stored as strings, or labels as floats
            y, class_names = encode_labels(y, f"{path}: y")
        vocab_size = int(x.max()) + 1 if kind == "tokens" and x.size and x.dtype.kind in "iu" else None
        raw = RawInputs(description=f"one sample x[i] of {path.name}'s array x, as the file holds it")
        return LabeledArrays(x, y, kind, vocab_size=vocab_size, class_names=class_names, raw=raw)


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(NpzFile())
