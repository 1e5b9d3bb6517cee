"""The I/O contract is read from the exported file, per format, and the shipped asset carries it."""
from __future__ import annotations

import json

import pytest

from edge_kd.bundle.contract import contract_differences, read_contract

TARGETS = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]
#: What each runtime's converter makes of the student's int64 ids (LiteRT has no int64 gather index).
ID_DTYPE = {"android-arm64-xnnpack": "int64", "ort-mobile": "int64", "tflite-int8": "int32"}
FORMAT = {"android-arm64-xnnpack": ("pte", "executorch"), "ort-mobile": ("ort", "onnxruntime"),
          "tflite-int8": ("tflite", "litert")}


def _record(root):
    return json.loads((root / "build.json").read_text())["bundle"]


@pytest.mark.parametrize("target", TARGETS)
def test_text_ids_dtype_is_the_artifacts(bundle_factory, target):
    root = bundle_factory("text", target)
    record = _record(root)
    contract = read_contract(root / record["artifact"]["path"])
    assert (contract["format"], contract["runtime"]) == FORMAT[target]
    (ids,) = contract["inputs"]
    assert ids["dtype"] == ID_DTYPE[target] and ids["shape"] == [1, 16] and "quantization" not in ids
    (logits,) = contract["outputs"]
    assert logits["dtype"] == "float32" and logits["shape"] == [1, 4]
    asset = json.loads((root / "bundle" / "preprocess.json").read_text())
    # The shipped asset declares this artifact's input, not the PyTorch student's int64.
    assert asset["input"] == {k: ids[k] for k in ("name", "dtype", "shape")}
    assert asset["contract"] == contract == record["contract"]
    assert contract_differences(asset["contract"], contract) == []


def test_int8_io_carries_scale_and_zero_point(bundle_factory):
    root = bundle_factory("tabular", "tflite-int8", int8=True)
    contract = read_contract(root / _record(root)["artifact"]["path"])
    dense, cats = contract["inputs"]
    assert dense["dtype"] == "int8" and dense["shape"] == [1, 14]
    assert dense["quantization"]["scale"] > 0 and -128 <= dense["quantization"]["zero_point"] <= 127
    assert cats["dtype"] == "int32" and "quantization" not in cats  # category codes stay integers
    (out,) = contract["outputs"]
    assert out["dtype"] == "int8" and out["quantization"]["scale"] > 0


@pytest.mark.parametrize("target", ["ort-mobile", "android-arm64-xnnpack"])
def test_int8_models_with_float_io(bundle_factory, target):
    root = bundle_factory("tabular", target, int8=True)
    contract = read_contract(root / _record(root)["artifact"]["path"])
    dense, cats = contract["inputs"]
    assert dense["dtype"] == "float32" and "quantization" not in dense
    assert cats["dtype"] == "int64"
    assert [o["dtype"] for o in contract["outputs"]] == ["float32"]


def test_differences_name_each_field():
    actual = {"format": "tflite", "runtime": "litert",
              "inputs": [{"name": "args_0", "dtype": "int32", "shape": [1, 64]}],
              "outputs": [{"name": "output_0", "dtype": "int8", "shape": [1, 27],
                           "quantization": {"scale": 0.05, "zero_point": -3}}]}
    declared = json.loads(json.dumps(actual))
    assert contract_differences(declared, actual) == []
    declared["inputs"][0]["dtype"] = "int64"
    declared["outputs"][0]["quantization"]["zero_point"] = 0
    declared["outputs"][0]["shape"] = [1, 26]
    diffs = contract_differences(declared, actual)
    assert diffs == ["contract.inputs[0].dtype: declared 'int64', the artifact has 'int32'",
                     "contract.outputs[0].shape: declared [1, 26], the artifact has [1, 27]",
                     "contract.outputs[0].quantization.zero_point: declared 0, the artifact has -3"]
    del declared["outputs"][0]["quantization"]
    assert "contract.outputs[0].quantization: declared None" in contract_differences(declared, actual)[-1]
    assert contract_differences(None, actual) == ["contract: not declared"]
    assert contract_differences({**actual, "inputs": []}, actual) == [
        "contract.inputs: declares 0 tensor(s), the artifact has 1"]
