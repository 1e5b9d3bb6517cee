"""``edge-kd quantize`` end to end: int8 artifact + report recorded in the build manifest."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_kd.cli import main

pytestmark = pytest.mark.integration


def test_cli_quantize_writes_artifact_and_manifest(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x0=rng.random((16, 3, 32, 32), dtype=np.float32), y=np.arange(16) % 4)
    out = tmp_path / "build"
    rc = main(["quantize", "edge_kd.testing.tiny_models:tiny_cnn", "--input", "image:1x3x32x32:float32",
               "--target", "ort-mobile", "--calib", f"npz:{tmp_path / 'calib.npz'}", "--method", "minmax",
               "--samples", "8", "--ship", "int8", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "minmax" and summary["within_budget"]
    assert summary["shipped"] == "int8" and summary["model"].endswith("model.int8.ort")
    assert {c["name"] for c in summary["candidates"]} == {"fp32", "int8"}  # --ship int8 builds no other scheme
    manifest = json.loads((out / "build.json").read_text())
    stage = next(s for s in manifest["stages"] if s["name"] == "quantize")
    assert stage["status"] == "ok"
    details = stage["details"]
    assert details["calibration"] == {"samples": 8, "available": 16, "seed": 0, "stratified": True}
    assert details["layers"] and all("sqnr_db" in l for l in details["layers"])
    models = [a for a in manifest["artifacts"] if a["role"] == "model"]
    assert len(models) == 1 and models[0]["format"] == "ort" and (out / models[0]["path"]).is_file()
    assert {a["role"] for a in manifest["artifacts"]} >= {"model", "quantization-report", "fp32-reference"}


def test_cli_quantize_from_image_data_spec(tmp_path: Path, capsys):
    root = Path(__file__).resolve().parents[1] / "fixtures" / "images"
    out = tmp_path / "b"
    rc = main(["quantize", "edge_kd.testing.tiny_models:tiny_cnn", "--input", "image:1x3x32x32:float32",
               "--target", "tflite-int8", "--calib", f"images:{root}?split=train&size=32&preprocessing=tf",
               "--eval", f"images:{root}?split=test&size=32&preprocessing=tf", "--method", "minmax",
               "--samples", "8", "--max-drop", "100pt", "--out", str(out), "--json"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["metric"] == "top1" and summary["model"].endswith(".tflite")
