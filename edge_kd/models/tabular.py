"""An MLP teacher for tabular and CTR data: standardised numeric features plus one embedding per
categorical column, concatenated, through a few Linear-BatchNorm-ReLU layers.

Inputs match ``edge_kd.data.TabularDataset.inputs``: ``numeric`` float32 [N, n_numeric] and
``categorical`` int64 [N, n_categorical] (either may be absent). Binary tasks use two logits, so
the same KD losses apply as for multi-class tasks. Trained locally (``train_tabular_mlp``).

    model = tabular_mlp(num_numeric=10, cardinalities=[11, 4, 3], num_classes=2)
    logits = model(torch.randn(8, 10), torch.zeros(8, 3, dtype=torch.long))
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edge_kd.errors import InputError
from edge_kd.models.early_stop import BestWeights


def embedding_dim(cardinality: int, cap: int = 16) -> int:
    """A common rule of thumb: about 1.6 * n^0.56, capped (fastai's default, with a smaller cap)."""
    return int(max(2, min(cap, round(1.6 * cardinality ** 0.56))))


class TabularMLP(nn.Module):
    """``forward(numeric, categorical) -> logits``; pass only the inputs the data set has."""

    def __init__(self, num_numeric: int, cardinalities: Sequence[int] = (), num_classes: int = 2,
                 hidden: Sequence[int] = (256, 128), dropout: float = 0.1, embed_cap: int = 16):
        super().__init__()
        if num_numeric < 0 or (num_numeric == 0 and not cardinalities):
            raise InputError("TabularMLP needs at least one numeric or categorical feature")
        self.num_numeric = num_numeric
        self.cardinalities = [int(c) for c in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim(c, embed_cap)) for c in self.cardinalities)
        width = num_numeric + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)
        self.feature_dim = width

    def _concat(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        parts = []
        i = 0
        if self.num_numeric:
            parts.append(inputs[i].float())
            i += 1
        if self.cardinalities:
            cat = inputs[i]
            parts += [emb(cat[:, j]) for j, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)

    def forward_features(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.body(self._concat(inputs))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(*inputs))

    @property
    def head(self) -> nn.Linear:
        return self.classifier

    def replace_head(self, num_classes: int) -> None:
        self.classifier = nn.Linear(self.feature_dim, num_classes)


def tabular_mlp(num_numeric: int, cardinalities: Sequence[int] = (), num_classes: int = 2,
                hidden: Sequence[int] = (256, 128), dropout: float = 0.1) -> TabularMLP:
    """Factory usable from a ModelSpec (kwargs are JSON: lists for sequences).

    >>> model = tabular_mlp(17, [11, 4, 3], num_classes=2).eval()
    """
    return TabularMLP(num_numeric, list(cardinalities), num_classes, tuple(hidden), dropout).eval()


def _predict(model: nn.Module, ds: Any, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(ds), batch_size):
            idx = np.arange(start, min(start + batch_size, len(ds)))
            outs.append(model(*(torch.from_numpy(a) for a in ds.inputs(idx))).float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, ds.num_classes), np.float32)


def evaluate(model: nn.Module, ds: Any) -> dict[str, float]:
    """Accuracy, and ROC-AUC of the positive class for binary tasks."""
    logits = _predict(model, ds)
    out = {"accuracy": float((logits.argmax(1) == ds.labels).mean()) if len(ds) else math.nan}
    if ds.task == "binary" and logits.shape[1] == 2:
        from edge_kd.metrics import roc_auc

        auc = roc_auc(ds.labels, logits[:, 1] - logits[:, 0])
        out["roc_auc"] = math.nan if auc is None else auc  # one class present: undefined
    return out


def train_tabular_mlp(train: Any, val: Any, *, epochs: int = 30, lr: float = 2e-3, batch_size: int = 256,
                      weight_decay: float = 1e-4, hidden: Sequence[int] = (256, 128), dropout: float = 0.1,
                      seed: int = 0, patience: int = 5) -> tuple[TabularMLP, dict[str, float]]:
    """Train a TabularMLP on a fitted TabularDataset; keeps the epoch with the best validation
    metric (ROC-AUC for binary tasks, else accuracy) and stops after ``patience`` epochs without gain.

    >>> s = train_val_test_split(load_tabular_csv(path, schema), val=0.1, test=0.2)
    >>> model, metrics = train_tabular_mlp(s.train, s.val)
    """
    torch.manual_seed(seed)
    cards = list(train.cardinalities) if "categorical" in train.input_names else []
    model = TabularMLP(train.num_numeric, cards, max(train.num_classes, 2), tuple(hidden), dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    key = "roc_auc" if train.task == "binary" else "accuracy"
    rng = np.random.default_rng(seed)
    arrays = [torch.from_numpy(a) for a in train.inputs()]
    labels = torch.from_numpy(train.labels)
    keeper = BestWeights(model, patience)
    history = []
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(len(train))
        for start in range(0, len(perm), batch_size):
            idx = torch.from_numpy(perm[start:start + batch_size])
            if len(idx) < 2:  # BatchNorm needs two rows
                continue
            loss = nn.functional.cross_entropy(model(*(a[idx] for a in arrays)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        score = evaluate(model, val)[key] if len(val) else -float(loss)
        history.append(score)
        if keeper.update(score):
            break
    keeper.restore()
    model.eval()
    return model, {f"val_{key}": keeper.best, "epochs": len(history)}
