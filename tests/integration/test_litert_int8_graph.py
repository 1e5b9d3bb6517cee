"""LiteRT int8 graphs of EfficientNet-Lite-like networks: what litert-torch leaves slow, and edge_kd fixes.

1. TensorFlow "same" padding before strided convolutions: in a PT2E int8 graph litert-torch cannot fold the
   ``nn.ZeroPad2d`` into the convolution, so it pads in NCHW and transposes the activation there and back
   around every such pad. ``export_tflite`` rewrites each ``TRANSPOSE -> PAD -> TRANSPOSE`` as one NHWC
   ``PAD`` (edge_kd.export.litert.fold_transposed_pads), which the XNNPACK delegate fuses into the conv.
2. Residual adds: litert-torch's quantizer finds adds through source partitions, which the non-strict
   export does not record for a ``+`` in ``forward``; unannotated adds ran in float between DEQUANTIZE and
   QUANTIZE. edge_kd annotates every add (edge_kd.quantize.ranges.annotate_adds)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.export import litert as litert_export
from edge_kd.models.efficientnet_lite import MBConvLite
from edge_kd.quantize.litert import LiteRTBackend
from edge_kd.runtimes import open_runner
from edge_kd.runtimes.litert import inspect_tflite
from edge_kd.targets import load_target

pytestmark = pytest.mark.integration


class LiteNet(nn.Module):
    """Stem conv and EfficientNet-Lite blocks: two pad explicitly before a stride-2 depthwise conv, two in
    between add their input back (consecutive residual blocks, one ``forward`` for all), then a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6())
        self.blocks = nn.Sequential(MBConvLite(32, 8, 16, 3, 2, 2), MBConvLite(16, 16, 16, 3, 1, 2),
                                    MBConvLite(16, 16, 16, 3, 1, 2), MBConvLite(16, 16, 16, 5, 2, 2))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def _op_counts(path: Path) -> dict[str, int]:
    return inspect_tflite(path)["operators"]


def _fold_again(path: Path) -> int:
    """Rewrite a copy of ``path`` once more: the number of pads still left to rewrite."""
    copy = path.with_name("again.tflite")
    copy.write_bytes(path.read_bytes())
    return litert_export.fold_transposed_pads(copy)


@pytest.fixture(scope="module")
def int8_with_and_without_fold(tmp_path_factory):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = LiteNet().eval()
    assert sum(isinstance(m, nn.ZeroPad2d) for m in model.modules()) == 2
    assert sum(getattr(m, "residual", False) for m in model.modules()) == 2
    rng = np.random.default_rng(0)
    samples = [(rng.random((1, 3, 32, 32), dtype=np.float32),) for _ in range(24)]
    example = (torch.from_numpy(samples[0][0]),)
    backend = LiteRTBackend(load_target("tflite-int8").quantization)
    calibrated = backend.calibrate(model, example, samples[:16])
    root = tmp_path_factory.mktemp("pads")
    (folded,), _ = backend.build(calibrated, "minmax", example, root / "folded.tflite")
    original = litert_export.fold_transposed_pads
    litert_export.fold_transposed_pads = lambda path: 0
    try:
        (unfolded,), _ = backend.build(calibrated, "minmax", example, root / "unfolded.tflite")
    finally:
        litert_export.fold_transposed_pads = original
    return folded, unfolded, samples[16:]


def test_int8_pads_are_rewritten_in_nhwc_without_transposes(int8_with_and_without_fold):
    folded, unfolded, _ = int8_with_and_without_fold
    before, after = _op_counts(unfolded), _op_counts(folded)
    # Without the rewrite: a transpose pair around each of the two strided pads (plus the input's).
    assert before.get("TRANSPOSE", 0) >= 5 and before.get("PAD") == 2, before
    assert after.get("PAD") == 2 and after.get("TRANSPOSE", 0) == before["TRANSPOSE"] - 4, after
    assert _fold_again(folded) == 0  # nothing left to rewrite


def test_every_residual_add_is_int8(int8_with_and_without_fold):
    from ai_edge_litert.interpreter import Interpreter

    folded, _, _ = int8_with_and_without_fold
    interp = Interpreter(model_path=str(folded))
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    adds = [op for op in ops if op["op_name"] == "ADD"]
    assert len(adds) == 2 and all(dtypes[op["outputs"][0]] == np.int8 for op in adds), adds
    # No float island left inside the graph (int8 in, int8 out: no conversion at all).
    assert not [op["op_name"] for op in ops if op["op_name"] in ("DEQUANTIZE", "QUANTIZE")]


def test_rewritten_int8_model_gives_the_same_outputs(int8_with_and_without_fold):
    folded, unfolded, held_out = int8_with_and_without_fold
    a, b = open_runner(folded), open_runner(unfolded)
    for sample in held_out:
        np.testing.assert_array_equal(np.asarray(a.run(list(sample))[0]), np.asarray(b.run(list(sample))[0]))
