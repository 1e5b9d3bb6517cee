"""The op-policy logic the gate relies on (pure Python, no runtime imported)."""
from __future__ import annotations

import subprocess
import sys

from edge_kd.runtimes.ops import MOBILE_PACKAGE_OPS, ops_record, ort_op_key, violations


def test_xnnpack_full_delegation_flags_portable_compute_ops_only():
    ops = {"executorch_call_delegate[XnnpackBackend]": 2, "aten::native_layer_norm.out": 1,
           "executorch_prim::et_view.default": 3, "aten::sym_size.int": 1, "aten::mean.out": 1,
           # no arithmetic, no XNNPACK kernel: allowed (still counted as not delegated elsewhere)
           "aten::embedding.out": 1, "aten::expand_copy.out": 4, "aten::arange.start_out": 1}
    assert violations("xnnpack-full-delegation", "executorch", ops) == ["aten::mean.out",
                                                                        "aten::native_layer_norm.out"]
    assert violations("xnnpack-full-delegation", "executorch", {"executorch_call_delegate[XnnpackBackend]": 1}) == []


def test_ort_mobile_operators_uses_the_mobile_package_set():
    assert "Conv" in MOBILE_PACKAGE_OPS["ai.onnx"] and "QLinearConv" in MOBILE_PACKAGE_OPS["com.microsoft"]
    ops = {"Conv": 2, "Relu": 2, "com.microsoft::FusedConv": 1, "Einsum": 1, "com.microsoft::Attention": 1, "Gelu": 1,
           "my.domain::Custom": 1}
    assert violations("ort-mobile-operators", "onnxruntime", ops) == ["Einsum", "com.microsoft::Attention",
                                                                       "my.domain::Custom"]
    assert ort_op_key("", "Conv") == "Conv" and ort_op_key("ai.onnx", "Add") == "Add"
    assert ort_op_key("com.microsoft", "Gelu") == "com.microsoft::Gelu"


def test_tflite_builtin_only_flags_custom_and_flex():
    ops = {"CONV_2D": 3, "CUSTOM:FlexErf": 1, "CUSTOM:my_op": 1}
    assert violations("tflite-builtin-only", "litert", ops) == ["CUSTOM:FlexErf", "CUSTOM:my_op"]


def test_any_allows_everything_and_foreign_policy_allows_nothing():
    assert violations("any", "litert", {"CUSTOM:x": 1}) == []
    assert violations("tflite-builtin-only", "onnxruntime", {"Conv": 1, "Add": 1}) == ["Add", "Conv"]


def test_ops_record_shape_and_order():
    rec = ops_record("tflite-builtin-only", "litert", ["ADD", "CONV_2D", "CONV_2D", "CUSTOM:x"], delegated=3,
                     not_delegated=1)
    assert rec == {"policy": "tflite-builtin-only", "operators": {"CONV_2D": 2, "ADD": 1, "CUSTOM:x": 1},
                   "delegated": 3, "not_delegated": 1, "violations": ["CUSTOM:x"]}


def test_packages_import_lean():
    code = ("import sys, edge_kd.runtimes, edge_kd.export, edge_kd.bench, edge_kd.cli.export, edge_kd.cli.bench;"
            "heavy = [m for m in ('torch', 'executorch', 'onnxruntime', 'ai_edge_litert', 'litert_torch', 'onnx')"
            " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
