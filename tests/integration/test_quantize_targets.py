"""Real int8 artifacts for all three targets from tiny models: stored as int8, runnable, close to fp32;
plus the accuracy-aware fallback and the never-lose-the-work path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.quantize import open_artifact, quantize_model
from edge_kd.targets import load_target
from edge_kd.testing.tiny_models import tiny_cnn, tiny_text

pytestmark = pytest.mark.integration
torch.set_num_threads(1)

TARGETS = ("android-arm64-xnnpack", "ort-mobile", "tflite-int8")


def _expected_pick(finalists: list[dict], tie_db: float) -> int:
    """Index of the finalist ``auto`` ships when none is significantly more accurate: the most accurate
    of those within ``tie_db`` of the highest output SQNR (then the higher SQNR)."""
    top = max(f["output_sqnr_db"] for f in finalists)
    tied = [k for k, f in enumerate(finalists) if f["output_sqnr_db"] >= top - tie_db]
    return max(tied, key=lambda k: (finalists[k]["metric"], finalists[k]["output_sqnr_db"]))


def cnn_samples(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((1, 3, 32, 32), dtype=np.float32),) for _ in range(n)]


@pytest.mark.parametrize("target_name", TARGETS)
def test_tiny_cnn_int8_per_target(tmp_path: Path, target_name: str):
    target = load_target(target_name)
    result = quantize_model(tiny_cnn(), (torch.rand(1, 3, 32, 32),), target, cnn_samples(), tmp_path,
                            method="percentile", ship="int8")
    report = result.report
    assert result.primary.is_file() and result.primary.suffix == "." + target.primary_format
    assert (tmp_path / "model.quantize.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".quantize-work")]
    # weights are stored as int8
    storage = report["weights_storage"]
    if target_name == "ort-mobile":
        assert storage["int8_tensors"] >= 3 and storage["float32_tensors"] == 0
    elif target_name == "tflite-int8":
        assert storage["int8_tensors"] >= 3 and storage["float32_tensors"] == 0
    else:  # a .pte holds XNNPACK blobs: int8 weights show as the size ratio
        assert report["size"]["ratio"] < 0.6
    # it runs, in its runtime, and stays close to fp32
    runner = open_artifact(result.primary, target.runtime.name)
    out = runner.run([cnn_samples(1, seed=9)[0][0]])[0]
    ref = tiny_cnn()(torch.from_numpy(cnn_samples(1, seed=9)[0][0])).detach().numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 0.05 * max(np.abs(ref).max(), 1e-3) + 0.01
    acc = report["accuracy"]
    assert acc["metric"] == "top1_agreement_with_fp32" and acc["int8"] >= 0.9 and acc["within_budget"]
    assert acc["output_sqnr_db"] > 25.0
    assert report["method"] == "percentile"
    assert {l["layer"] for l in report["layers"]} == {"features.0", "features.3", "classifier"}
    assert all(r["range"][0] <= r["range"][1] for r in report["activation_ranges"])


def test_auto_picks_a_method_through_the_runtime(tmp_path: Path):
    result = quantize_model(tiny_cnn(), (torch.rand(1, 3, 32, 32),), load_target("ort-mobile"), cnn_samples(),
                            tmp_path, method="auto", ship="int8")
    search = result.report["method_search"]
    assert [s["method"] for s in search] == ["minmax", "percentile", "mse", "entropy", "moving_average"]
    # 16 rows: no method can be significantly more accurate, so the most faithful one (output SQNR) ships,
    # or of those within SQNR_TIE_DB of it, the most accurate.
    from edge_kd.quantize import FINALISTS, SQNR_TIE_DB

    finalists = sorted(search, key=lambda s: (s["output_sqnr_db"], s["metric"]), reverse=True)[:FINALISTS]
    assert result.report["method"] == finalists[_expected_pick(finalists, SQNR_TIE_DB)]["method"]


def test_auto_judges_the_most_faithful_methods_again_on_every_row(tmp_path: Path, monkeypatch):
    import edge_kd.quantize as quantize

    monkeypatch.setattr(quantize, "SELECTION_SAMPLES", 8)
    # No labelled rows: all 40 calibration samples are judged by top-1 agreement with the fp32 artifact.
    result = quantize_model(tiny_cnn(), (torch.rand(1, 3, 32, 32),), load_target("ort-mobile"), cnn_samples(40),
                            tmp_path, method="auto", ship="int8")
    search = result.report["method_search"]
    assert all(s["rows"] == 8 for s in search)

    def fidelity(rows: str):
        return lambda k: (search[k][rows]["output_sqnr_db"] if rows else search[k]["output_sqnr_db"],
                          search[k][rows]["metric"] if rows else search[k]["metric"], -k)

    finalists = sorted(range(len(search)), key=fidelity(""), reverse=True)[:quantize.FINALISTS]
    assert sorted(k for k, s in enumerate(search) if s.get("finalist")) == sorted(finalists)
    assert all(search[k]["all_rows"]["rows"] == 40 for k in finalists)
    assert not [s for s in search if "all_rows" in s and not s.get("finalist")]
    # 40 agreeing rows cannot make one finalist significantly more accurate: the most faithful ships, or
    # of those within SQNR_TIE_DB of it, the most accurate.
    best = _expected_pick([search[k]["all_rows"] for k in finalists], quantize.SQNR_TIE_DB)
    best = finalists[best]
    assert result.report["method"] == search[best]["method"]
    assert result.report["accuracy"]["output_sqnr_db"] == search[best]["all_rows"]["output_sqnr_db"]


@pytest.mark.parametrize("target_name", ["ort-mobile", "android-arm64-xnnpack"])
def test_tiny_text_int8(tmp_path: Path, target_name: str):
    rng = np.random.default_rng(0)
    samples = [(rng.integers(0, 100, (1, 16)),) for _ in range(16)]
    result = quantize_model(tiny_text(), (torch.randint(0, 100, (1, 16)),), load_target(target_name), samples,
                            tmp_path, method="minmax", ship="int8")
    if target_name == "ort-mobile":
        assert result.report["weights_storage"]["int8_tensors"] >= 2
    else:  # transformer on XNNPACK: weighted ops quantized (observers on linear outputs), adds kept float
        tensors = [r["tensor"] for r in result.report["activation_ranges"]]
        assert any("linear" in t for t in tensors) and not any(t.endswith(":add") for t in tensors)
    assert result.report["accuracy"]["int8"] >= 0.8


class Hostile(nn.Module):
    """An MLP whose hidden activation has one enormous channel that the next layer ignores: per-tensor
    int8 of that activation wipes out every other channel, so int8 breaks unless layers stay float."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)
        with torch.no_grad():
            self.fc1.weight[0] = 0.0
            self.fc1.bias[0] = 5000.0
            self.fc2.weight[:, 0] = 0.0

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def hostile_data(n, seed):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(1, 8)).astype(np.float32),) for _ in range(n)]


def test_fallback_keeps_sensitive_layers_float_until_budget_holds(tmp_path: Path):
    model = Hostile().eval()
    calib = hostile_data(16, 0)
    eval_x = hostile_data(64, 1)
    labels = [int(model(torch.from_numpy(x[0])).argmax()) for x in eval_x]
    result = quantize_model(model, (torch.zeros(1, 8),), load_target("ort-mobile"), calib, tmp_path,
                            method="minmax", eval_samples=list(zip(eval_x, labels)), max_accuracy_drop=0.0, ship="int8")
    fb = result.report["fallback"]
    assert fb["needed"] and fb["float_layers"]
    assert fb["steps"][0]["metric"] < 1.0  # all-int8 broke it
    assert fb["met_budget"] and result.report["accuracy"]["int8"] == 1.0
    assert fb["cost"]["bytes"] == fb["steps"][-1]["bytes"] - fb["steps"][0]["bytes"]  # size cost is reported
    assert all(l["quantized"] == (l["layer"] not in fb["float_layers"]) for l in result.report["layers"])


def test_missed_budget_still_writes_best_candidate(tmp_path: Path):
    model = Hostile().eval()
    eval_x = hostile_data(64, 1)
    labels = [int(model(torch.from_numpy(x[0])).argmax()) for x in eval_x]
    result = quantize_model(model, (torch.zeros(1, 8),), load_target("tflite-int8"), hostile_data(16, 0),
                            tmp_path, method="minmax", eval_samples=list(zip(eval_x, labels)),
                            max_accuracy_drop="0pt", max_fallback_layers=0, ship="int8")
    fb = result.report["fallback"]
    assert not fb["met_budget"] and fb["missed_by_pt"] > 0
    assert not result.report["accuracy"]["within_budget"]
    assert result.primary.is_file() and (tmp_path / "model.quantize.json").is_file()


def test_ort_int8_linear_layers_stay_in_the_mobile_package(tmp_path: Path):
    """A QDQ Gemm would fuse into com.microsoft::QGemm, which ORT Mobile lacks (and a file holding it
    would fall back to runtime-style optimizations, which a full ORT does not replay). edge_kd quantizes
    a Linear as an int8 MatMul plus a float bias Add, so the fixed-style .ort stays in the package and
    the bias stays exact."""
    import onnx

    from edge_kd.runtimes import open_runner
    from edge_kd.runtimes.onnxruntime import inspect_ort
    from edge_kd.testing.tiny_models import tiny_mlp

    rng = np.random.default_rng(0)
    samples = [(rng.standard_normal((1, 12)).astype(np.float32),) for _ in range(32)]
    model = tiny_mlp()
    result = quantize_model(model, (torch.zeros(1, 12),), load_target("ort-mobile"), samples, tmp_path,
                            method="minmax", ship="int8")
    ops = inspect_ort(result.primary)["operators"]
    assert "com.microsoft::QGemm" not in ops and "Gemm" not in ops, ops
    assert open_runner(result.primary, threads=1).ops("ort-mobile-operators")["violations"] == []
    qdq = onnx.load(str(result.primary.with_suffix(".onnx")))
    inits = {i.name: i for i in qdq.graph.initializer}
    biases = [i for n in qdq.graph.node if n.op_type == "Add" and n.name.endswith("_bias") for i in n.input if i in inits]
    assert len(biases) == 3 and all(inits[b].data_type == onnx.TensorProto.FLOAT for b in biases)
    weights = [i for n in qdq.graph.node if n.op_type == "DequantizeLinear" for i in n.input
               if i in inits and inits[i].data_type == onnx.TensorProto.INT8 and len(inits[i].dims) == 2]
    assert len(weights) == 3  # every Linear weight stored as int8
    runner = open_runner(result.primary, threads=1)
    x = samples[0][0]
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = runner.run([x])[0]
    assert np.abs(got - expected).max() < 0.05 * (np.abs(expected).max() + 1e-6) + 0.02


def test_ort_int8_embedding_gathers_int8_rows(tmp_path: Path):
    """The int8 embedding table is gathered first and only the looked-up rows are dequantized (not the
    whole table per call); the outputs are those of the plain QDQ graph."""
    import onnx

    from edge_kd.models.students.text import hashed_text_student
    from edge_kd.runtimes import open_runner

    torch.manual_seed(0)
    model = hashed_text_student(buckets=2000, dim=16, num_classes=5, max_ids=24).eval()
    rng = np.random.default_rng(0)
    samples = [(rng.integers(0, 2001, (1, 24)).astype(np.int64),) for _ in range(32)]
    result = quantize_model(model, (torch.from_numpy(samples[0][0]),), load_target("ort-mobile"), samples, tmp_path,
                            method="minmax", ship="int8")
    qdq = onnx.load(str(result.primary.with_suffix(".onnx")))
    inits = {i.name: i for i in qdq.graph.initializer}
    gathers = [n for n in qdq.graph.node if n.op_type == "Gather"]
    assert gathers and all(inits[g.input[0]].data_type == onnx.TensorProto.INT8 for g in gathers if g.input[0] in inits)
    assert any(g.input[0] in inits and tuple(inits[g.input[0]].dims) == (2001, 16) for g in gathers)
    runner = open_runner(result.primary, threads=1)
    assert runner.ops("ort-mobile-operators")["violations"] == []
    for (ids,) in samples[:8]:
        with torch.no_grad():
            expected = model(torch.from_numpy(ids)).numpy()
        got = runner.run([ids])[0]
        assert np.abs(got - expected).max() < 0.1 * (np.abs(expected).max() + 1e-6) + 0.02
