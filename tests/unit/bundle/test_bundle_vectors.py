"""Golden vectors replay through the artifact; tampered bundles fail verify and the gate, naming the field."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_kd.bundle import verify_bundle
from edge_kd.cli import main
from edge_kd.gate import evaluate


def _copy(src, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(src, dst)
    return dst


def _vectors(root):
    return json.loads((root / "vectors" / "vectors.json").read_text())


def _contract_check(root):
    return next(c for c in evaluate(root).checks if c.name == "bundle.contract")


@pytest.mark.parametrize("kind,target,int8", [("text", "tflite-int8", False), ("text", "ort-mobile", False),
                                              ("text", "android-arm64-xnnpack", False),
                                              ("text_two_hashes", "ort-mobile", False),
                                              ("wordpiece", "tflite-int8", True),
                                              ("wordpiece", "android-arm64-xnnpack", True),
                                              ("tabular", "tflite-int8", True), ("image", "ort-mobile", False)])
def test_vectors_replay_in_the_runtime(bundle_factory, kind, target, int8):
    root = bundle_factory(kind, target, int8)
    result = verify_bundle(root)
    assert result.ok, result.all_problems
    doc = _vectors(root)
    n = len(doc["vectors"])
    assert result.replay.vectors == n >= 6 and result.replay.top1_agreement == 1.0
    assert result.replay.checked["raw_inputs"] == n * (2 if kind == "tabular" else 1)
    assert doc["artifact"]["runtime"] == result.runtime and doc["contract"] == result.contract
    labels = json.loads((root / "bundle" / "preprocess.json").read_text())["labels"]
    for vec in doc["vectors"]:
        assert vec["label"] in labels and 0 <= vec["top1"] < len(labels)
        assert int(np.argmax(vec["outputs"][0])) == vec["top1"]
        raw = vec["raw"]
        if kind in ("text", "text_two_hashes", "wordpiece"):
            assert isinstance(raw["text"], str) and len(vec["inputs"][0]) == 16
        elif kind == "tabular":
            assert set(raw["row"]) >= {"Month", "VisitorType", "PageValues"}
            assert all(-128 <= v <= 127 for v in vec["inputs"][0])  # int8 features, quantized as the app must
            assert len(vec["raw_outputs"][0]) == 2
        else:
            assert (root / raw["pixels"]).is_file() and len(vec["inputs"][0]["sha256"]) == 64
            assert raw["source"].startswith("test/")
    assert _contract_check(root).passed
    assert main(["verify", str(root)]) == 0


def test_declared_contract_that_is_not_the_artifacts_fails(bundle_factory, tmp_path, capsys):
    root = _copy(bundle_factory("text", "tflite-int8"), tmp_path)
    asset_path = root / "bundle" / "preprocess.json"
    asset = json.loads(asset_path.read_text())
    # The bug this guards against: a .tflite bundle that says int64 ids while the file takes int32.
    asset["input"]["dtype"] = asset["contract"]["inputs"][0]["dtype"] = "int64"
    asset_path.write_text(json.dumps(asset))
    check = _contract_check(root)
    assert not check.passed
    assert "bundle/preprocess.json contract.inputs[0].dtype: declared 'int64', the artifact has 'int32'" in check.reason
    assert "bundle/preprocess.json input.dtype" in check.reason
    assert main(["verify", str(root)]) == 1
    assert "contract.inputs[0].dtype: declared 'int64', the artifact has 'int32'" in capsys.readouterr().out


def test_artifact_changed_after_the_build_fails(bundle_factory, tmp_path, capsys):
    import torch

    from edge_kd.export import export_model
    from edge_kd.targets import load_target
    from edge_kd.testing.tiny_models import tiny_text

    root = _copy(bundle_factory("text", "ort-mobile"), tmp_path)
    record = json.loads((root / "build.json").read_text())["bundle"]
    model = tiny_text(vocab_size=101, num_classes=4, seq_len=16)
    with torch.no_grad():
        model.classifier.bias.add_(torch.tensor([3.0, -3.0, 0.0, 0.0]))  # same I/O, other answers
    other = export_model(model, (torch.randint(0, 100, (1, 16)),), load_target("ort-mobile"), tmp_path / "other")
    shutil.copyfile(other.primary, root / record["artifact"]["path"])
    check = _contract_check(root)
    assert not check.passed and "artifact changed after the build" in check.reason
    result = verify_bundle(root)
    assert not result.ok
    assert result.problems[0].startswith("artifact.sha256: artifact/model.ort is not the file the build recorded")
    assert any(p.startswith("vector ") and "outputs[0]" in p for p in result.replay.problems)
    assert main(["verify", str(root)]) == 1


def test_tampered_vectors_name_the_vector_and_field(bundle_factory, tmp_path):
    root = _copy(bundle_factory("text", "android-arm64-xnnpack"), tmp_path)
    path = root / "vectors" / "vectors.json"
    doc = _vectors(root)
    doc["vectors"][2]["outputs"][0][1] += 0.5
    doc["vectors"][3]["inputs"][0][0] = (doc["vectors"][3]["inputs"][0][0] % 99) + 1
    path.write_text(json.dumps(doc))
    problems = verify_bundle(root).all_problems
    assert "vectors.sha256: vectors/vectors.json changed after the build" in problems
    assert any(p.startswith("vector 2: outputs[0][1] = ") for p in problems)
    assert any(p.startswith("vector 3: inputs[0] (input_0)[0]: the shipped preprocessing gives") for p in problems)


def test_tampered_image_pixels_are_caught(bundle_factory, tmp_path):
    from PIL import Image

    root = _copy(bundle_factory("image", "ort-mobile"), tmp_path)
    png = root / _vectors(root)["vectors"][1]["raw"]["pixels"]
    pixels = np.asarray(Image.open(png).convert("RGB")).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(png)
    problems = verify_bundle(root).all_problems
    assert any(p.startswith("vector 1: raw.pixels:") and "changed after the build" in p for p in problems)
    assert any(p.startswith("vector 1: inputs[0]") and "does not reproduce" in p for p in problems)


def test_verify_on_a_folder_that_is_not_a_bundle_exits_2(tmp_path, capsys):
    from edge_kd.pipeline import Build

    assert main(["verify", str(tmp_path)]) == 2
    assert "not an edge_kd bundle (no build.json)" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    Build.create(tmp_path / "old", target=None, recipe={"name": "x"})  # a build without a bundle record
    assert main(["verify", str(tmp_path / "old")]) == 2
    assert "records no bundle" in capsys.readouterr().err


def test_gate_fails_a_build_whose_bundle_record_is_gone(bundle_factory, tmp_path):
    root = _copy(bundle_factory("text", "ort-mobile"), tmp_path)
    manifest = json.loads((root / "build.json").read_text())
    del manifest["bundle"]
    manifest["stages"].append({"name": "bundle", "status": "ok", "seconds": 1.0})
    (root / "build.json").write_text(json.dumps(manifest))
    check = _contract_check(root)
    assert not check.passed and "records no bundle contract" in check.reason
    del manifest["stages"][-1]
    (root / "build.json").write_text(json.dumps(manifest))
    # A build made before bundles existed is judged on the other checks only.
    assert "bundle.contract" not in [c.name for c in evaluate(root).checks]


def test_gate_checks_the_contract_without_any_runtime(bundle_factory):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = bundle_factory("text", "tflite-int8")
    heavy = ["torch", "executorch", "onnxruntime", "ai_edge_litert", "litert_torch", "torchao", "onnx", "numpy"]
    code = ("import json, sys\n"
            "from edge_kd.gate import evaluate\n"
            f"check = [c for c in evaluate({str(root)!r}).checks if c.name == 'bundle.contract'][0]\n"
            f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})\n"
            "print(json.dumps({'passed': check.passed, 'heavy': heavy}))\n")
    repo = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"passed": True, "heavy": []}


def test_artifact_replaced_by_a_broken_file_is_a_mismatch(bundle_factory, tmp_path, capsys):
    root = _copy(bundle_factory("text", "tflite-int8"), tmp_path)
    record = json.loads((root / "build.json").read_text())["bundle"]
    artifact = root / record["artifact"]["path"]
    artifact.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])  # truncated upload
    assert main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAIL artifact.sha256: artifact/model.tflite is not the file the build recorded" in out
    assert "FAIL artifact: " in out
