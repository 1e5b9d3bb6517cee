"""The other int8 schemes each runtime offers besides static int8, built as ship candidates.

Static int8 (weights and activations int8, ranges calibrated) is the quantize stage's main product,
but it is not always the fastest: on x86 ONNX Runtime the Q/DQ pairs around every op of a small MLP
cost more than the int8 matmuls save, and a tiny convnet may run faster in float. Each runtime's
cheaper alternative is built here from the same model so that the quantize stage can measure it beside
fp32 and static int8 and ship the fastest one that meets the budgets
(:mod:`edge_kd.quantize.selection`):

* ONNX Runtime: dynamic int8 (``quantize_dynamic``) of the MatMuls: int8 weights, activations
  quantized per call (``DynamicQuantizeLinear`` + ``MatMulInteger``, both in the ORT Mobile package);
  convolutions stay float (``ConvInteger`` is not in the mobile package); embedding tables (Gather)
  int8 unless the profile keeps them float.
* LiteRT: dynamic-range quantization (AI Edge Quantizer ``dynamic_wi8_afp32``): int8 weights,
  float activations quantized on the fly by the int8 kernels.
* ExecuTorch: XNNPACK's dynamically quantized linear (PT2E with ``is_dynamic=True``): int8 weights,
  per-call activation quantization, lowered to XNNPACK's ``qd8`` kernels.

Each builder returns the files it wrote (primary first), or None when the scheme does not apply
(no MatMul/Linear in the model); ``embeddings`` is the profile's ``[quantization] embeddings``. Torch
and the runtimes are imported when a builder runs.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np


@dataclass(frozen=True)
class Scheme:
    """One alternative: ``name`` as recorded in build.json, what it is, and how to build it."""

    name: str
    description: str
    build: Callable[..., list[Path] | None]


def _ort_dynamic(model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                 fp32_files: Sequence[Path], out_path: Path, *, embeddings: str = "int8") -> list[Path] | None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edge_kd.export.onnx import convert_to_ort
    from edge_kd.pipeline.atomic import atomic_path
    from edge_kd.quantize.onnxruntime import _quiet_ort, gemm_as_matmul

    fp32_onnx = next(p for p in fp32_files if p.suffix == ".onnx")
    proto = onnx.load(str(fp32_onnx))
    gemm_as_matmul(proto)  # a dynamic Gemm has no integer kernel; MatMul + float bias add has
    if not any(n.op_type == "MatMul" for n in proto.graph.node):
        return None
    out_path = out_path.with_suffix(".onnx")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge_kd-ortdyn-") as tmp:
        src = Path(tmp) / "fp32.onnx"
        onnx.save(proto, str(src))
        with atomic_path(out_path) as tmp_out, _quiet_ort():
            # Gather: constant tables (item or token embeddings) stored as int8 and dequantized after the
            # lookup, as [quantization] embeddings = "int8" asks (the next-purchase student's dynamic bundle:
            # 1,101,540 B before, 459.6 KiB after, in benchmarks/results/build.md).
            op_types = ["MatMul", "Gather"] if embeddings == "int8" else ["MatMul"]
            # One scale per weight column: MiniLM on Banking77 drops 0.48 pt against fp32 on 2,080 test rows
            # (benchmarks/int8.py --dynamic, benchmarks/results/int8.md); with one scale per tensor the same
            # benchmark measured 1.25 pt.
            quantize_dynamic(str(src), str(tmp_out), weight_type=QuantType.QInt8, op_types_to_quantize=op_types,
                             per_channel=True)
    ort_path, config = convert_to_ort(out_path, out_path.parent)
    return [out_path, ort_path, config]


def _litert_dynamic_range(model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                          fp32_files: Sequence[Path], out_path: Path, *, embeddings: str = "int8") -> list[Path] | None:
    from ai_edge_quantizer import quantizer as aeq
    from ai_edge_quantizer import recipe

    from edge_kd.export.litert import export_tflite

    q = aeq.Quantizer(str(fp32_files[0]), recipe.dynamic_wi8_afp32())
    # The quantizer prints a size summary on stdout: keep the build's console (and --json output) clean.
    with contextlib.redirect_stdout(io.StringIO()):
        result = q.quantize()
    return [export_tflite(bytes(result.quantized_model), None, out_path)]


def _xnnpack_dynamic_linear(model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                            fp32_files: Sequence[Path], out_path: Path, *, embeddings: str = "int8"
                            ) -> list[Path] | None:
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    from edge_kd.export.executorch import export_pte
    from edge_kd.quantize.embeddings import lookup_transform
    from edge_kd.quantize.ranges import PT2ECalibration, integer_safe_xnnpack_quantizer

    if not any(isinstance(m, torch.nn.Linear) for m in model.modules()):
        return None
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    # Linear layers only, as the scheme says: a global dynamic config also quantizes convolutions, and
    # XNNPACK then refuses EfficientNet-Lite0's at run time ("Propagating input shapes failed:
    # xnn_status_invalid_parameter"), which stopped the grocery build in its quantize stage.
    # The integer-safe quantizer: with the stock XNNPACKQuantizer, transformers' attention-mask index
    # arithmetic turned float and calibration of MiniLM crashed ("tensors used as indices must be long").
    quantizer = integer_safe_xnnpack_quantizer()().set_module_type(torch.nn.Linear, config)
    # Embedding tables as the static candidate stores them ([quantization] embeddings): int8 rows read by
    # the quantized embedding kernels. Without it MiniLM's 30,522 x 384 word table stayed float and the
    # dynamic file was 0.648x of fp32 instead of ~0.26x.
    calibrated = PT2ECalibration(model, example_inputs, quantizer, list(samples)[:2], lookup_transform(embeddings))
    with _without_qdq_metadata_port():
        converted, _ = calibrated.convert(None)
    return [export_pte(converted, example_inputs, out_path)]


@contextlib.contextmanager
def _without_qdq_metadata_port() -> Iterator[None]:
    """torchao 0.18's ``PortNodeMetaForQDQ`` pass fails on every dynamically quantized linear ("No
    chose qparams node found for linear") although convert inserted the choose_qparams node. The pass
    only copies metadata onto the Q/DQ nodes; without it the graph still lowers fully to XNNPACK
    (``XNNConvert`` + ``XNNFullyConnected``) and matches fp32 to 1e-3."""
    from torch.fx.passes.infra.pass_base import PassResult
    from torchao.quantization.pt2e.quantizer import port_metadata_pass

    cls = port_metadata_pass.PortNodeMetaForQDQ
    original = cls.call
    cls.call = lambda self, graph_module: PassResult(graph_module, False)
    try:
        yield
    finally:
        cls.call = original


SCHEMES: dict[str, tuple[Scheme, ...]] = {
    "onnxruntime": (Scheme("int8-dynamic", "int8 MatMul weights, activations quantized per call "
                           "(quantize_dynamic), convolutions float", _ort_dynamic),),
    "litert": (Scheme("int8-dynamic-range", "int8 weights, float activations quantized on the fly "
                      "(AI Edge Quantizer dynamic_wi8_afp32)", _litert_dynamic_range),),
    "executorch": (Scheme("int8-dynamic", "XNNPACK dynamically quantized linear: int8 weights, "
                          "activations quantized per call; other ops float", _xnnpack_dynamic_linear),),
}


def alternative_schemes(runtime: str) -> tuple[Scheme, ...]:
    """The schemes besides fp32 and static int8 that ``runtime`` offers (empty for an unknown one)."""
    return SCHEMES.get(runtime, ())


def candidate_tags() -> tuple[str, ...]:
    """The file tags (``model.<tag>.<ext>``) any candidate of any runtime may be written under: what
    ``edge-kd quantize`` checks it owns before writing into a folder."""
    return ("int8", "fp32", *sorted({s.name for schemes in SCHEMES.values() for s in schemes}))
