"""``edge-kd export`` and ``edge-kd bench`` end to end: exit codes, build.json, no partial artifacts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
FAST_TARGET = """extends = "ort-mobile"
[bench]
warmup_runs = 1
min_runs = 3
min_seconds = 0.0
max_runs = 5
"""


def edge_kd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_kd", *args], capture_output=True, text=True, cwd=cwd or REPO)


@pytest.fixture(scope="module")
def fast_target(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("targets") / "fast-ort.toml"
    path.write_text(FAST_TARGET)
    return str(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory, fast_target):
    out = tmp_path_factory.mktemp("cli") / "build"
    proc = edge_kd("export", "edge_kd.testing.tiny_models:tiny_mlp", "--target", fast_target, "--out", str(out),
                   "--input", "features:1x12:float32", "--kwargs", '{"num_classes": 3}')
    return out, proc


def test_export_writes_artifacts_and_manifest(built):
    out, proc = built
    assert proc.returncode == 0, proc.stderr
    assert "parity: max abs error" in proc.stdout
    manifest = json.loads((out / "build.json").read_text())
    stage = manifest["stages"][0]
    assert stage["name"] == "export" and stage["status"] == "ok"
    assert stage["details"]["parity"]["top1_agreement"] == 1.0
    arts = {a["path"]: a for a in manifest["artifacts"]}
    assert set(arts) == {"model.onnx", "model.ort", "model.required_operators.config"}
    assert arts["model.ort"]["role"] == "model" and arts["model.onnx"]["role"] == "export"
    assert arts["model.ort"]["tensors"][0] == {"name": arts["model.ort"]["tensors"][0]["name"], "bytes": 4096,
                                              "dtype": "float32", "shape": [32, 32]}
    assert manifest["metrics"]["ops"]["violations"] == []
    assert manifest["target"]["name"] == "fast-ort"


def test_bench_table_json_and_accuracy(built, fast_target, tmp_path):
    out, _ = built
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x0=rng.uniform(-1, 1, (20, 12)).astype(np.float32), y=rng.integers(0, 3, 20))
    json_out = tmp_path / "bench.json"
    proc = edge_kd("bench", str(out / "model.ort"), str(out / "model.onnx"), "--target", fast_target,
                   "--data", f"npz:{tmp_path / 'd.npz'}", "--json", str(json_out))
    assert proc.returncode == 0, proc.stderr
    assert "speed-up" in proc.stdout and "model.onnx" in proc.stdout
    data = json.loads(json_out.read_text())
    first, second = data["results"]
    assert first["vs_first"] == {"speedup_p50": 1.0, "size_ratio": 1.0}
    assert second["vs_first"]["size_ratio"] == pytest.approx(second["artifact"]["bytes"] / first["artifact"]["bytes"])
    assert first["task_metric"]["name"] == "accuracy" and first["eval_n"] == 20
    assert first["task_metric"]["value"] == second["task_metric"]["value"]


def test_bench_bad_inputs_exit_2(built, fast_target, tmp_path):
    out, _ = built
    bad = tmp_path / "broken.ort"
    bad.write_bytes((out / "model.ort").read_bytes()[:64])
    proc = edge_kd("bench", str(bad), "--target", fast_target)
    assert proc.returncode == 2 and "broken.ort" in proc.stderr and "Traceback" not in proc.stderr
    proc = edge_kd("bench", str(out / "model.ort"), "--target", "tflite-int8")
    assert proc.returncode == 2 and "runs in onnxruntime" in proc.stderr
    proc = edge_kd("bench", str(out / "model.ort"), "--target", fast_target, "--data", "csv:x.csv")
    assert proc.returncode == 2 and "npz:PATH" in proc.stderr


def test_export_failures_exit_2_and_leave_nothing(tmp_path, fast_target):
    out = tmp_path / "nothing"
    proc = edge_kd("export", "edge_kd.testing.tiny_models:no_such_model", "--target", fast_target,
                   "--out", str(out), "--input", "x:1x4:float32")
    assert proc.returncode == 2 and "no_such_model" in proc.stderr and not out.exists()
    proc = edge_kd("export", "edge_kd.testing.tiny_models:tiny_mlp", "--target", fast_target,
                   "--out", str(out), "--input", "features:1x5:float32")  # wrong input width for the model
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
    proc = edge_kd("export", "edge_kd.testing.tiny_models:tiny_mlp", "--target", fast_target,
                   "--out", str(out), "--input", "features:1x12:float32", "--kwargs", "[1]")
    assert proc.returncode == 2 and "--kwargs" in proc.stderr
