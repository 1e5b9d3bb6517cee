"""Embedding tables in int8 (or int4) on every runtime: ``[quantization] embeddings``.

On a phone the embedding table is most of a text or CTR model's bytes, and the static int8 quantizers
of ExecuTorch (XNNPACK) and LiteRT leave lookups in float. Each runtime gets its own storage:

* **ExecuTorch**: :func:`quantize_embedding_lookups` rewrites every ``aten.embedding`` of a constant
  table in the exported graph (before PT2E annotates it) into
  ``quantized_decomposed::embedding_byte`` (int8 rows, one scale per row) or ``embedding_4bit`` (int4,
  two values per byte, one scale per group of columns). Those are the kernels ExecuTorch's runtime
  ships (``executorch.kernels.quantized``, also what its llama example uses); XNNPACK has no lookup
  kernel, so they run outside the delegate, which the ``xnnpack-full-delegation`` policy allows. A
  table whose values are small integers (the text student's padding mask) is stored exactly as int8
  and read back by ``aten.embedding`` + ``dequantize_per_tensor`` (scale 1), which XNNPACK runs as a
  Convert node.
* **LiteRT**: :func:`quantize_tflite_lookups` applies ai-edge-quantizer's weight quantization to the
  EMBEDDING_LOOKUP ops of the already full-integer .tflite (per-row scales; a one-column table gets one
  scale), so the file has int8 compute and int8 tables. EMBEDDING_LOOKUP reads int8/int4 tables itself.
* **ONNX Runtime**: ``quantize_static`` stores Gather tables as int8 already (edge_kd then gathers
  before dequantizing); ``float`` excludes the Gather nodes (see quantize/onnxruntime.py).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: Columns per int4 scale group (the largest of these that divides the embedding dim).
INT4_GROUP_SIZES = (32, 16, 8)


#: Bytes per row besides the values: ExecuTorch keeps an fp16 scale per row (per group for int4),
#: LiteRT a float32 scale and an int64 zero point per row (the flatbuffer's types), ONNX Runtime one
#: scale per table.
_ROW_OVERHEAD = {"executorch": 2, "litert": 12, "onnxruntime": 0}


def table_bytes(rows: int, dim: int, scheme: str, runtime: str = "executorch") -> int:
    """Bytes one table takes in an artifact of ``runtime`` (values plus scales)."""
    if scheme == "float":
        return rows * dim * 4
    overhead = _ROW_OVERHEAD.get(runtime, 2)
    if scheme == "int8":
        return rows * (dim + overhead)
    if scheme == "int4":
        group = _int4_group(dim)
        if group is None:
            return rows * (dim + overhead)
        groups = dim // group if runtime == "executorch" else 1
        return rows * (dim // 2 + overhead * groups)
    raise ValueError(f"unknown embedding scheme {scheme!r}")


def budget_error(model: Any, target: Any, budget_bytes: int) -> str | None:
    """One line when the model's embedding tables alone exceed ``budget_bytes`` in the profile's
    scheme: which scheme of the runtime would fit, or, when none does, how many rows would."""
    from edge_kd.runtimes.registry import runtime_spec
    from edge_kd.units import format_bytes

    tables = model_tables(model)
    if not tables or target.quantization.mode != "int8":
        return None
    runtime, scheme = target.runtime.name, target.quantization.embeddings
    need = {s: sum(table_bytes(r, d, s, runtime) for _, r, d in tables)
            for s in runtime_spec(runtime).embedding_schemes}
    if need.get(scheme, 0) <= budget_bytes:
        return None
    shape = ", ".join(f"{name} {r}x{d}" for name, r, d in tables)
    fitting = [s for s in ("int8", "int4") if s in need and need[s] <= budget_bytes]
    if fitting:
        return (f"quantization.embeddings = {scheme!r}: the embedding tables ({shape}) need "
                f"{format_bytes(need[scheme])} on {runtime}, over the {format_bytes(budget_bytes)} budget; "
                f"{fitting[0]} fits ({format_bytes(need[fitting[0]])}): set [quantization] embeddings = "
                f"{fitting[0]!r}")
    best = min(need, key=need.get)
    per_row = need[best] / max(sum(r for _, r, _ in tables), 1)
    return (f"quantization.embeddings: the embedding tables ({shape}) need {format_bytes(need[best])} on "
            f"{runtime} even as {best}, over the {format_bytes(budget_bytes)} budget; at most "
            f"{int(budget_bytes // per_row):,} rows in all fit at {best}")


def _int4_group(dim: int) -> int | None:
    if dim % 2:
        return None
    return next((g for g in INT4_GROUP_SIZES if dim % g == 0), dim)


def model_tables(model: Any) -> list[tuple[str, int, int]]:
    """(name, rows, dim) of the model's ``nn.Embedding`` tables (works on the meta device)."""
    import torch

    return [(name, int(m.num_embeddings), int(m.embedding_dim)) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Embedding)]


# ------------------------------------------------------------------------------------------------
# ExecuTorch: a graph pass on the exported module
# ------------------------------------------------------------------------------------------------
def _ensure_ops() -> None:
    """Register the quantized embedding ops with torch (export) and ExecuTorch's runtime (running)."""
    import executorch.exir.passes._quant_patterns_and_replacements  # noqa: F401  (embedding_4bit)
    import executorch.kernels.quantized  # noqa: F401  (AOT + runtime kernels)
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (embedding_byte)


def _small_integers(weight: Any) -> bool:
    import torch

    return bool(torch.equal(weight, weight.round())) and float(weight.abs().max()) <= 127


def quantize_rows_int8(weight: Any) -> tuple[Any, Any]:
    """Symmetric int8 per row: (int8 [N, D], fp16 scales [N])."""
    import torch

    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-8).to(torch.float16)
    q = torch.round(w / scales.float().unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return q, scales


def quantize_groups_int4(weight: Any, group: int) -> tuple[Any, Any]:
    """Symmetric int4 per group of ``group`` columns, packed two per byte (high nibble = even column):
    (uint8 [N, D/2], fp16 scales [N, D/group])."""
    import torch

    w = weight.detach().float()
    n, d = w.shape
    grouped = w.reshape(n, d // group, group)
    scales = (grouped.abs().amax(dim=2) / 7.0).clamp(min=1e-8).to(torch.float16)
    q = torch.round(grouped / scales.float().unsqueeze(2)).clamp(-8, 7).to(torch.int8).reshape(n, d)
    shifted = (q + 8).to(torch.uint8)
    packed = shifted[:, 0::2] * 16 + shifted[:, 1::2]
    return packed.contiguous(), scales


def lookup_transform(scheme: str) -> Callable[[Any], list[dict[str, Any]]] | None:
    """The graph transform that stores a PT2E graph's embedding tables per ``[quantization] embeddings``
    (``PT2ECalibration``'s ``graph_transform``), or None to keep them float."""
    if scheme == "float":
        return None
    return lambda gm: quantize_embedding_lookups(gm, scheme)


def quantize_embedding_lookups(gm: Any, scheme: str) -> list[dict[str, Any]]:
    """Rewrite the constant-table lookups of ``gm`` (a ``torch.export`` module) in place; returns one
    record per table. ``scheme``: ``int8`` or ``int4`` (tables with an odd dim fall back to int8)."""
    import torch

    if scheme == "float":
        return []
    _ensure_ops()
    qd = torch.ops.quantized_decomposed
    graph = gm.graph
    records: list[dict[str, Any]] = []
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != torch.ops.aten.embedding.default:
            continue
        table, ids = node.args[0], node.args[1]
        if table.op != "get_attr":
            continue
        weight = _get_attr(gm, table.target)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
            continue
        rows, dim = weight.shape
        base = re.sub(r"\W", "_", str(table.target))
        with graph.inserting_before(node):
            if _small_integers(weight):
                # Exact: the values are the int8 codes. aten.embedding gathers int8 rows and XNNPACK
                # converts them to float (no per-row scales needed).
                codes = _register(gm, f"{base}_int8", weight.detach().round().to(torch.int8))
                looked = graph.call_function(torch.ops.aten.embedding.default, (codes, ids))
                new = graph.call_function(qd.dequantize_per_tensor.default,
                                          (looked, 1.0, 0, -128, 127, torch.int8))
                used, group = "int8-exact", None
            else:
                group = _int4_group(dim) if scheme == "int4" else None
                if group is not None:
                    packed, scales = quantize_groups_int4(weight, group)
                    q = _register(gm, f"{base}_int4", packed)
                    s = _register(gm, f"{base}_scales", scales)
                    new = graph.call_function(qd.embedding_4bit.dtype, (q, s, None, -8, 7, ids),
                                              {"dtype": weight.dtype})
                    used = "int4"
                else:
                    codes, scales = quantize_rows_int8(weight)
                    q = _register(gm, f"{base}_int8", codes)
                    s = _register(gm, f"{base}_scales", scales)
                    new = graph.call_function(qd.embedding_byte.dtype, (q, s, None, -128, 127, ids),
                                              {"dtype": weight.dtype})
                    used = "int8"
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        if not table.users:
            graph.erase_node(table)
            _drop_attr(gm, str(table.target))
        records.append({"table": str(table.target), "rows": int(rows), "dim": int(dim), "scheme": used,
                        "group_size": group, "float_bytes": int(rows * dim * 4),
                        "bytes": table_bytes(rows, dim, "int4" if used == "int4" else "int8")
                        if used != "int8-exact" else int(rows * dim)})
    graph.lint()
    gm.recompile()
    return records


def _get_attr(gm: Any, target: str) -> Any:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _register(gm: Any, name: str, value: Any) -> Any:
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix

    attr = get_new_attr_name_with_prefix(name + "_")(gm)
    gm.register_buffer(attr, value)
    node = gm.graph.get_attr(attr)
    return node


def _drop_attr(gm: Any, target: str) -> None:
    *parents, leaf = target.split(".")
    owner = gm
    for part in parents:
        owner = getattr(owner, part)
    for store in ("_parameters", "_buffers"):
        if leaf in getattr(owner, store, {}):
            del getattr(owner, store)[leaf]
            return
    if hasattr(owner, leaf):
        delattr(owner, leaf)


# ------------------------------------------------------------------------------------------------
# LiteRT: ai-edge-quantizer on the EMBEDDING_LOOKUP ops of the int8 .tflite
# ------------------------------------------------------------------------------------------------
def _lookup_tables(path: Path) -> list[tuple[str, list[int], str]]:
    """(table tensor name, shape, output tensor name) of every EMBEDDING_LOOKUP with a float table."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    found = []
    for op in interp._get_ops_details():  # noqa: SLF001 (the public API lists tensors, not ops)
        if op["op_name"] != "EMBEDDING_LOOKUP" or len(op["inputs"]) < 2:
            continue
        table = tensors.get(int(op["inputs"][1]))
        output = tensors.get(int(op["outputs"][0])) if len(op["outputs"]) else None
        if table is not None and output is not None and np.dtype(table["dtype"]) == np.float32:
            found.append((table["name"], [int(x) for x in table["shape"]], output["name"]))
    return found


#: int8 LiteRT tables narrower than this get one scale per table instead of one per row. LiteRT stores a
#: float32 scale and an int64 zero point per row (12 bytes: 19% of a 64-wide int8 row, 75% of a 16-wide
#: one), and one scale lost nothing measurable: Banking77 hashed students (validation, one-off runs)
#: 2304x16 per row 36.8 dB / 85.6%, per table 36.7 dB / 86.1%, file 76 -> 49 KB; 15104x64 37.4 dB / 90.6%
#: vs 37.2 dB / 90.5%, 1.18 -> 0.99 MB. Wide tables (MiniLM's 384 columns: 3%) keep a scale per row.
PER_ROW_MIN_DIM = 128


def quantize_tflite_lookups(path: Path, scheme: str, out_path: Path) -> list[dict[str, Any]]:
    """Write ``out_path``: ``path`` with its float EMBEDDING_LOOKUP tables stored as int8 (per row, or one
    scale per table below ``PER_ROW_MIN_DIM`` columns) or int4 (per row), read by the lookup kernel itself
    (no DEQUANTIZE of the whole table)."""
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer import quantizer as aeq

    from edge_kd.export.litert import export_tflite

    tables = _lookup_tables(path)
    if scheme == "float" or not tables:
        if Path(out_path) != Path(path):
            export_tflite(str(path), None, out_path)
        return []
    bits = 8 if scheme == "int8" else 4
    q = aeq.Quantizer(str(path))

    def config(granularity: Any, num_bits: int) -> Any:
        # INTEGER compute without explicit dequantize: the lookup kernel reads the quantized table
        # (hybrid EMBEDDING_LOOKUP), so the float table never exists on the device.
        return qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=num_bits, symmetric=True,
                                                                  granularity=granularity),
            compute_precision=qtyping.ComputePrecision.INTEGER, explicit_dequantize=False)

    q.update_quantization_recipe(regex=".*", operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP,
                                 op_config=config(qtyping.QuantGranularity.CHANNELWISE, bits))
    records = []
    for name, shape, output in tables:
        per_table = len(shape) == 2 and (shape[1] == 1 or (bits == 8 and shape[1] < PER_ROW_MIN_DIM))
        if per_table:
            # LiteRT stores a float32 scale and an int64 zero point per row (12 bytes): on a narrow table
            # (a padding mask, or a small student's few columns) one scale for the whole table.
            # AEQ matches a recipe on the op's scope: its output tensor names, each followed by ";".
            q.update_quantization_recipe(regex=f"^{re.escape(output)};$", operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP,
                                         op_config=config(qtyping.QuantGranularity.TENSORWISE, 8))
        records.append({"table": name, "rows": shape[0], "dim": shape[-1],
                        "scheme": ("int8" if shape[-1] == 1 else "int8-per-table") if per_table else scheme,
                        "float_bytes": int(shape[0] * shape[-1] * 4)})
    from edge_kd.export._common import quiet_output

    with quiet_output():
        result = q.quantize()
    export_tflite(bytes(result.quantized_model), None, out_path)
    return records
