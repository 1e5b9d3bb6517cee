"""Regenerate the tiny artifacts the runtime unit tests load (run after a toolchain upgrade):

    python tests/unit/runtimes/data/make_fixtures.py

tiny_mlp (12 float features -> 2 logits) exported to every format, with the PyTorch outputs for a
fixed input so the tests can check the runtimes without importing the exporters.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))


def main() -> None:
    import torch

    from edge_kd.export.executorch import export_pte
    from edge_kd.export.litert import export_tflite
    from edge_kd.export.onnx import convert_to_ort, export_onnx
    from edge_kd.testing.tiny_models import TINY_SPECS

    spec = TINY_SPECS["mlp"]
    model = spec.build()
    example = spec.example_inputs()
    export_pte(model, example, HERE / "tiny_mlp.pte")
    export_tflite(model, example, HERE / "tiny_mlp.tflite")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, example, Path(tmp) / "tiny_mlp.onnx", ["features"])
        ort_path, _ = convert_to_ort(onnx_path, Path(tmp))
        shutil.copy(onnx_path, HERE / "tiny_mlp.onnx")
        shutil.copy(ort_path, HERE / "tiny_mlp.ort")
    x = example[0]
    with torch.no_grad():
        y = model(x)
    np.savez(HERE / "tiny_mlp_io.npz", x=x.numpy(), y=y.numpy())


if __name__ == "__main__":
    main()
