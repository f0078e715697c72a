"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, read from a torchvision root folder.

The files are read here rather than through torchvision: torchvision wheels are built against one
torch release each, so it cannot be a dependency of every torch build automl installs beside, and
the formats are tiny (IDX: a short header and a uint8 array; CIFAR: pickled batches). torchvision
is used only to download, when a study asks for it and the ``automl-pareto[torchvision]`` extra is
installed. Each keeps its own test set as the test split.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

import automl
from automl import DataPath, DatasetOptions, LabeledArrays, RawInputs, UsageError

IDX_UINT8 = 0x08


def _read_bytes(path: Path) -> bytes:
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as file:
        return file.read()


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes: magic ``0 0 8 rank``, ``rank`` big-endian sizes, the data."""
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UINT8:
        raise UsageError(f"{path} is not an IDX file of unsigned bytes")
    rank = data[3]
    shape = tuple(np.frombuffer(data, dtype=">u4", count=rank, offset=4).tolist())
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if values.size != np.prod(shape):
        raise UsageError(f"{path}: header says {list(shape)}, but the file holds {values.size} values")
    return values.reshape(shape)


def read_pickle(path: Path) -> dict[str, Any]:
    # CIFAR ships as Python pickles; this reads the user's own copy, as torchvision itself does.
    return pickle.loads(_read_bytes(path), encoding="latin1")


class TorchvisionOptions(DatasetOptions):
    path: DataPath = Field(description="the torchvision root folder (holding MNIST/raw/, cifar-10-batches-py/ "
                           "and the like); [data] download = true fetches the files into it")
    # Fetch the files into ``path`` when they are not there (needs the automl-pareto[torchvision] extra).
    download: bool = False


class TorchvisionDataset:
    """One torchvision dataset: its class there, its folder under the root, and how to read it."""

    options = TorchvisionOptions

    def __init__(self, name: str, torchvision_class: str, folder: str) -> None:
        self.name, self.torchvision_class, self.folder = name, torchvision_class, folder

    def load(self, seed: int, options: TorchvisionOptions) -> LabeledArrays:
        root = options.path
        if not (root / self.folder).is_dir():
            if not options.download:
                raise UsageError(
                    f"dataset {self.name!r}: no {self.folder} folder under [data] path {root}; place "
                    f"torchvision's files there, or set [data] download = true to fetch them")
            self._download(root)
        try:
            train, test = self.read(root / self.folder)
        except (OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            raise UsageError(f"dataset {self.name!r}: cannot read {root / self.folder} "
                             f"({type(exc).__name__}: {exc}); fetch the files again") from None
        x = np.concatenate([train.x, test.x]).astype(np.float32) / 255.0
        raw = RawInputs(scale=1 / 255, description=f"pixel values 0..255 as [{', '.join(map(str, x.shape[1:]))}] "
                        f"(channels, height, width), as torchvision's {self.torchvision_class} files hold them")
        return LabeledArrays(x, np.concatenate([train.y, test.y]).astype(np.int64), "image",
                             class_names=train.class_names, test_samples=len(test.y), raw=raw)

    def _download(self, root: Path) -> None:
        try:
            import torchvision
        except ImportError:
            raise UsageError(f"dataset {self.name!r}: [data] download = true needs torchvision; install "
                             "it in automl's environment with pip install \"automl-pareto[torchvision]\", or "
                             f"place torchvision's files under {root / self.folder}") from None
        try:
            for train in (True, False):
                getattr(torchvision.datasets, self.torchvision_class)(str(root), train=train, download=True)
        except (OSError, RuntimeError) as exc:  # torchvision's own error when every mirror fails
            raise UsageError(f"dataset {self.name!r}: downloading into {root} failed: {exc}") from None

    def read(self, folder: Path) -> tuple[LabeledArrays, LabeledArrays]:
        raise NotImplementedError


class IdxDataset(TorchvisionDataset):
    """MNIST-style: ``FOLDER/train-images-idx3-ubyte`` and the like, plain or gzipped."""

    def read(self, folder: Path) -> tuple[LabeledArrays, LabeledArrays]:
        def part(prefix: str) -> LabeledArrays:
            images = read_idx(_existing(folder / f"{prefix}-images-idx3-ubyte"))
            labels = read_idx(_existing(folder / f"{prefix}-labels-idx1-ubyte"))
            return LabeledArrays(images[:, None], labels, "image")
        return part("train"), part("t10k")


class CifarDataset(TorchvisionDataset):
    """CIFAR-style pickled batches: ``data`` rows of 3x32x32 bytes and a list of labels."""

    def __init__(self, name: str, torchvision_class: str, folder: str, train_files: list[str],
                 test_file: str, label_key: str, meta_file: str, names_key: str) -> None:
        super().__init__(name, torchvision_class, folder)
        self.train_files, self.test_file = train_files, test_file
        self.label_key, self.meta_file, self.names_key = label_key, meta_file, names_key

    def read(self, folder: Path) -> tuple[LabeledArrays, LabeledArrays]:
        meta = folder / self.meta_file
        names = tuple(read_pickle(meta)[self.names_key]) if meta.exists() else None

        def part(files: list[str]) -> LabeledArrays:
            batches = [read_pickle(_existing(folder / file)) for file in files]
            x = np.concatenate([np.asarray(batch["data"], dtype=np.uint8) for batch in batches])
            y = np.concatenate([np.asarray(batch[self.label_key]) for batch in batches])
            return LabeledArrays(x.reshape(-1, 3, 32, 32), y, "image", class_names=names)
        return part(self.train_files), part([self.test_file])


def _existing(path: Path) -> Path:
    """``path``, or its gzipped copy, or an error naming the file that is missing."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            return candidate
    raise UsageError(f"{path} does not exist; torchvision's layout has it there")


DATASETS = [
    IdxDataset("mnist", "MNIST", "MNIST/raw"),
    IdxDataset("fashion_mnist", "FashionMNIST", "FashionMNIST/raw"),
    CifarDataset("cifar10", "CIFAR10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                 "test_batch", "labels", "batches.meta", "label_names"),
    CifarDataset("cifar100", "CIFAR100", "cifar-100-python", ["train"], "test", "fine_labels",
                 "meta", "fine_label_names"),
]


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    for dataset in DATASETS:
        register(dataset)
