"""A digest of a dataset as its plugin loaded it and as it was split: what a resumed study's data
is compared with (automl.search.fingerprint).

It is taken before normalization: raw values and split indices are exact on every machine, while
float statistics may differ in their last bits between CPUs and thread counts.
"""

from __future__ import annotations

import hashlib

import numpy as np

from automl.plugin.arrays import LabeledArrays


def _array_bytes(values: np.ndarray) -> bytes:
    if values.dtype == object or values.dtype.kind in "US":  # texts: their characters, not object pointers
        return "\x1f".join(str(value) for value in values.ravel()).encode("utf-8", "surrogatepass")
    return np.ascontiguousarray(values).tobytes()


def data_sha256(arrays: LabeledArrays, splits: tuple[np.ndarray, ...], token_ids: np.ndarray | None = None) -> str:
    """SHA-256 (hex) of the samples, labels, kind and class names of ``arrays``, of the split
    indices ``splits`` (train, validation, test) and of the ``token_ids`` a tokenizer made of the
    texts (its options change them, not the texts)."""
    digest = hashlib.sha256()
    header = [arrays.kind, str(arrays.x.dtype), str(arrays.x.shape), str(arrays.class_names),
              *(str(len(split)) for split in splits)]
    digest.update("|".join(header).encode("utf-8"))
    exact = [arrays.x, arrays.y.astype(np.int64), *(split.astype(np.int64) for split in splits)]
    if token_ids is not None:
        exact.append(np.asarray(token_ids, dtype=np.int64))
    for values in exact:
        digest.update(_array_bytes(values))
    return digest.hexdigest()
