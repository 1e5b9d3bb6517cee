"""Deterministic, seeded, stratified splits and calibration samples.

The same seed gives the same rows on every machine (numpy's PCG64 generator), and every class is
split in the same proportions, so a small class never lands wholly in one split by chance.

    splits = train_val_test_split(ds, val=0.1, test=0.2, seed=0)
    idx = calibration_sample(splits.train, 128, seed=0)   # row indices, stratified by label
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge_kd.data.base import Dataset
from edge_kd.errors import InputError


@dataclass(frozen=True)
class Splits:
    """Train / validation / test data sets. Preprocessing statistics come from ``train`` only."""

    train: Dataset
    val: Dataset
    test: Dataset

    def describe(self) -> dict:
        return {name: getattr(self, name).describe() for name in ("train", "val", "test")}


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding of ``total * weights`` (ties broken by position, so deterministic)."""
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:
        # Rounded so that float noise (5.6 - 5 < 1.6 - 1) does not decide ties; ties go to the first part.
        order = np.argsort(-np.round(raw - out, 9), kind="stable")
        out[order[:short]] += 1
    return out


def stratified_split_indices(labels: np.ndarray, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Split row indices into ``len(fractions)`` parts, per class, in the given proportions.

    The first part gets every row a class cannot spare: a class of one row goes to the first part,
    a class of two rows gives one row to the first part and one to the next non-empty request.

    >>> parts = stratified_split_indices(np.array([0, 0, 1, 1]), [0.5, 0.5], seed=0)
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) < 1 or (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        rows = rows[rng.permutation(len(rows))]
        counts = _allocate(len(rows), fr)
        # Keep at least one row of every class in the first (training) part.
        if counts[0] == 0 and len(rows) > 0:
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[0] += 1
        start = 0
        for p, c in enumerate(counts):
            parts[p].append(rows[start:start + c])
            start += c
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def train_val_test_split(ds: Dataset, *, val: float = 0.1, test: float = 0.2, seed: int = 0) -> Splits:
    """Stratified split of one data set; fitted preprocessing (tabular) is fitted on train only.

    >>> s = train_val_test_split(load_text_csv("support.csv", "instruction", "intent"), val=0.1, test=0.2)
    >>> len(s.train), len(s.val), len(s.test)
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise InputError(f"split fractions must satisfy 0 <= val, test and val + test < 1 (got val={val}, test={test})")
    train_idx, val_idx, test_idx = stratified_split_indices(ds.labels, [1 - val - test, val, test], seed)
    if len(train_idx) == 0:
        raise InputError(f"{ds.source}: the training split is empty")
    train = ds.subset(train_idx).fit()
    return Splits(train, ds.subset(val_idx).fitted_like(train), ds.subset(test_idx).fitted_like(train))


def split_off(ds: Dataset, fraction: float, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Stratified split of ``ds`` into (rest, part) with ``part`` about ``fraction`` of the rows
    (e.g. a validation set carved from a given training file). No fitting is done here."""
    rest, part = stratified_split_indices(ds.labels, [1 - fraction, fraction], seed)
    return ds.subset(rest), ds.subset(part)


def calibration_sample(dataset: Dataset, n: int, seed: int = 0) -> np.ndarray:
    """Row indices of ``n`` rows drawn without replacement, stratified by label (sorted).

    Each class gets a share proportional to its size (largest-remainder rounding); when ``n`` is at
    least the number of classes, every class is represented. ``n`` >= len(dataset) returns all rows.

    >>> idx = calibration_sample(train_ds, 200, seed=0)
    >>> calib_inputs = train_ds.inputs(idx)
    """
    total = len(dataset)
    if n < 1:
        raise InputError(f"calibration sample size must be >= 1, got {n}")
    if total == 0:
        raise InputError(f"{dataset.source}: cannot draw a calibration sample from an empty data set")
    if n >= total:
        return np.arange(total, dtype=np.int64)
    labels = np.asarray(dataset.strata)
    if labels.ndim > 1:  # target sets (next-purchase ranking): no single label to stratify by
        return np.sort(np.random.default_rng(seed).choice(total, n, replace=False)).astype(np.int64)
    classes, sizes = np.unique(labels, return_counts=True)
    counts = _allocate(n, sizes.astype(np.float64))
    if n >= len(classes):
        # Give every class at least one row, taking from the largest allocations.
        for i in np.flatnonzero(counts == 0):
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[i] += 1
    counts = np.minimum(counts, sizes)
    # Rows lost to the cap (a class smaller than its share) go to classes with rows to spare.
    missing = n - int(counts.sum())
    while missing > 0:
        spare = np.flatnonzero(counts < sizes)
        take = spare[np.argsort(-(sizes[spare] - counts[spare]), kind="stable")][:missing]
        counts[take] += 1
        missing -= len(take)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls, c in zip(classes, counts):
        rows = np.flatnonzero(labels == cls)
        chosen.append(rng.choice(rows, size=int(c), replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
