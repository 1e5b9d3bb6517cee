"""int8 of a pruned depthwise network on the PT2E targets (the pruned EfficientNet-Lite0 grocery student
collapsed to -2 dB output SQNR on LiteRT, and kept 21.7 dB on XNNPACK against 28.8 dB on ORT).

Root cause: litert-torch's PT2E quantizer and ExecuTorch's XNNPACKQuantizer fuse conv+ReLU but treat
ReLU6 (``hardtanh``) as an op that shares its input's observer, so each ReLU6 output was quantized over
the conv's pre-activation range ([-70, 64] for a [0, 6] tensor in EfficientNet-Lite0's stem). edge_kd
annotates conv/linear + ReLU6 as one op observed after the clamp
(edge_kd.quantize.ranges.annotate_weighted_clamp)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge_kd.quantize.litert import LiteRTBackend
from edge_kd.runtimes import open_runner
from edge_kd.targets import load_target
from edge_kd.testing.tiny_models import tiny_pruned_depthwise

pytestmark = pytest.mark.integration
torch.set_num_threads(1)


def _fused_relu6_ranges(path: Path) -> list[tuple[str, float, float]]:
    """(op, lo, hi) of the int8 output range of every conv op with a fused ReLU6 in the .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    details = interp.get_tensor_details()
    ranges = []
    for op in interp._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        q = details[op["outputs"][0]]["quantization_parameters"]
        scale, zp = float(q["scales"][0]), int(q["zero_points"][0])
        ranges.append((op["op_name"], (-128 - zp) * scale, (127 - zp) * scale))
    return ranges


def _calibrated(backend_class, target: str, tmp_path: Path):
    """The tiny pruned depthwise net exported to fp32 and calibrated for ``target`` (32 samples; 16 more
    held out for the SQNR check)."""
    model = tiny_pruned_depthwise()
    channels = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert any(c % 8 for c in channels), channels  # pruned to odd channel counts
    rng = np.random.default_rng(0)
    samples = [(rng.random((1, 3, 32, 32), dtype=np.float32),) for _ in range(48)]
    example = (torch.from_numpy(samples[0][0]),)
    backend = backend_class(load_target(target).quantization)
    fp32 = backend.export_fp32(model, example, tmp_path / f"fp32.{backend.extension}")[0]
    return backend, samples, example, fp32, backend.calibrate(model, example, samples[:32])


def _output_sqnr_db(fp32: Path, int8: Path, samples: list) -> float:
    ref, quant = open_runner(fp32), open_runner(int8)
    out32 = [np.asarray(ref.run(list(s))[0], dtype=np.float64) for s in samples]
    out8 = [np.asarray(quant.run(list(s))[0], dtype=np.float64) for s in samples]
    signal = sum(float((a ** 2).sum()) for a in out32)
    noise = sum(float(((a - b) ** 2).sum()) for a, b in zip(out32, out8))
    return 10 * np.log10(signal / noise)


def test_pruned_depthwise_net_litert_int8_keeps_relu6_range(tmp_path: Path):
    backend, samples, example, fp32, calibrated = _calibrated(LiteRTBackend, "tflite-int8", tmp_path)
    (int8,), _ = backend.build(calibrated, "minmax", example, tmp_path / "int8.tflite")

    # The cause, checked directly: conv+ReLU6 outputs are quantized over [0, 6], not the conv's range.
    relu6 = [r for r in _fused_relu6_ranges(int8) if r[1] > -1.0]
    assert len(relu6) >= 4, _fused_relu6_ranges(int8)
    assert all(hi <= 6.1 for _, _, hi in relu6), relu6
    # The symptom: int8 output close to the fp32 .tflite (20 dB before the fix, 37 dB after).
    sqnr = _output_sqnr_db(fp32, int8, samples[32:])
    assert sqnr >= 30.0, f"output SQNR {sqnr:.1f} dB"


def test_pruned_depthwise_net_xnnpack_int8_keeps_relu6_range(tmp_path: Path):
    from edge_kd.quantize.executorch import ExecuTorchBackend
    from edge_kd.runtimes.executorch import inspect_pte

    backend, samples, example, fp32, calibrated = _calibrated(ExecuTorchBackend, "android-arm64-xnnpack", tmp_path)

    # The cause, checked directly: every ReLU6 output is quantized over [0, 6] (scale 6/255).
    converted, _ = calibrated.convert("minmax", percentile=99.99)
    relu6_scales = [float(user.args[1]) for node in converted.graph.nodes
                    if node.op == "call_function" and "hardtanh" in str(node.target)
                    for user in node.users if "quantize_per_tensor" in str(user.target)]
    assert len(relu6_scales) >= 4 and all(abs(s - 6 / 255) < 1e-4 for s in relu6_scales), relu6_scales

    (int8,), _ = backend.build(calibrated, "minmax", example, tmp_path / "int8.pte")
    assert inspect_pte(int8)["operators"] == {"executorch_call_delegate[XnnpackBackend]": 1}  # still one delegate
    sqnr = _output_sqnr_db(fp32, int8, samples[32:])
    assert sqnr >= 30.0, f"output SQNR {sqnr:.1f} dB (20.1 dB before the fix, 37.1 after)"
