"""LiteRT .tflite via litert_torch.convert(...).export(...).

The int8 helper either passes ``quant_config`` (litert_torch's PT2E-based quantizer) or post-processes
with ai-edge-quantizer and hands the finished flatbuffer (bytes or a path) to ``export_tflite``, which
then only validates and writes it atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from edge_kd.errors import InputError
from edge_kd.export._common import call_converter
from edge_kd.pipeline.atomic import atomic_path
from edge_kd.pipeline.stage import Artifact


def export_tflite(model: Any, example_inputs: tuple | None, out_path: str | os.PathLike[str], *,
                  quant_config: Any = None) -> Path:
    """Write a ``.tflite``: convert a module, or store a converted flatbuffer (bytes or .tflite path).

    >>> export_tflite(tiny_cnn(), (torch.rand(1, 3, 32, 32),), Path("out/model.tflite"))   # doctest: +SKIP
    """
    out_path = Path(out_path)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _write_flatbuffer(bytes(model), out_path, "the given bytes")
    if isinstance(model, (str, os.PathLike)):
        src = Path(model)
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise InputError(f"{src}: cannot read the .tflite flatbuffer: {exc.strerror}") from None
        return _write_flatbuffer(data, out_path, str(src))
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        model = model.module()
    elif isinstance(model, torch.nn.Module) and not isinstance(model, torch.fx.GraphModule):
        model = model.eval()
    def convert(tmp: Path) -> None:
        import litert_torch

        edge_model = litert_torch.convert(model, tuple(example_inputs or ()), quant_config=quant_config)
        edge_model.export(str(tmp))
        fold_transposed_pads(tmp)

    with atomic_path(out_path) as tmp:
        call_converter("LiteRT .tflite", convert, tmp)
    return out_path


#: LiteRT builtin codes of the ops :func:`fold_transposed_pads` rewrites (schema.fbs BuiltinOperator).
_PAD_OPS = {"PAD", "PADV2"}
_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def fold_transposed_pads(path: Path) -> int:
    """Rewrite ``TRANSPOSE(to NCHW) -> PAD -> TRANSPOSE(to NHWC)`` as one ``PAD`` in NHWC, in place.

    Why: a PyTorch ``F.pad`` before a strided convolution (TensorFlow "SAME" padding, as in
    EfficientNet-Lite and MobileNet ports) is folded into the convolution in a float conversion, but in a
    PT2E int8 graph the quantize/dequantize pair between the pad and the convolution blocks that fold:
    litert-torch then pads in PyTorch's NCHW layout and transposes the activation there and back. The
    XNNPACK delegate fuses an NHWC pad into the convolution that follows, so the rewrite removes two
    full-activation copies per strided block. Measured on the grocery EfficientNet-Lite0 int8 .tflite
    (4 such pads, 192 px, one thread, a one-off timing on 2026-12-05): 3.72 -> 3.04 ms per image, outputs
    bit-identical.

    The rewrite is exact: the pad widths are permuted with the layout and the tensors' quantization is
    unchanged (a transpose keeps it). Returns the number of pads rewritten (0 leaves the file as it was).
    """
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    graph = model.subgraphs[0]
    ops = graph.operators
    name = [fb.opcode_to_name(model, op.opcodeIndex) for op in ops]
    producer = {int(t): i for i, op in enumerate(ops) for t in op.outputs}
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(i)
    graph_outputs = {int(t) for t in graph.outputs}

    def constant(tensor: int) -> list[int] | None:
        data = model.buffers[graph.tensors[tensor].buffer].data
        return None if data is None or not len(data) else np.frombuffer(bytes(data), np.int32).tolist()

    dropped: set[int] = set()
    for i, op in enumerate(ops):
        if name[i] not in _PAD_OPS:
            continue
        padded_in, padded_out = int(op.inputs[0]), int(op.outputs[0])
        before, after = producer.get(padded_in), consumers.get(padded_out, [])
        if before is None or len(after) != 1 or {padded_in, padded_out} & graph_outputs:
            continue
        after_op = after[0]
        if (name[before], name[after_op]) != ("TRANSPOSE", "TRANSPOSE") or len(consumers[padded_in]) != 1:
            continue
        widths = constant(int(op.inputs[1]))
        if (constant(int(ops[before].inputs[1])) != _TO_NCHW or constant(int(ops[after_op].inputs[1])) != _TO_NHWC
                or widths is None or len(widths) != 8):
            continue
        nchw = np.array(widths, np.int32).reshape(4, 2)
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(nchw[_TO_NHWC].tobytes(), np.uint8)
        model.buffers.append(buffer)
        pads = schema.TensorT()
        pads.shape, pads.type = np.array([4, 2], np.int32), schema.TensorType.INT32
        pads.buffer, pads.name = len(model.buffers) - 1, f"edge_kd_nhwc_pad_{len(dropped) // 2}".encode()
        graph.tensors.append(pads)
        op.inputs = np.array([ops[before].inputs[0], len(graph.tensors) - 1, *op.inputs[2:]], np.int32)
        op.outputs = np.array(ops[after_op].outputs, np.int32)
        dropped.update((before, after_op))
    if dropped:
        graph.operators = [op for i, op in enumerate(ops) if i not in dropped]
        fb.write_model(model, str(path))
    return len(dropped) // 2


def _write_flatbuffer(data: bytes, out_path: Path, source: str) -> Path:
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise InputError(f"{source}: not a LiteRT .tflite flatbuffer (no 'TFL3' identifier)")
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
    return out_path


def export_formats(model: Any, example_inputs: tuple, formats: Sequence[str], folder: Path, name: str,
                   input_names: list[str] | None = None) -> list[Artifact]:
    """The runtime registry's exporter entry: ``<name>.tflite`` in ``folder``."""
    return [Artifact(export_tflite(model, example_inputs, folder / f"{name}.tflite"), "tflite")]
