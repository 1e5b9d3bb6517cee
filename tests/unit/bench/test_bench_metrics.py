"""Latency statistics, evaluation through a runtime, and the benchmark worker contract."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_kd.bench import evaluate_artifact, latency_stats, pick_core
from edge_kd.metrics import roc_auc as _roc_auc
from edge_kd.errors import InputError

DATA = Path(__file__).resolve().parents[1] / "runtimes" / "data"


def test_latency_stats_golden():
    s = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["p50"] == 3.0 and s["min"] == 1.0 and s["runs"] == 5
    assert s["p90"] == pytest.approx(61.6)  # linear interpolation between 4 and 100
    assert s["p99"] == pytest.approx(96.16)
    assert s["mean"] == pytest.approx(22.0)
    assert s["std"] == pytest.approx(float(np.std([1, 2, 3, 4, 100])))


def test_pick_core_is_the_last_allowed_core():
    import os

    assert pick_core() == sorted(os.sched_getaffinity(0))[-1]


def _mlp_samples(n: int):
    rng = np.random.default_rng(1)
    return [((rng.uniform(-1, 1, (1, 12)).astype(np.float32),), int(rng.integers(0, 2))) for _ in range(n)]


def test_evaluate_artifact_matches_the_model_and_reference_artifact():
    import onnxruntime as ort

    samples = _mlp_samples(40)
    session = ort.InferenceSession(str(DATA / "tiny_mlp.onnx"))
    logits = np.concatenate([session.run(None, {"features": x})[0] for (x,), _ in samples])
    labels = np.array([y for _, y in samples])
    expected_acc = float(np.mean(logits.argmax(1) == labels))
    res = evaluate_artifact(DATA / "tiny_mlp.onnx", samples, reference=DATA / "tiny_mlp.tflite")
    assert res["task_metric"] == {"name": "accuracy", "value": pytest.approx(expected_acc)}
    assert res["n"] == 40 and res["runtime"] == "onnxruntime"
    assert res["agreement"]["top1_agreement"] == 1.0 and res["agreement"]["max_abs_error"] < 1e-5
    binary = evaluate_artifact(DATA / "tiny_mlp.onnx", samples, task="binary")
    assert binary["task_metric"]["name"] == "roc_auc"
    assert binary["roc_auc"] == pytest.approx(_roc_auc(labels, logits[:, 1] - logits[:, 0]))
    assert binary["accuracy"] == pytest.approx(expected_acc)  # 2 logits: argmax == (l1 - l0 > 0)


def test_evaluate_artifact_rejects_bad_task_and_no_samples():
    with pytest.raises(InputError, match="unknown task"):
        evaluate_artifact(DATA / "tiny_mlp.onnx", [], task="segmentation")
    with pytest.raises(InputError, match="no samples"):
        evaluate_artifact(DATA / "tiny_mlp.onnx", [])
