"""Data already turned into arrays: an ``.npz`` file with a ``labels`` array and input arrays.

Keys: ``labels`` (integers, required), optional ``label_names`` (strings), optional ``input_names``
(strings: which arrays are inputs, in order); without ``input_names`` every other array is an
input, in file order. Files are read with ``allow_pickle=False`` (no code runs on load).

    np.savez("calib.npz", image=x, labels=y)
    ds = load_npz("calib.npz")
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_kd.data.base import Dataset, as_indices
from edge_kd.data.csvio import check_file
from edge_kd.errors import InputError


class ArrayDataset(Dataset):
    """Named input arrays (first axis = rows) and integer labels."""

    def __init__(self, arrays: Sequence[np.ndarray], input_names: Sequence[str], labels: np.ndarray,
                 label_names: Sequence[str] | None = None, *, task: str | None = None, source: str = ""):
        self.arrays = tuple(np.asarray(a) for a in arrays)
        self.input_names = tuple(input_names)
        self.labels = np.asarray(labels, dtype=np.int64)
        n_cls = int(self.labels.max()) + 1 if self.labels.size else 0
        self.label_names = list(label_names) if label_names is not None else [str(i) for i in range(n_cls)]
        self.task = task or ("binary" if len(self.label_names) == 2 else "classification")
        self.source = source
        for name, a in zip(self.input_names, self.arrays):
            if a.shape[0] != len(self.labels):
                raise InputError(f"{source}: array {name!r} has {a.shape[0]} rows, labels have {len(self.labels)}")

    def inputs(self, indices=None) -> tuple[np.ndarray, ...]:
        idx = as_indices(indices, len(self))
        return tuple(a[idx] for a in self.arrays)

    def _take(self, idx: np.ndarray) -> "ArrayDataset":
        return ArrayDataset([a[idx] for a in self.arrays], self.input_names, self.labels[idx], self.label_names,
                            task=self.task, source=self.source)


def load_npz(path: str | os.PathLike[str]) -> ArrayDataset:
    """Load an ``.npz`` data set (see the module doc)."""
    p = check_file(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p}: not a readable .npz file without pickles ({exc})") from None
    if "labels" not in data:
        raise InputError(f"{p}: no 'labels' array; arrays are: {', '.join(data) or 'none'}")
    labels = data.pop("labels")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{p}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise InputError(f"{p}: 'labels' has negative values")
    names = [str(s) for s in data.pop("label_names")] if "label_names" in data else None
    if "input_names" in data:
        input_names = [str(s) for s in data.pop("input_names")]
        missing = [n for n in input_names if n not in data]
        if missing:
            raise InputError(f"{p}: input {missing[0]!r} listed in input_names has no array")
    else:
        input_names = list(data)
    if not input_names:
        raise InputError(f"{p}: no input arrays besides 'labels'")
    if names is not None and labels.size and labels.max() >= len(names):
        raise InputError(f"{p}: label {labels.max()} has no entry in label_names ({len(names)} names)")
    from edge_kd.data.finite import check_finite

    for n in input_names:
        check_finite(data[n], source=str(p), what=f"array {n!r}")
    return ArrayDataset([data[n] for n in input_names], input_names, labels, names, source=str(Path(p)))
