"""Tabular data (sessions, users, products) and CTR logs: numeric and categorical columns.

A ``TabularSchema`` names the columns; ``load_tabular_csv`` reads them raw and a
``TabularPreprocessor`` turns them into model inputs:

* numeric: missing values -> the training median, then standardised with the training mean/std
  (``log_numeric`` first maps counts through ``sign(x) * log1p(|x|)``, the usual CTR transform);
* categorical: missing -> the category ``"<missing>"``; codes from the training vocabulary with
  0 reserved for values never seen in training, or (``hash_buckets``) a stable CRC32 hash into a
  fixed number of buckets, which needs no vocabulary and suits high-cardinality CTR ids.

Statistics are fitted on the training split only (``train_val_test_split`` does this). ``inputs``
returns ``(numeric float32 [N, n_numeric], categorical int64 [N, n_categorical])``, leaving out an
empty group; ``input_names`` says which.

    schema = TabularSchema(label="Revenue", categorical=("Month", "VisitorType", "Weekend"))
    ds = load_tabular_csv("online_shoppers_intention.csv", schema)      # task "binary"
"""
from __future__ import annotations

import math
import os
import re
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edge_kd.data.base import Dataset, as_indices
from edge_kd.data.csvio import column_index, read_csv
from edge_kd.errors import InputError

MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "?"})
MISSING_CATEGORY = "<missing>"
_POSITIVE_GUESSES = ("true", "1", "yes", "y", "positive", "pos", "1.0")


@dataclass(frozen=True)
class TabularSchema:
    """Which columns are features and which is the label.

    ``numeric``/``categorical`` left empty are inferred: every column except the label and ``drop``
    whose non-missing values all parse as numbers is numeric, the rest categorical. Name
    integer-coded categories (browser id, region) in ``categorical`` explicitly.
    ``positive``: the label value that means 1 for a binary task (guessed for true/false, 1/0,
    yes/no); with more than two label values it makes the task one-vs-rest.
    """

    label: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    positive: str | None = None
    drop: tuple[str, ...] = ()
    hash_buckets: int | None = None
    log_numeric: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "drop", tuple(self.drop))
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise InputError(f"tabular schema: column(s) {', '.join(sorted(both))} are both numeric and categorical")
        if self.label in self.numeric or self.label in self.categorical:
            raise InputError(f"tabular schema: the label column {self.label!r} is also listed as a feature")
        if self.hash_buckets is not None and self.hash_buckets < 2:
            raise InputError(f"tabular schema: hash_buckets must be >= 2, got {self.hash_buckets}")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_missing(v: str) -> bool:
    return v.strip().lower() in MISSING_TOKENS


def _to_float(v: str) -> float:
    return math.nan if _is_missing(v) else float(v)


def stable_hash(column: str, value: str, buckets: int) -> int:
    """Bucket of a categorical value: CRC32 of ``column\\0value`` (same on every platform and run)."""
    return zlib.crc32(f"{column}\x00{value}".encode("utf-8")) % buckets


@dataclass(frozen=True)
class TabularPreprocessor:
    """Statistics fitted on a training split (see the module doc). Plain data, JSON-ready."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    vocabularies: tuple[tuple[str, ...], ...] = ()
    hash_buckets: int | None = None
    log_numeric: bool = False

    @classmethod
    def fit(cls, numeric: np.ndarray, categorical: np.ndarray, schema: "TabularSchema",
            numeric_names: Sequence[str], categorical_names: Sequence[str]) -> "TabularPreprocessor":
        x = _log(numeric) if schema.log_numeric else numeric
        medians, means, stds = [], [], []
        for j in range(x.shape[1]):
            col = x[:, j]
            ok = col[~np.isnan(col)]
            med = float(np.median(ok)) if ok.size else 0.0
            filled = np.where(np.isnan(col), med, col)
            mean = float(filled.mean()) if filled.size else 0.0
            std = float(filled.std()) if filled.size else 1.0
            medians.append(med)
            means.append(mean)
            stds.append(std if std > 1e-12 else 1.0)
        vocabs: list[tuple[str, ...]] = []
        if schema.hash_buckets is None:
            for j in range(categorical.shape[1]):
                vocabs.append(tuple(sorted(set(categorical[:, j].tolist()))))
        return cls(tuple(numeric_names), tuple(categorical_names), tuple(medians), tuple(means), tuple(stds),
                   tuple(vocabs), schema.hash_buckets, schema.log_numeric)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Number of codes per categorical column (embedding table sizes)."""
        if self.hash_buckets is not None:
            return tuple(self.hash_buckets for _ in self.categorical)
        return tuple(len(v) + 1 for v in self.vocabularies)

    def transform(self, numeric: np.ndarray, categorical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = _log(numeric) if self.log_numeric else numeric
        med = np.asarray(self.medians, dtype=np.float64)
        x = np.where(np.isnan(x), med, x)
        x = ((x - np.asarray(self.means)) / np.asarray(self.stds)).astype(np.float32)
        codes = np.zeros(categorical.shape, dtype=np.int64)
        for j, name in enumerate(self.categorical):
            col = categorical[:, j]
            if self.hash_buckets is not None:
                codes[:, j] = [stable_hash(name, v, self.hash_buckets) for v in col]
            else:
                index = {v: i + 1 for i, v in enumerate(self.vocabularies[j])}
                codes[:, j] = [index.get(v, 0) for v in col]
        return x, codes

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical), "medians": list(self.medians),
                "means": list(self.means), "stds": list(self.stds),
                "vocabularies": [list(v) for v in self.vocabularies], "hash_buckets": self.hash_buckets,
                "log_numeric": self.log_numeric}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TabularPreprocessor":
        return cls(tuple(d["numeric"]), tuple(d["categorical"]), tuple(d["medians"]), tuple(d["means"]),
                   tuple(d["stds"]), tuple(tuple(v) for v in d.get("vocabularies", ())), d.get("hash_buckets"),
                   bool(d.get("log_numeric", False)))


def _log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class TabularDataset(Dataset):
    """Raw numeric (float64, NaN = missing) and categorical (str) columns, labels, and the fitted
    preprocessing that makes model inputs."""

    def __init__(self, numeric: np.ndarray, categorical: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                 *, schema: TabularSchema, numeric_names: Sequence[str], categorical_names: Sequence[str],
                 task: str, source: str = "", preprocessor: TabularPreprocessor | None = None):
        self.raw_numeric = numeric
        self.raw_categorical = categorical
        self.labels = np.asarray(labels, dtype=np.int64)
        self.label_names = list(label_names)
        self.schema = schema
        self.numeric_names = tuple(numeric_names)
        self.categorical_names = tuple(categorical_names)
        self.task = task
        self.source = source
        self.preprocessor = preprocessor
        names = []
        if self.numeric_names:
            names.append("numeric")
        if self.categorical_names:
            names.append("categorical")
        self.input_names = tuple(names)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return self._prep().cardinalities

    @property
    def num_numeric(self) -> int:
        return len(self.numeric_names)

    def _prep(self) -> TabularPreprocessor:
        if self.preprocessor is None:
            raise InputError(f"{self.source}: tabular preprocessing is not fitted; call .fit() on the training split")
        return self.preprocessor

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            self._cache = self._prep().transform(self.raw_numeric, self.raw_categorical)
        return self._cache

    def inputs(self, indices=None) -> tuple[np.ndarray, ...]:
        idx = as_indices(indices, len(self))
        num, cat = self._arrays()
        out = []
        if self.numeric_names:
            out.append(num[idx])
        if self.categorical_names:
            out.append(cat[idx])
        return tuple(out)

    def _copy(self, idx: np.ndarray | None, preprocessor: TabularPreprocessor | None) -> "TabularDataset":
        sl = slice(None) if idx is None else idx
        return TabularDataset(self.raw_numeric[sl], self.raw_categorical[sl], self.labels[sl], self.label_names,
                              schema=self.schema, numeric_names=self.numeric_names,
                              categorical_names=self.categorical_names, task=self.task, source=self.source,
                              preprocessor=preprocessor)

    def _take(self, idx: np.ndarray) -> "TabularDataset":
        return self._copy(idx, self.preprocessor)

    def fit(self) -> "TabularDataset":
        if len(self) == 0:
            raise InputError(f"{self.source}: cannot fit preprocessing on an empty split")
        prep = TabularPreprocessor.fit(self.raw_numeric, self.raw_categorical, self.schema,
                                       self.numeric_names, self.categorical_names)
        return self._copy(None, prep)

    def fitted_like(self, train: Dataset) -> "TabularDataset":
        if not isinstance(train, TabularDataset) or train.preprocessor is None:
            raise InputError("fitted_like needs a fitted TabularDataset")
        if train.numeric_names != self.numeric_names or train.categorical_names != self.categorical_names:
            raise InputError(f"{self.source}: columns differ from the training data {train.source}")
        return self._copy(None, train.preprocessor)

    def _update_fingerprint(self, h: Any) -> None:
        h.update(repr(self.schema).encode())
        h.update(np.ascontiguousarray(self.raw_numeric).tobytes())
        for row in self.raw_categorical.tolist():
            h.update("\x00".join(row).encode())

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(numeric=list(self.numeric_names), categorical=list(self.categorical_names))
        if self.preprocessor is not None:
            d["cardinalities"] = list(self.cardinalities)
        return d


def _encode_tabular_labels(values: list[str], schema: TabularSchema, path: str) -> tuple[np.ndarray, list[str], str]:
    distinct = sorted(set(values))
    if len(distinct) < 2 and schema.positive is None:
        raise InputError(f"{path}: label column {schema.label!r} has a single value ({distinct[0]!r}); need two classes")
    positive = schema.positive
    if positive is None and len(distinct) == 2:
        for guess in _POSITIVE_GUESSES:
            match = [v for v in distinct if v.lower() == guess]
            if match:
                positive = match[0]
                break
    if positive is not None:
        if positive not in distinct:
            raise InputError(f"{path}: positive label {positive!r} does not occur in column {schema.label!r} "
                             f"(values: {', '.join(distinct[:10])})")
        negatives = [v for v in distinct if v != positive]
        neg_name = negatives[0] if len(negatives) == 1 else f"not {positive}"
        labels = np.array([1 if v == positive else 0 for v in values], dtype=np.int64)
        return labels, [neg_name, positive], "binary"
    index = {v: i for i, v in enumerate(distinct)}
    labels = np.array([index[v] for v in values], dtype=np.int64)
    return labels, distinct, "binary" if len(distinct) == 2 else "classification"


def load_tabular_csv(path: str | os.PathLike[str], schema: TabularSchema, *, delimiter: str = ",") -> TabularDataset:
    """Read a CSV per ``schema``; preprocessing is fitted on the whole file (refit on a training
    split with ``train_val_test_split`` or ``.fit()``).

    >>> ds = load_tabular_csv("online_shoppers_intention.csv",
    ...                       TabularSchema(label="Revenue", categorical=("Month", "VisitorType", "Weekend")))
    >>> ds.task, ds.input_names          # "binary", ("numeric", "categorical")
    """
    header, rows = read_csv(path, delimiter=delimiter)
    if not rows:
        raise InputError(f"{path}: the file has a header but no rows")
    li = column_index(header, schema.label, path, "label column")
    for name in (*schema.numeric, *schema.categorical, *schema.drop):
        column_index(header, name, path)
    named = {schema.label, *schema.numeric, *schema.categorical, *schema.drop}
    numeric = list(schema.numeric)
    categorical = list(schema.categorical)
    for j, name in enumerate(header):
        if name in named:
            continue
        try:
            for r in rows:
                _to_float(r[j])
            numeric.append(name)
        except ValueError:
            categorical.append(name)
    if not numeric and not categorical:
        raise InputError(f"{path}: no feature columns besides the label {schema.label!r}")
    num = np.empty((len(rows), len(numeric)), dtype=np.float64)
    for k, name in enumerate(numeric):
        j = header.index(name)
        for i, r in enumerate(rows):
            try:
                num[i, k] = _to_float(r[j])
            except ValueError:
                raise InputError(f"{path}: row {i + 2}: numeric column {name!r} has {r[j]!r}, not a number") from None
            # Empty/"nan" cells are missing values (filled with the median); an infinite or
            # float32-overflowing number would turn the column's mean and every input into NaN.
            if abs(num[i, k]) > _FLOAT32_MAX:
                raise InputError(f"{path}: row {i + 2}: numeric column {name!r} has {r[j].strip()!r}, which is not "
                                 "a finite float32 number (leave the cell empty to mark a missing value)")
    cat = np.empty((len(rows), len(categorical)), dtype=object)
    for k, name in enumerate(categorical):
        j = header.index(name)
        cat[:, k] = [MISSING_CATEGORY if _is_missing(r[j]) else r[j].strip() for r in rows]
    values = [r[li].strip() for r in rows]
    for i, v in enumerate(values):
        if _is_missing(v):
            raise InputError(f"{path}: row {i + 2} has no label in column {schema.label!r}")
    labels, names, task = _encode_tabular_labels(values, schema, str(path))
    ds = TabularDataset(num, cat, labels, names, schema=schema, numeric_names=numeric, categorical_names=categorical,
                        task=task, source=str(path))
    return ds.fit()


CRITEO_NUMERIC = re.compile(r"I\d+")


def load_ctr_csv(path: str | os.PathLike[str], *, label: str = "label", buckets: int = 10_000,
                 numeric: Sequence[str] | None = None, categorical: Sequence[str] | None = None,
                 drop: Sequence[str] = ("id",)) -> TabularDataset:
    """A click log (Criteo/Avazu style CSV with a header): click label, dense counts, hashed ids.

    By default, columns named ``I1``, ``I2``, ... are numeric (log-transformed, standardised) and
    every other column except ``label`` and ``drop`` is categorical, hashed into ``buckets``.

    >>> ds = load_ctr_csv("criteo_sample.txt", buckets=1000)
    >>> num, cat = ds.inputs([0, 1])      # float32 [2, 13], int64 [2, 26]
    """
    header, _ = read_csv(path)  # only to resolve default column lists with good errors
    column_index(header, label, path, "label column")
    drop = tuple(d for d in drop if d in header)
    if numeric is None:
        numeric = [c for c in header if CRITEO_NUMERIC.fullmatch(c)]
    if categorical is None:
        categorical = [c for c in header if c not in (label, *drop, *numeric)]
    schema = TabularSchema(label=label, numeric=tuple(numeric), categorical=tuple(categorical), drop=drop,
                           hash_buckets=buckets, log_numeric=True, positive="1")
    return load_tabular_csv(path, schema)
