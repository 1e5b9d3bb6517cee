"""Task metrics shared by training, teachers, pruning and evaluation through the runtimes (numpy only).

One implementation of each: ``roc_auc(labels, scores)`` (labels first, like every metric here),
``binary_scores`` (the positive-class score of a binary model's outputs) and ``metric_value`` (the
named training/selection metric of a batch of outputs).
"""
from __future__ import annotations

import numpy as np

from edge_kd.errors import InputError

#: Ranking metrics (task "ranking": labels are target sets ``[N, K]``, -1 padded).
RANKING_METRICS = ("recall@10", "ndcg@10")
#: Metrics a trainer or a schedule can select on.
METRICS = ("accuracy", "roc_auc", *RANKING_METRICS)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first (ties: the lower index first)."""
    scores = np.asarray(scores, dtype=np.float64)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    order = np.lexsort((part, -scores[rows, part]), axis=1)
    return part[rows, order]


def _hits(targets: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    targets = np.asarray(targets).reshape(len(scores), -1)
    top = _top_k(scores, k)
    hit = (top[:, :, None] == targets[:, None, :]).any(-1) & (top >= 0)   # [N, k]
    n_rel = (targets >= 0).sum(1)
    if (n_rel == 0).any():
        raise InputError("a ranking example has an empty target set")
    return hit, n_rel


def recall_at_k(targets: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """Mean over rows of ``|top-k ∩ targets| / min(k, |targets|)`` (1.0 when the top-k is as full of
    targets as it can be: a basket of 30 products cannot all fit in a top 10).

    >>> recall_at_k(np.array([[2, -1], [0, 1]]), np.array([[0.1, 0.2, 0.9], [0.5, 0.1, 0.9]]), k=2)
    0.75
    """
    hit, n_rel = _hits(targets, scores, k)
    return float(np.mean(hit.sum(1) / np.minimum(n_rel, k)))


def ndcg_at_k(targets: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k with binary relevance: ``sum(hit_i / log2(i + 2)) / sum_{i < min(k, |targets|)} 1 / log2(i + 2)``."""
    hit, n_rel = _hits(targets, scores, k)
    discount = 1.0 / np.log2(np.arange(2, hit.shape[1] + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, hit.shape[1]) - 1]
    return float(np.mean((hit * discount).sum(1) / ideal))


def ranking_metric(outputs: np.ndarray, targets: np.ndarray, metric: str) -> float:
    name, _, k = metric.partition("@")
    fn = {"recall": recall_at_k, "ndcg": ndcg_at_k}.get(name)
    if fn is None or not k.isdigit():
        raise InputError(f"unknown ranking metric {metric!r}; known: {', '.join(RANKING_METRICS)}")
    return fn(targets, outputs, int(k))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) statistic, ties given average ranks.

    None when only one class is present (the AUC is undefined; callers decide whether that is an error).

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based average rank per tie group
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_scores(outputs: np.ndarray) -> np.ndarray:
    """Positive-class scores: logit of a single output, or the softmax-free logit difference of two."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim >= 1 and out.shape[-1] == 2:
        return (out[..., 1] - out[..., 0]).reshape(-1)  # monotone in softmax[..., 1]
    return out.reshape(out.shape[0] if out.ndim else 1, -1)[:, 0]


def metric_value(outputs: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """Accuracy (argmax, or logit > 0 for one-logit binary models) or ROC-AUC of ``outputs``.

    >>> metric_value(np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([1, 1]), "accuracy")
    0.5
    """
    outputs = np.asarray(outputs)
    if metric in RANKING_METRICS:
        return ranking_metric(outputs, labels, metric)
    binary_single = outputs.ndim == 1 or outputs.shape[1] == 1
    if metric == "roc_auc":
        if binary_single:
            scores = outputs.reshape(-1)
        elif outputs.shape[1] != 2:
            raise InputError("ROC-AUC is defined here for binary tasks (1 or 2 outputs)")
        else:
            scores = outputs[:, 1] - outputs[:, 0]
        value = roc_auc(labels, scores)
        if value is None:
            raise InputError("ROC-AUC needs both classes in the validation/test split")
        return value
    pred = (outputs.reshape(-1) > 0).astype(np.int64) if binary_single else outputs.argmax(1)
    return float((pred == np.asarray(labels).reshape(-1)).mean())
