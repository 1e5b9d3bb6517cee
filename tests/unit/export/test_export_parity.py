"""Parity math, failure messages and the no-partial-artifact rule of export_model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_kd.errors import InputError
from edge_kd.export import export_model
from edge_kd.export._common import export_failure
from edge_kd.export.parity import compare, default_tolerance, variants
from edge_kd.targets import load_target


def test_compare_golden_values():
    ref = [[np.array([[1.0, 3.0, 2.0]])], [np.array([[0.5, -1.0, 0.0]])]]
    act = [[np.array([[1.0, 2.9, 2.0]])], [np.array([[0.5, -1.0, 0.75]])]]
    r = compare(ref, act)
    assert r["max_abs_error"] == pytest.approx(0.75)
    assert r["max_abs_reference"] == pytest.approx(3.0)
    assert r["top1_agreement"] == pytest.approx(0.5)  # second sample's argmax moved from 0 to 2
    assert r["n"] == 2


def test_compare_reshapes_equal_size_outputs_and_rejects_others():
    r = compare([[np.zeros((1, 4))]], [[np.zeros((4,))]])
    assert r["max_abs_error"] == 0.0
    with pytest.raises(ValueError, match="output shape differs"):
        compare([[np.zeros((1, 4))]], [[np.zeros((1, 5))]])
    with pytest.raises(ValueError, match="output count differs"):
        compare([[np.zeros(2), np.zeros(2)]], [[np.zeros(2)]])


def test_default_tolerance_scales_with_output_magnitude():
    assert default_tolerance(0.2) == pytest.approx(1e-3)
    assert default_tolerance(50.0) == pytest.approx(5e-2)


def test_variants_keep_shape_dtype_and_range():
    example = (torch.full((2, 3), 0.5) * torch.tensor([0.0, 1.0, 2.0]), torch.tensor([[3, 7, 5]]))
    out = variants(example, 4)
    assert len(out) == 4
    for floats, ints in out:
        assert floats.shape == (2, 3) and floats.dtype == torch.float32
        assert float(floats.min()) >= 0.0 and float(floats.max()) <= 1.0
        assert ints.dtype == torch.int64 and int(ints.min()) >= 3 and int(ints.max()) <= 7


def test_export_failure_names_the_operator_and_strips_colour():
    exc = RuntimeError("\x1b[96mLowering not found\x1b[0m: aten.linalg_eig.default\nlong trace")
    err = export_failure("LiteRT .tflite", exc, log="... torch.ops.aten.linalg_eig.default ...")
    assert str(err) == ("cannot export the model to LiteRT .tflite (operator torch.ops.aten.linalg_eig.default): "
                        "RuntimeError: Lowering not found: aten.linalg_eig.default")
    passthrough = InputError("x")
    assert export_failure("ONNX", passthrough) is passthrough


class EagerDiffers(torch.nn.Module):
    """Computes something else when not traced: the exported artifact disagrees with eager PyTorch."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x)
        if not torch.compiler.is_exporting():
            y = y + 0.5
        return y


def test_parity_failure_raises_with_numbers_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    torch.manual_seed(0)  # the tolerance scales with the largest output (floor 1e-3): keep it deterministic
    with pytest.raises(InputError, match=r"model\.onnx: parity check failed in onnxruntime: max abs error 0\.5 > "
                                         r"tolerance 0\.00[0-9]+ over 4 inputs .*no artifact written"):
        export_model(EagerDiffers().eval(), (torch.rand(1, 4),), load_target("ort-mobile"), out)
    assert not out.exists()  # created by the export, removed with everything in it
    out.mkdir()
    (out / "keep.txt").write_text("the user's file")
    with pytest.raises(InputError, match="parity check failed"):
        export_model(EagerDiffers().eval(), (torch.rand(1, 4),), load_target("ort-mobile"), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_parity_passes_with_caller_tolerance_and_reports_numbers(tmp_path):
    res = export_model(EagerDiffers().eval(), (torch.rand(1, 4),), load_target("ort-mobile"), tmp_path, atol=0.6,
                       name="loose")
    assert res.parity["checked"] and res.parity["max_abs_error"] == pytest.approx(0.5, abs=1e-5)
    assert res.parity["tolerance"] == 0.6 and res.parity["n"] == 4
    assert set(res.parity["per_format"]) == {"onnx", "ort"}
    assert res.primary == tmp_path / "loose.ort"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["loose.onnx", "loose.ort", "loose.required_operators.config"]
    roles = {a.path.name: (a.role, a.format) for a in res.artifacts}
    assert roles == {"loose.onnx": ("export", "onnx"), "loose.ort": ("model", "ort"),
                     "loose.required_operators.config": ("export", "ort-config")}
    assert "ai.onnx;" in (tmp_path / "loose.required_operators.config").read_text()
    assert res.tensors[0]["bytes"] == 4 * 3 * 4 and res.ops["violations"] == []
    assert res.to_dict()["primary"].endswith("loose.ort")


def test_bad_names_and_out_paths(tmp_path):
    target = load_target("ort-mobile")
    with pytest.raises(InputError, match="plain file stem"):
        export_model(EagerDiffers(), (torch.rand(1, 4),), target, tmp_path, name="../x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        export_model(EagerDiffers(), (torch.rand(1, 4),), target, tmp_path / "file")
