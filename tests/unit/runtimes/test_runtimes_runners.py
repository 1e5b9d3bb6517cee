"""Runners on tiny shipped artifacts: correct outputs, and one clear InputError for every bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_kd.errors import InputError
from edge_kd.runtimes import open_runner, runtime_for

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["pte", "onnx", "ort", "tflite"]
RUNTIME = {"pte": "executorch", "onnx": "onnxruntime", "ort": "onnxruntime", "tflite": "litert"}


@pytest.fixture(scope="module")
def io():
    with np.load(DATA / "tiny_mlp_io.npz") as data:
        return data["x"], data["y"]


@pytest.fixture(scope="module")
def runners():
    return {fmt: open_runner(DATA / f"tiny_mlp.{fmt}", threads=1) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_runner_matches_pytorch_output(runners, io, fmt):
    x, y = io
    runner = runners[fmt]
    assert runner.runtime == RUNTIME[fmt]
    assert runner.runtime_version and runner.runtime_version != "unknown"
    [(name, shape, dtype)] = runner.input_specs
    assert shape == (1, 12) and dtype == np.float32
    [out] = runner.run([x])
    np.testing.assert_allclose(out.reshape(y.shape), y, atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_shape_names_input_and_expected_shape(runners, fmt):
    runner = runners[fmt]
    name = runner.input_specs[0][0]
    with pytest.raises(InputError, match=rf"input '{name}' expects shape \[1, 12\] float32, got shape \[1, 13\]"):
        runner.run([np.zeros((1, 13), np.float32)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_dtype_names_input_and_expected_dtype(runners, fmt):
    runner = runners[fmt]
    with pytest.raises(InputError, match=r"expects dtype float32 shape \[1, 12\], got float64"):
        runner.run([np.zeros((1, 12), np.float64)])
    with pytest.raises(InputError, match="expects dtype float32"):
        runner.run([np.zeros((1, 12), np.int64)])


def test_wrong_input_count(runners):
    with pytest.raises(InputError, match=r"takes 1 input\(s\).*got 2"):
        runners["onnx"].run([np.zeros((1, 12), np.float32)] * 2)


def test_lossless_integer_cast_is_accepted_lossy_is_not(runners):
    runner = runners["onnx"]
    runner.input_specs = [("ids", (1, 3), np.dtype(np.int32))]  # as LiteRT declares token ids
    assert runner.check_inputs([np.array([[1, 2, 3]], np.int64)])[0].dtype == np.int32
    with pytest.raises(InputError, match="expects dtype int32"):
        runner.check_inputs([np.array([[1, 2, 2**40]], np.int64)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_is_an_input_error_naming_the_file(tmp_path, fmt):
    data = (DATA / f"tiny_mlp.{fmt}").read_bytes()
    bad = tmp_path / f"cut.{fmt}"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=str(bad)):
        open_runner(bad)


@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_file_is_an_input_error(tmp_path, fmt):
    bad = tmp_path / f"garbage.{fmt}"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=str(bad)):
        open_runner(bad)


@pytest.mark.parametrize("src,dst", [("tflite", "pte"), ("pte", "tflite"), ("onnx", "ort"), ("tflite", "onnx")])
def test_file_of_another_format_is_refused(tmp_path, src, dst):
    bad = tmp_path / f"renamed.{dst}"
    shutil.copy(DATA / f"tiny_mlp.{src}", bad)
    with pytest.raises(InputError, match=str(bad)):
        open_runner(bad)


def test_missing_empty_unknown_and_wrong_runtime(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_runner(tmp_path / "nope.pte")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_runner(tmp_path / "empty.onnx")
    with pytest.raises(InputError, match=r"unknown artifact format '.bin'"):
        runtime_for(tmp_path / "model.bin")
    with pytest.raises(InputError, match="runs in litert, but the target's runtime is executorch"):
        open_runner(DATA / "tiny_mlp.tflite", runtime="executorch")


@pytest.mark.parametrize("fmt", FORMATS)
def test_ops_and_tensors_of_each_format(runners, fmt):
    runner = runners[fmt]
    ops = runner.ops()
    assert ops["violations"] == []
    assert set(ops) >= {"policy", "operators", "delegated", "not_delegated", "violations"}
    tensors = runner.tensors()
    sizes = [t["bytes"] for t in tensors]
    assert sizes == sorted(sizes, reverse=True)
    # tiny_mlp's largest weight is the 32x32 hidden layer: 4 KiB of float32, whatever the format.
    assert sizes[0] == 32 * 32 * 4
    assert sorted(tensors[0]["shape"]) == [32, 32]
    if fmt == "pte":
        assert ops["not_delegated"] == 0 and ops["delegated"] >= 3
        assert ops["delegated_operators"].get("XNNFullyConnected") == 3
    if fmt == "tflite":
        assert ops["operators"]["FULLY_CONNECTED"] == 3
    if fmt in ("onnx", "ort"):
        assert ops["delegated"] is None


def test_ops_under_another_policy_flag_everything(runners):
    ops = runners["onnx"].ops("tflite-builtin-only")
    assert ops["policy"] == "tflite-builtin-only"
    assert ops["violations"] == sorted(ops["operators"])
