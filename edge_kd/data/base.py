"""The one interface every data set offers to the stages (distill, quantize, bench, fine-tune).

A data set is labels plus a way to turn a batch of row indices into model inputs::

    ds = load_text_csv("intents.csv", "text", "intent")
    len(ds), ds.num_classes, ds.task          # 4514, 27, "classification"
    (texts,) = ds.inputs([0, 1, 2])           # raw strings until a tokenizer is attached
    tok = ds.tokenized(my_tokenize)           # -> inputs() returns (input_ids, attention_mask)

Everything here is numpy and the standard library; torch is never imported, so a data spec can be
checked in a CLI that stays lean.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterator, Literal, Sequence

import numpy as np

from edge_kd.errors import InputError

Task = Literal[
    "classification", "binary",
    # ---- demand forecasting (edge_kd.data.forecast): one float label per row, lower-is-better metrics
    "regression",
    # ---- end demand forecasting
    # ---- next-purchase (edge_kd.data.transactions): labels are target sets ``int64 [N, K]`` (-1 padded)
    # over ``label_names``
    "ranking",
]


def as_indices(indices: Sequence[int] | np.ndarray | slice | None, n: int) -> np.ndarray:
    """Normalise an index argument (None = all rows) to an int64 array, bounds-checked."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(indices, slice):
        return np.arange(n, dtype=np.int64)[indices]
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"row index out of range for a data set of {n} rows")
    return idx


class Dataset:
    """Base class: labels, label names, task, and ``inputs(indices) -> tuple[np.ndarray, ...]``.

    Subclasses set ``labels`` (int64, one per row), ``label_names`` and ``task``; they implement
    ``inputs`` and ``_take`` (the same data set restricted to some rows). ``source`` says where the
    rows came from, for manifests and error messages.
    """

    labels: np.ndarray
    label_names: list[str]
    task: Task = "classification"
    source: str = ""
    #: Names of the arrays ``inputs`` returns, in order (they become the model's input names).
    input_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def inputs(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def subset(self, indices: Sequence[int] | np.ndarray) -> "Dataset":
        """The same data set restricted to ``indices`` (label names and preprocessing are kept)."""
        return self._take(as_indices(indices, len(self)))

    def _take(self, idx: np.ndarray) -> "Dataset":
        raise NotImplementedError

    def fitted_like(self, train: "Dataset") -> "Dataset":
        """This data set with any statistics (standardisation, vocabularies) taken from ``train``.
        Identity for data sets without fitted preprocessing."""
        return self

    def fit(self) -> "Dataset":
        """This data set with its preprocessing fitted on its own rows (use on a training split)."""
        return self

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    @property
    def strata(self) -> np.ndarray:
        """Integer groups that calibration samples are stratified by: the labels, or (regression)
        bins of the label."""
        return self.labels

    def fingerprint(self) -> str:
        """A content hash of rows, labels and preprocessing (cache key for features)."""
        h = hashlib.sha256()
        h.update(type(self).__name__.encode())
        self._update_fingerprint(h)
        h.update(np.ascontiguousarray(self.labels).tobytes())
        h.update("\x00".join(self.label_names).encode())
        return h.hexdigest()[:16]

    def _update_fingerprint(self, h: Any) -> None:
        for arr in self.inputs():
            h.update(np.ascontiguousarray(arr).tobytes())

    def describe(self) -> dict[str, Any]:
        """Facts for a build manifest."""
        return {"source": self.source, "rows": len(self), "task": self.task, "num_classes": self.num_classes,
                "inputs": list(self.input_names), "class_counts": self.class_counts().tolist()}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} rows, {self.num_classes} classes, task={self.task!r}, "
                f"source={self.source!r})")


def iter_batches(ds: Dataset, batch_size: int, *, indices: Sequence[int] | np.ndarray | None = None,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False
                 ) -> Iterator[tuple[tuple[np.ndarray, ...], np.ndarray]]:
    """Yield ``(inputs, labels)`` batches of numpy arrays.

    >>> for inputs, labels in iter_batches(ds, 64, shuffle=True, seed=0): ...
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    idx = as_indices(indices, len(ds))
    if shuffle:
        idx = np.random.default_rng(seed).permutation(idx)
    for start in range(0, len(idx), batch_size):
        chunk = idx[start:start + batch_size]
        if drop_last and len(chunk) < batch_size:
            break
        yield ds.inputs(chunk), ds.labels[chunk]


def encode_labels(values: Sequence[str], labels: Sequence[str] | None, *, where: str) -> tuple[np.ndarray, list[str]]:
    """Map label strings to int64 codes. Names are sorted, or taken from ``labels`` (an unknown
    value is then an InputError naming it)."""
    if labels is None:
        names = sorted(set(values))
    else:
        names = [str(v) for v in labels]
        if len(set(names)) != len(names):
            raise InputError(f"{where}: the given label list has duplicates")
    index = {name: i for i, name in enumerate(names)}
    try:
        codes = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    except KeyError as exc:
        raise InputError(f"{where}: label {exc.args[0]!r} is not one of the known labels "
                         f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})") from None
    return codes, names
