"""``edge-kd quantize`` bad input: one line, exit 2, nothing written (no export runs here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_kd.cli import main

CNN = ["edge_kd.testing.tiny_models:tiny_cnn", "--input", "image:1x3x32x32:float32"]


def run(tmp_path: Path, calib_arrays: dict | None, *extra: str, capsys=None) -> tuple[int, str]:
    args = [*CNN, "--target", "ort-mobile", "--out", str(tmp_path / "out")]
    if calib_arrays is not None:
        np.savez(tmp_path / "calib.npz", **calib_arrays)
        args += ["--calib", f"npz:{tmp_path / 'calib.npz'}"]
    rc = main(["quantize", *args, *extra])
    return rc, capsys.readouterr().err if capsys else ""


@pytest.mark.parametrize("arrays, message", [
    ({"x0": np.zeros((0, 3, 32, 32), np.float32)}, "empty"),
    ({"x0": np.zeros((3, 3, 32, 32), np.float32)}, "too few"),
    ({"x0": np.zeros((16, 3, 16, 16), np.float32)}, "shape"),
    ({"x0": np.zeros((16, 3, 32, 32), np.int64)}, "dtype"),
    ({"x0": np.full((16, 3, 32, 32), np.nan, np.float32)}, "NaN"),
    ({"images": np.zeros((16, 3, 32, 32), np.float32)}, "x0"),
])
def test_cli_bad_calibration_exit_2(tmp_path: Path, capsys, arrays, message):
    rc, err = run(tmp_path, arrays, capsys=capsys)
    assert rc == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.iterdir() if p.suffix in (".onnx", ".ort")]


def test_cli_missing_calibration_file_and_no_input(tmp_path: Path, capsys):
    rc = main(["quantize", *CNN, "--target", "ort-mobile", "--calib", "npz:/nonexistent.npz",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(["quantize", "edge_kd.testing.tiny_models:tiny_cnn", "--target", "ort-mobile",
               "--calib", "npz:x.npz", "--out", str(tmp_path / "o")])
    assert rc == 2 and "--input" in capsys.readouterr().err


def test_cli_module_is_lean():
    import subprocess
    import sys

    code = ("import sys, edge_kd.cli.quantize; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'executorch', "
            "'ai_edge_litert', 'litert_torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
