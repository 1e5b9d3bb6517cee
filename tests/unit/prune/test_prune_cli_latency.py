"""``edge-kd prune --latency-budget``: the latency table measured in ONNX Runtime (its profiler), recorded in
build.json and reused; bad budgets and tables exit 2 before any work."""
import dataclasses
import json

import pytest

from edge_kd.cli import main
from edge_kd.prune.latency import GroupInfo, LatencyTable

CNN = ["edge_kd.testing.tiny_models:tiny_depthwise", "--input", "image:1x3x32x32:float32"]


def test_latency_budget_end_to_end_and_table_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_KD_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "b"
    code = main(["prune", *CNN, "--target", "ort-mobile", "--latency-budget", "0.7", "--steps", "1",
                 "--round-to", "8", "--out", str(out)])
    assert code in (0, 1)  # 1: the measured p50 missed the budget (best candidate written)
    manifest = json.loads((out / "build.json").read_text())
    stage = next(s for s in manifest["stages"] if s["name"] == "prune")
    table = stage["details"]["latency_table"]
    assert table["method"] == "ort-profiler" and table["runtime"] == "onnxruntime" and table["reused"] is False
    assert table["layers"] == 6 and table["base_ms"] > 0
    step = stage["details"]["steps"][1]
    assert step["selection"]["predicted_fraction"] <= 0.7 + 1e-6 and step["selection"]["removed"]
    assert step["macs_ratio"] < 1.0 and step["p50_ms"] > 0
    assert manifest["prune"]["p50_ms"] is not None
    from edge_kd.pipeline.records import latency_table_record

    assert latency_table_record(manifest)["path"] == table["path"]
    # the recorded table is reused, here handed over explicitly
    out2 = tmp_path / "b2"
    code = main(["prune", *CNN, "--target", "ort-mobile", "--latency-budget", "0.7", "--round-to", "8",
                 "--latency-table", table["path"], "--out", str(out2)])
    assert code in (0, 1)
    again = next(s for s in json.loads((out2 / "build.json").read_text())["stages"] if s["name"] == "prune")
    assert again["details"]["latency_table"]["reused"] is True
    assert "latency table (ort-profiler" in capsys.readouterr().err


@pytest.mark.parametrize("budget", ["0", "1", "1.5", "-0.2", "nan", "fast", "0ms", "-3ms"])
def test_bad_latency_budget_exits_2(tmp_path, capsys, budget):
    out = tmp_path / "b"
    assert main(["prune", *CNN, "--target", "ort-mobile", f"--latency-budget={budget}", "--out", str(out)]) == 2
    assert "--latency-budget" in capsys.readouterr().err
    assert not out.exists()


def _foreign_table(tmp_path, target="ort-mobile", runtime="onnxruntime"):
    table = LatencyTable(target=target, runtime=runtime, runtime_version="x", threads=1, model_key="0" * 64,
                         model="Other", inputs=[[1, 3, 8, 8]], round_to=8, method="ort-profiler", levels=[1.0],
                         groups=[GroupInfo("conv", 8)], layers=[])
    return table.save(tmp_path / "table.json")


def test_table_of_another_model_or_target_exits_2(tmp_path, capsys):
    path = _foreign_table(tmp_path)
    assert main(["prune", *CNN, "--target", "ort-mobile", "--latency-budget", "0.5", "--latency-table", str(path),
                 "--out", str(tmp_path / "b")]) == 2
    assert "another model structure" in capsys.readouterr().err
    assert main(["prune", *CNN, "--target", "tflite-int8", "--latency-budget", "0.5", "--latency-table", str(path),
                 "--out", str(tmp_path / "c")]) == 2
    assert "target 'ort-mobile', not 'tflite-int8'" in capsys.readouterr().err
    assert main(["prune", *CNN, "--target", "ort-mobile", "--macs", "0.5", "--latency-table", str(path),
                 "--no-latency", "--out", str(tmp_path / "d")]) == 2
    assert "give --latency-budget too" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{")
    assert main(["prune", *CNN, "--target", "ort-mobile", "--latency-budget", "0.5", "--latency-table",
                 str(tmp_path / "junk.json"), "--out", str(tmp_path / "e")]) == 2
    assert not any((tmp_path / d).exists() for d in "bcde")


def test_runtime_without_a_way_to_measure_exits_2(tmp_path, monkeypatch, capsys):
    from edge_kd.runtimes.registry import RUNTIMES, runtime_spec

    # the shipped ONNX Runtime entry, as a runtime registered without a layer_latency would be
    monkeypatch.setitem(RUNTIMES._items, "onnxruntime",
                        dataclasses.replace(runtime_spec("onnxruntime"), layer_latency=None))
    assert main(["prune", *CNN, "--target", "ort-mobile", "--latency-budget", "0.5",
                 "--out", str(tmp_path / "b")]) == 2
    assert "no way to measure per-layer latency" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
