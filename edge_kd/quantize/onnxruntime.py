"""ONNX Runtime static int8: QDQ with per-channel weights, ranges from edge_kd, then .ort.

Flow: the fp32 ``.onnx`` from edge_kd.export.onnx -> ``quant_pre_process`` (shape inference and
graph clean-up, as ORT recommends before quantizing) -> edge_kd streams every float activation over the
calibration samples into RangeStats (:func:`edge_kd.quantize.ranges.collect_onnx_ranges`) -> the ranges
of the chosen method go to ``quantize_static`` through ORT's calibration-cache file, so ORT's own
calibrator (which keeps all activations in memory for entropy/percentile) never runs -> QDQ model ->
``convert_to_ort``. Layers kept in float are passed as ``nodes_to_exclude``.
"""
from __future__ import annotations

import ast
import contextlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_kd.quantize.calibration import RangeStats
from edge_kd.quantize.ranges import collect_onnx_ranges, ort_ranges, sentinel_nodes, write_ort_range_cache
from edge_kd.quantize.sensitivity import is_transformer

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


@dataclass
class OrtCalibration:
    model_path: Path
    stats: dict[str, RangeStats]
    exclude_nodes: list[str] = field(default_factory=list)
    preprocessed: bool = True
    workdir: Any = None
    outputs: list[str] = field(default_factory=list)
    mask_nodes: list[str] = field(default_factory=list)
    #: Keep MatMul/Gemm outputs float (transformers): ORT then runs MatMulIntegerToFloat.
    float_matmul_outputs: bool = False


def _weighted_nodes(model: Any) -> list[tuple[Any, tuple[int, ...]]]:
    """(node, weight shape) of Conv/Gemm/MatMul nodes whose weight is a constant, in graph order."""
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and node.input[1] in inits:
            found.append((node, inits[node.input[1]]))
    return found


def weighted_scope(model: Any) -> set[str]:
    """Names of the nodes that carry a constant weight: Conv/Gemm/MatMul with a constant second input
    and Gathers from a constant table (embeddings)."""
    return {node.name for node, _shape in _weighted_nodes(model)} | set(_table_gathers(model))


def _table_gathers(model: Any) -> list[str]:
    """Names of the Gathers that read a constant table (embedding lookups), in graph order."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Gather" and n.input[0] in inits]


def gemm_as_matmul(model: Any) -> list[str]:
    """Rewrite ``Gemm(A, B, C)`` (alpha = beta = 1, no transA, constant B) as ``MatMul(A, B') + C`` in
    place, keeping the node's name and metadata; returns the names of the bias ``Add`` nodes.

    Why: ORT fuses a QDQ Gemm into ``com.microsoft::QGemm``, which the ORT Mobile package does not
    have. Quantizing the MatMul and keeping the bias add in float (the caller excludes the returned
    nodes) gives ``MatMulIntegerToFloat`` + ``Add``, both in the package, with the bias exact, as in
    a Gemm. The model computes the same function."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    attrs = lambda n: {a.name: helper.get_attribute_value(a) for a in n.attribute}  # noqa: E731
    new_nodes, bias_adds, rewritten = [], [], 0
    for node in model.graph.node:
        a = attrs(node) if node.op_type == "Gemm" else {}
        if node.op_type != "Gemm" or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 \
                or a.get("transA", 0) or node.input[1] not in inits:
            new_nodes.append(node)
            continue
        weight = inits[node.input[1]]
        if a.get("transB", 0):
            transposed = numpy_helper.from_array(numpy_helper.to_array(weight).T.copy(), weight.name + "_t")
            model.graph.initializer.append(transposed)
            b = transposed.name
        else:
            b = weight.name
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = node.output[0] + "_matmul" if has_bias else node.output[0]
        matmul = helper.make_node("MatMul", [node.input[0], b], [mm_out], name=node.name)
        matmul.metadata_props.extend(node.metadata_props)
        new_nodes.append(matmul)
        rewritten += 1
        if has_bias:
            add = helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=node.name + "_bias")
            add.metadata_props.extend(node.metadata_props)
            new_nodes.append(add)
            bias_adds.append(add.name)
    if rewritten:
        used = {i for n in new_nodes for i in n.input}
        keep = [i for i in model.graph.initializer if i.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
    return bias_adds


def gather_before_dequantize(model: Any) -> int:
    """``DequantizeLinear(W_q) -> Gather -> QuantizeLinear -> DequantizeLinear`` with the same scale and
    zero point on both sides becomes ``Gather(W_q) -> DequantizeLinear``: identical values (re-quantizing a
    dequantized int8 value with its own parameters gives it back), but only the looked-up rows are
    dequantized instead of the whole embedding table on every call. ORT drops these pairs itself only
    where int8 activations stay int8 (not on x86, where it moves them to uint8 first). Returns the count."""
    import onnx
    from onnx import helper

    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    graph_outputs = {o.name for o in model.graph.output}
    drop: set[int] = set()
    count = 0
    for gather in list(model.graph.node):
        if gather.op_type != "Gather":
            continue
        dq = producer.get(gather.input[0])
        axis = {a.name: helper.get_attribute_value(a) for a in gather.attribute}.get("axis", 0)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits or axis != 0:
            continue
        if any(a.name == "axis" for a in dq.attribute) or len(consumers.get(dq.output[0], [])) != 1:
            continue  # per-channel table or a shared dequantized table: leave it
        users = consumers.get(gather.output[0], [])
        if len(users) != 1 or users[0].op_type != "QuantizeLinear" or gather.output[0] in graph_outputs:
            continue
        q = users[0]
        if list(q.input[1:]) != list(dq.input[1:]):
            continue
        after = consumers.get(q.output[0], [])
        if not after or any(n.op_type != "DequantizeLinear" or list(n.input[1:]) != list(dq.input[1:]) for n in after):
            continue
        # Gather the int8 table, then let the existing DequantizeLinear nodes read the int8 rows.
        gather.input[0] = dq.input[0]
        for n in after:
            n.input[0] = gather.output[0]
        for info in model.graph.value_info:
            if info.name == gather.output[0]:  # the gathered rows are int8 now
                info.type.tensor_type.elem_type = onnx.TensorProto.INT8
        drop.update({id(dq), id(q)})
        count += 1
    if count:
        kept = [n for n in model.graph.node if id(n) not in drop]
        del model.graph.node[:]
        model.graph.node.extend(kept)
    return count


def gather_tables(model: Any) -> list[dict[str, Any]]:
    """One record per Gather of a constant table: its shape and whether it is stored as int8."""
    import onnx

    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    records = []
    for node in model.graph.node:
        if node.op_type != "Gather":
            continue
        table = inits.get(node.input[0])
        if table is None and node.input[0] in producer and producer[node.input[0]].op_type == "DequantizeLinear":
            table = inits.get(producer[node.input[0]].input[0])
        if table is None or len(table.dims) != 2:
            continue
        dtype = onnx.TensorProto.DataType.Name(table.data_type).lower()
        records.append({"table": table.name, "rows": int(table.dims[0]), "dim": int(table.dims[1]),
                        "scheme": "int8" if dtype == "int8" else "float" if dtype == "float" else dtype,
                        "float_bytes": int(table.dims[0] * table.dims[1] * 4)})
    return records


def nodes_in_modules(model: Any, modules: Sequence[str]) -> list[str]:
    """Names of the ONNX nodes exported from any of the torch ``modules`` (or their children), read from
    the exporter's ``pkg.torch.onnx.name_scopes`` metadata."""
    if not modules:
        return []
    found = []
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        if not scopes:
            continue
        with contextlib.suppress(ValueError, SyntaxError):
            names = ast.literal_eval(scopes)
            if any(str(scope) == m or str(scope).startswith(m + ".") for scope in names for m in modules):
                found.append(node.name)
    return found


def map_layers_to_nodes(model: Any, layers: Sequence[dict[str, Any]]) -> dict[str, str]:
    """torch layer name -> ONNX node name.

    First by the exporter's name scopes; layers whose scope was lost (a Conv folded with its BatchNorm
    is named after the BatchNorm) are matched in execution order by weight shape (a Linear's [out, in]
    weight is [in, out] under MatMul).
    """
    nodes = _weighted_nodes(model)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for node, _shape in nodes:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        if not scopes:
            continue
        with contextlib.suppress(ValueError, SyntaxError):
            names = ast.literal_eval(scopes)
            for layer in layers:
                if layer["layer"] in names and layer["layer"] not in mapping:
                    mapping[layer["layer"]] = node.name
                    used.add(node.name)
                    break
    pending = [l for l in sorted(layers, key=lambda l: l.get("order", 0)) if l["layer"] not in mapping]
    free = [(n, s) for n, s in nodes if n.name not in used]
    j = 0
    for layer in pending:
        shape = tuple(layer.get("weight_shape") or ())
        for k in range(j, len(free)):
            node, wshape = free[k]
            if wshape == shape or (len(shape) == 2 and wshape == shape[::-1]):
                mapping[layer["layer"]] = node.name
                j = k + 1
                break
    return mapping


class OrtBackend:
    """The interface every backend implements: export_fp32, calibrate, build, default_int8."""

    runtime = "onnxruntime"
    extension = "onnx"

    def __init__(self, settings: Any):
        self.settings = settings
        self._fp32_onnx: Path | None = None
        #: The constant-table Gathers of the last build and how their tables are stored.
        self.embedding_tables: list[dict[str, Any]] = []

    def export_fp32(self, model: Any, example_inputs: tuple, out_path: Path) -> list[Path]:
        from edge_kd.export.onnx import convert_to_ort, export_onnx

        onnx_path = export_onnx(model, example_inputs, out_path)
        self._fp32_onnx = onnx_path
        ort_path, config = convert_to_ort(onnx_path, out_path.parent)
        return [onnx_path, ort_path, config]

    def _ensure_fp32(self, model: Any, example_inputs: tuple, workdir: Path) -> Path:
        if self._fp32_onnx is None or not self._fp32_onnx.is_file():
            from edge_kd.export.onnx import export_onnx

            self._fp32_onnx = export_onnx(model, example_inputs, workdir / "fp32.onnx")
        return self._fp32_onnx

    def calibrate(self, model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                  exclude: Sequence[str] = (), layers: Sequence[dict[str, Any]] = ()) -> OrtCalibration:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        workdir = tempfile.TemporaryDirectory(prefix="edge_kd-ort-")
        fp32 = self._ensure_fp32(model, example_inputs, Path(workdir.name))
        pre = Path(workdir.name) / "pre.onnx"
        preprocessed = True
        try:
            with _quiet_ort():
                quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
        except Exception:  # pre-processing is an optimisation; quantizing the exported graph still works
            preprocessed = False
            pre.write_bytes(Path(fp32).read_bytes())
        proto = onnx.load(str(pre))
        had_gemm = any(n.op_type == "Gemm" for n in proto.graph.node)
        float_adds = gemm_as_matmul(proto)
        if had_gemm:
            onnx.save(proto, str(pre))
        nodes: list[str] = []
        if exclude:
            mapping = map_layers_to_nodes(onnx.load(str(pre)), layers)
            nodes = [mapping[name] for name in exclude if name in mapping]
            # Names that are not weighted layers (a model's float_modules): every node exported from them.
            nodes += [n for n in nodes_in_modules(onnx.load(str(pre)), [e for e in exclude if e not in mapping])
                      if n not in nodes]
        stats = collect_onnx_ranges(pre, samples)
        model_pre = onnx.load(str(pre))
        masked = sentinel_nodes(model_pre, stats)
        outputs = [o.name for o in model_pre.graph.output]
        nodes += [n for n in float_adds if n not in nodes]
        transformer = is_transformer(model)
        if transformer:
            # Weighted ops (and embedding tables) only, as on the PT2E targets: see is_transformer.
            scoped = weighted_scope(model_pre)
            nodes += [n.name for n in model_pre.graph.node if n.name not in scoped and n.name not in nodes]
        if getattr(self.settings, "embeddings", "int8") == "float":
            # quantize_static stores a Gather's constant table as int8: keep the tables float.
            nodes += [name for name in _table_gathers(model_pre) if name not in nodes]
        return OrtCalibration(pre, stats, nodes + [n for n in masked if n not in nodes], preprocessed, workdir,
                              outputs, masked, float_matmul_outputs=transformer)

    def build(self, calibrated: OrtCalibration, method: str, example_inputs: tuple, out_path: Path
              ) -> tuple[list[Path], list[dict[str, Any]]]:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from edge_kd.export.onnx import convert_to_ort
        from edge_kd.pipeline.atomic import atomic_path

        symmetric = self.settings.activations == "per-tensor-symmetric"
        ranges = ort_ranges(calibrated.stats, method, percentile=self.settings.percentile, symmetric=symmetric,
                            outputs=calibrated.outputs)
        with tempfile.TemporaryDirectory(prefix="edge_kd-ortq-") as tmp:
            cache = write_ort_range_cache(ranges, Path(tmp) / "ranges.json")
            with atomic_path(out_path) as tmp_out, _quiet_ort():
                quantize_static(str(calibrated.model_path), str(tmp_out), calibration_data_reader=None,
                                quant_format=QuantFormat.QDQ,
                                per_channel=self.settings.weights == "per-channel-symmetric",
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                nodes_to_exclude=list(calibrated.exclude_nodes),
                                calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache),
                                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                                               **_output_options(calibrated)})
                qdq = onnx.load(str(tmp_out))
                if gather_before_dequantize(qdq):
                    onnx.save(qdq, str(tmp_out))
                self.embedding_tables = gather_tables(qdq)
        ort_path, config = convert_to_ort(out_path, out_path.parent)
        report = [{"tensor": name, "method": method, "observed": [s.min, s.max],
                   "range": [round(ranges[name][0], 6), round(ranges[name][1], 6)]}
                  for name, s in calibrated.stats.items()]
        return [out_path, ort_path, config], report

    def default_int8(self, model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                     out_path: Path) -> list[Path]:
        """``quantize_static`` with its defaults (QDQ, per-tensor weights, MinMax calibration through its
        own calibrator) on the exported model, then .ort: what an ORT user gets from the docs."""
        from onnxruntime.quantization import CalibrationDataReader, quantize_static

        from edge_kd.export.onnx import convert_to_ort
        from edge_kd.pipeline.atomic import atomic_path

        with tempfile.TemporaryDirectory(prefix="edge_kd-ortd-") as tmp:
            fp32 = self._ensure_fp32(model, example_inputs, Path(tmp))
            import onnxruntime as ort

            names = [i.name for i in ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()]

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self._it = iter([dict(zip(names, s)) for s in samples])

                def get_next(self):
                    return next(self._it, None)

            with atomic_path(out_path) as tmp_out, _quiet_ort():
                quantize_static(str(fp32), str(tmp_out), Reader())
        ort_path, config = convert_to_ort(out_path, out_path.parent)
        return [out_path, ort_path, config]

    @staticmethod
    def weight_dtypes(path: Path) -> dict[str, Any]:
        """Initializer dtypes of the QDQ .onnx: weights must be stored as int8."""
        import onnx

        model = onnx.load(str(path))
        counts: dict[str, int] = {}
        for init in model.graph.initializer:
            if int(np.prod(init.dims or [1])) < 64:
                continue  # scales, zero points, shapes
            name = onnx.TensorProto.DataType.Name(init.data_type).lower()
            counts[name] = counts.get(name, 0) + 1
        return {"initializers_by_dtype": counts, "int8_tensors": counts.get("int8", 0),
                "float32_tensors": counts.get("float", 0), "bytes": Path(path).stat().st_size}


def _output_options(calibrated: OrtCalibration) -> dict[str, Any]:
    """A transformer's MatMul outputs stay float (ORT fuses DequantizeLinear + MatMul into
    MatMulIntegerToFloat). They feed the residual stream (MiniLM's outlier channels), and one int8 scale
    per output tensor lost the small channels: MiniLM/banking77 in benchmarks/int8.py, output SQNR
    14.9 -> 22.3 dB and a drop of 1.2 -> 0.5 pt on 1,000 test rows, same p50."""
    return {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]} if calibrated.float_matmul_outputs else {}


@contextlib.contextmanager
def _quiet_ort():
    """quantize_static logs a pre-processing hint at WARNING on every call; keep user output clean."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
