"""Small data files in the layouts the built-in datasets read, written into a test's folder."""

from __future__ import annotations

import csv
import gzip
import pickle
from pathlib import Path

import numpy as np

SEED = 0


def labels(classes: int, per_class: int) -> np.ndarray:
    return np.random.default_rng(SEED).permutation(np.repeat(np.arange(classes), per_class))


def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, x=x, y=y)
    return path


def write_table(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """A CSV file, or a TSV file when ``path`` ends in .tsv."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file, delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_pngs(root: Path, classes: dict[str, int], mode: str = "L", side: int = 8) -> Path:
    """``root/CLASS/N.png``: ``count`` images per class, their brightness telling the class."""
    from PIL import Image

    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for number in range(count):
            Image.new(mode, (side, side), (40 * index + number,) * len(mode)).save(root / name / f"{number}.png")
    return root


def _write_idx(path: Path, array: np.ndarray, gzipped: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    if gzipped:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist(root: Path, folder: str = "MNIST", train: int = 60, test: int = 20,
                gzipped: bool = False) -> Path:
    """torchvision's MNIST layout: ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    for prefix, count in (("train", train), ("t10k", test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)), gzipped)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels(10, count // 10), gzipped)
    return root


def write_cifar(root: Path, hundred: bool = False, per_batch: int = 20, test: int = 20) -> Path:
    """torchvision's CIFAR-10 (five data batches, a test batch) or CIFAR-100 layout, tiny."""
    rng = np.random.default_rng(SEED)
    classes = 100 if hundred else 10
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"
    files = {"train": 5 * per_batch, "test": test} if hundred else {
        **{f"data_batch_{i}": per_batch for i in range(1, 6)}, "test_batch": test}
    for name, count in files.items():
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                 key: [int(i) % classes for i in range(count)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta, names_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    (folder / meta).write_bytes(pickle.dumps({names_key: [f"class{i}" for i in range(classes)]}))
    return root
