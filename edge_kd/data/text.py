"""Text classification data: utterances with intent labels (support tickets, search queries).

Texts stay raw strings; a model's tokenizer is attached with ``tokenized(fn)`` so the teacher and
each student can tokenize the same rows their own way.

    ds = load_text_csv("customer_support.csv", "instruction", "intent")
    ids = ds.tokenized(lambda texts: tokenizer(texts, 32))
    input_ids, attention_mask = ids.inputs([0, 1])
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from edge_kd.data.base import Dataset, as_indices, encode_labels
from edge_kd.data.csvio import column_index, read_csv
from edge_kd.errors import InputError

#: texts -> model input arrays (e.g. input_ids and attention_mask, int64, shape [N, seq_len]).
Tokenizer = Callable[[list[str]], tuple[np.ndarray, ...]]


class TextDataset(Dataset):
    """Raw texts with integer labels. ``inputs`` returns ``(texts,)`` as an object array."""

    input_names = ("text",)

    def __init__(self, texts: Sequence[str], labels: np.ndarray, label_names: Sequence[str], *, source: str = ""):
        self.texts = list(texts)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.label_names = list(label_names)
        self.source = source
        self.task = "binary" if len(self.label_names) == 2 else "classification"
        if len(self.texts) != len(self.labels):
            raise ValueError("texts and labels differ in length")

    def inputs(self, indices=None) -> tuple[np.ndarray, ...]:
        idx = as_indices(indices, len(self))
        return (np.array([self.texts[i] for i in idx], dtype=object),)

    def _take(self, idx: np.ndarray) -> "TextDataset":
        return TextDataset([self.texts[i] for i in idx], self.labels[idx], self.label_names, source=self.source)

    def _update_fingerprint(self, h: Any) -> None:
        for t in self.texts:
            h.update(t.encode("utf-8"))
            h.update(b"\x00")

    def tokenized(self, tokenize: Tokenizer, *, name: str = "", input_names: tuple[str, ...] = ("input_ids", "attention_mask")
                  ) -> "TokenizedTextDataset":
        """A view whose ``inputs`` are the tokenizer's arrays. ``name`` identifies the tokenizer
        (and its max length) in fingerprints."""
        return TokenizedTextDataset(self, tokenize, name=name, input_names=input_names)


class TokenizedTextDataset(Dataset):
    """A TextDataset seen through a tokenizer; token arrays are computed once and kept."""

    def __init__(self, base: TextDataset, tokenize: Tokenizer, *, name: str = "",
                 input_names: tuple[str, ...] = ("input_ids", "attention_mask")):
        self.base = base
        self.tokenize = tokenize
        self.tokenizer_name = name
        self.input_names = tuple(input_names)
        self.labels = base.labels
        self.label_names = base.label_names
        self.task = base.task
        self.source = base.source
        self._arrays: tuple[np.ndarray, ...] | None = None

    @property
    def texts(self) -> list[str]:
        return self.base.texts

    def _all(self) -> tuple[np.ndarray, ...]:
        if self._arrays is None:
            arrays = self.tokenize(self.base.texts)
            self._arrays = tuple(np.asarray(a) for a in arrays)
        return self._arrays

    def inputs(self, indices=None) -> tuple[np.ndarray, ...]:
        idx = as_indices(indices, len(self))
        return tuple(a[idx] for a in self._all())

    def _take(self, idx: np.ndarray) -> "TokenizedTextDataset":
        view = TokenizedTextDataset(self.base._take(idx), self.tokenize, name=self.tokenizer_name,
                                    input_names=self.input_names)
        if self._arrays is not None:
            view._arrays = tuple(a[idx] for a in self._arrays)
        return view

    def _update_fingerprint(self, h: Any) -> None:
        h.update(self.tokenizer_name.encode())
        self.base._update_fingerprint(h)


def load_text_csv(path: str | os.PathLike[str], text_column: str, label_column: str, *,
                  labels: Sequence[str] | None = None) -> TextDataset:
    """Load a CSV of texts and labels.

    Label names are sorted (deterministic codes) unless ``labels`` fixes the list, which is how a
    test file is encoded with the training file's codes.

    >>> train = load_text_csv("banking77/train.csv", "text", "category")
    >>> test = load_text_csv("banking77/test.csv", "text", "category", labels=train.label_names)
    """
    header, rows = read_csv(path)
    ti = column_index(header, text_column, path, "text column")
    li = column_index(header, label_column, path, "label column")
    if not rows:
        raise InputError(f"{path}: the file has a header but no rows")
    texts = [r[ti] for r in rows]
    values = [r[li].strip() for r in rows]
    for n, v in enumerate(values):
        if not v:
            raise InputError(f"{path}: row {n + 2} has an empty label in column {label_column!r}")
    codes, names = encode_labels(values, labels, where=str(path))
    if len(names) < 2:
        raise InputError(f"{path}: column {label_column!r} has a single label ({names[0]!r}); need at least two classes")
    return TextDataset(texts, codes, names, source=str(path))

