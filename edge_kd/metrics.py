"""Task metrics shared by training, teachers, pruning and evaluation through the runtimes (numpy only).

One implementation of each: ``roc_auc(labels, scores)`` (labels first, like every metric here),
``wape`` / ``mae`` (regression, lower is better: ``higher_is_better(name)`` says a metric's direction),
``binary_scores`` (the positive-class score of a binary model's outputs) and ``metric_value`` (the
named training/selection metric of a batch of outputs).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from edge_kd.errors import InputError

if TYPE_CHECKING:  # numpy is imported by the functions that compute: the gate asks only for directions
    import numpy as np

#: Ranking metrics (task "ranking": labels are target sets ``[N, K]``, -1 padded).
RANKING_METRICS = ("recall@10", "ndcg@10")
#: Metrics a trainer or a schedule can select on.
METRICS = ("accuracy", "roc_auc", "wape", "mae", *RANKING_METRICS)

#: Metrics where a smaller value is better (errors). Every other metric is higher-is-better. The gate,
#: the report, the trainer and the int8 selection ask ``higher_is_better`` instead of assuming it.
LOWER_IS_BETTER = frozenset({"wape", "mae"})


def higher_is_better(name: str) -> bool:
    """Direction of a task metric: False for errors (WAPE, MAE), True for accuracy-like metrics.

    >>> higher_is_better("wape"), higher_is_better("accuracy")
    (False, True)
    """
    return name not in LOWER_IS_BETTER


def better(a: float, b: float, name: str, margin: float = 0.0) -> bool:
    """Whether metric value ``a`` beats ``b`` by more than ``margin`` in the metric's direction."""
    return a > b + margin if higher_is_better(name) else a < b - margin


def significantly_more_correct(a: np.ndarray, b: np.ndarray) -> bool:
    """Is per-row correctness ``a`` (bools) better than ``b`` on the same rows beyond sampling noise? Only
    the rows exactly one of them gets right count (a McNemar-style sign test): wins - losses must exceed
    2 sqrt(wins + losses), about z > 2. Two models a few rows apart on a validation split are a tie."""
    import numpy as np

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    wins, losses = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return wins + losses > 0 and wins - losses > 2.0 * (wins + losses) ** 0.5


# ---- regression (demand forecasting): lower is better ----------------------------------------------
def wape(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |y - p| / sum |y| (the forecasting error retailers
    report: errors on big sellers weigh more, and it stays defined when some weeks sell nothing).

    >>> wape(np.array([10.0, 0.0, 30.0]), np.array([12.0, 1.0, 27.0]))
    0.15
    """
    import numpy as np

    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise InputError(f"WAPE: {p.size} predictions for {y.size} labels")
    total = float(np.abs(y).sum())
    if total == 0:
        raise InputError("WAPE is undefined when every label is 0")
    return float(np.abs(y - p).sum() / total)


def mae(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Mean absolute error in the label's unit.

    >>> mae(np.array([10.0, 0.0]), np.array([12.0, 1.0]))
    1.5
    """
    import numpy as np

    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if y.shape != p.shape or not y.size:
        raise InputError(f"MAE: {p.size} predictions for {y.size} labels")
    return float(np.abs(y - p).mean())


def regression_metrics(outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{"wape", "mae"} of one-output regression outputs ([N] or [N, 1])."""
    import numpy as np

    pred = np.asarray(outputs, dtype=np.float64).reshape(len(np.asarray(labels).reshape(-1)), -1)[:, 0]
    return {"wape": wape(labels, pred), "mae": mae(labels, pred)}


# ---- ranking (next-purchase recommendation): higher is better ----------------------------------
def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first (ties: the lower index first)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    order = np.lexsort((part, -scores[rows, part]), axis=1)
    return part[rows, order]


def _hits(targets: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

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
    import numpy as np

    hit, n_rel = _hits(targets, scores, k)
    return float(np.mean(hit.sum(1) / np.minimum(n_rel, k)))


def ndcg_at_k(targets: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k with binary relevance: ``sum(hit_i / log2(i + 2)) / sum_{i < min(k, |targets|)} 1 / log2(i + 2)``."""
    import numpy as np

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
    import numpy as np

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
    import numpy as np

    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim >= 1 and out.shape[-1] == 2:
        return (out[..., 1] - out[..., 0]).reshape(-1)  # monotone in softmax[..., 1]
    return out.reshape(out.shape[0] if out.ndim else 1, -1)[:, 0]


def metric_value(outputs: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """Accuracy (argmax, or logit > 0 for one-logit binary models) or ROC-AUC of ``outputs``.

    >>> metric_value(np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([1, 1]), "accuracy")
    0.5
    """
    import numpy as np

    outputs = np.asarray(outputs)
    if metric in ("wape", "mae"):
        return regression_metrics(outputs, labels)[metric]
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
