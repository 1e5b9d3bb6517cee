"""edge_kd.metrics: one ROC-AUC (labels first), the binary score and the selection metric."""
from __future__ import annotations

import numpy as np
import pytest

from edge_kd.errors import InputError
from edge_kd.metrics import binary_scores, metric_value, roc_auc


def test_roc_auc_golden():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(np.array([0, 1, 1]), np.array([0.5, 0.5, 0.5])) == pytest.approx(0.5)


def test_roc_auc_golden_with_ties():
    # Pairs (pos, neg): 0.8>0.1, 0.8>0.4, 0.4=0.4 (half), 0.4>0.1 -> (1+1+0.5+1)/4
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([0.8, 0.1, 0.4, 0.4])) == pytest.approx(0.875)
    assert roc_auc(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1])) == pytest.approx(1.0)


def test_roc_auc_undefined_for_one_class():
    assert roc_auc(np.array([1, 1]), np.array([0.9, 0.8])) is None
    with pytest.raises(InputError, match="both classes"):
        metric_value(np.array([[0.1, 0.2], [0.3, 0.1]]), np.array([1, 1]), "roc_auc")


def test_binary_scores_from_one_or_two_logits():
    np.testing.assert_allclose(binary_scores(np.array([[0.0, 2.0], [1.0, -1.0]])), [2.0, -2.0])
    np.testing.assert_allclose(binary_scores(np.array([[0.3], [-0.2]])), [0.3, -0.2])


def test_metric_value_roc_auc_from_one_or_two_logits():
    labels = np.array([0, 0, 1, 1])
    assert metric_value(np.array([0.1, 0.4, 0.35, 0.8]), labels, "roc_auc") == 0.75
    two = np.stack([np.zeros(4), np.array([0.1, 0.4, 0.35, 0.8])], axis=1)
    assert metric_value(two, labels, "roc_auc") == 0.75


# ---- ranking (next-purchase) -----------------------------------------------------------------------
def test_recall_and_ndcg_at_k_hand_computed():
    from edge_kd.metrics import metric_value, ndcg_at_k, recall_at_k

    scores = np.array([[0.9, 0.1, 0.8, 0.3, 0.2],      # top-3: 0, 2, 3
                       [0.1, 0.2, 0.3, 0.4, 0.5]])     # top-3: 4, 3, 2
    targets = np.array([[2, 4, -1, -1],                 # hit at rank 2 of {2, 4}
                        [0, 1, 2, 3]])                  # hits at ranks 2, 3 of 4 targets (only 3 fit)
    # recall@3 = mean(1/min(3,2), 2/min(3,4)) = mean(0.5, 0.6667)
    assert recall_at_k(targets, scores, 3) == pytest.approx((0.5 + 2 / 3) / 2)
    # NDCG@3: row 1 (1/log2 3) / (1 + 1/log2 3); row 2 (1/log2 3 + 1/2) / (1 + 1/log2 3 + 1/2)
    l3 = 1 / np.log2(3)
    assert ndcg_at_k(targets, scores, 3) == pytest.approx((l3 / (1 + l3) + (l3 + 0.5) / (1 + l3 + 0.5)) / 2)
    assert metric_value(scores, targets, "recall@10") == pytest.approx(1.0)  # k >= catalog: every target fits
    perfect = np.array([[0, 0, 5, 0, 4], [4, 3, 2, 1, 0]], dtype=float)
    assert ndcg_at_k(targets, perfect, 3) == pytest.approx(1.0)


def test_ranking_metric_refuses_an_empty_target_set():
    from edge_kd.errors import InputError
    from edge_kd.metrics import recall_at_k

    with pytest.raises(InputError, match="empty target set"):
        recall_at_k(np.array([[-1, -1]]), np.array([[0.1, 0.2]]), 1)
# ---- regression (demand forecasting): lower is better ------------------------------------------
def test_wape_and_mae_golden():
    from edge_kd.metrics import mae, metric_value, regression_metrics, wape

    y, p = np.array([10.0, 0.0, 30.0]), np.array([12.0, 1.0, 27.0])
    assert wape(y, p) == pytest.approx(6 / 40)
    assert mae(y, p) == pytest.approx(2.0)
    assert regression_metrics(p.reshape(-1, 1), y) == pytest.approx({"wape": 0.15, "mae": 2.0})
    assert metric_value(p.reshape(-1, 1), y, "wape") == pytest.approx(0.15)
    with pytest.raises(InputError, match="every label is 0"):
        wape(np.zeros(3), p)


def test_metric_direction():
    from edge_kd.metrics import better, higher_is_better

    assert not higher_is_better("wape") and not higher_is_better("mae") and higher_is_better("roc_auc")
    assert better(0.4, 0.5, "wape") and not better(0.4, 0.5, "accuracy")
    assert not better(0.49, 0.5, "wape", margin=0.02)
