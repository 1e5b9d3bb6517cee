"""ONNX Runtime runner (.onnx and the mobile .ort format) and inspection of both formats."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edge_kd.errors import InputError
from edge_kd.runtimes.base import Runner, check_magic, load_error, sort_tensors
from edge_kd.runtimes.ops import ort_op_key

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}
# onnx.TensorProto.DataType -> numpy (also the ORT flatbuffer TensorDataType, which uses the same codes).
_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
                9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


class OrtRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1):
        super().__init__(path, threads)
        self.format = "ort" if self.path.suffix == ".ort" else "onnx"
        if self.format == "ort":
            check_magic(self.path, 4, b"ORTM", "ONNX Runtime .ort")
        elif not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        import onnxruntime as ort

        self.runtime_version = ort.__version__
        so = ort.SessionOptions()
        # One phone core: no intra-op pool threads beyond the profile's, no inter-op parallelism.
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if self.format == "ort":
            so.add_session_config_entry("session.load_model_format", "ORT")
        try:
            # NCHWc is an x86-only layout rewrite that ORT Mobile on ARM never applies: keep it off so the
            # .onnx and the .ort run the same graph, as on the phone.
            self._session = ort.InferenceSession(str(self.path), sess_options=so, providers=["CPUExecutionProvider"],
                                                 disabled_optimizers=["NchwcTransformer"])
        except Exception as exc:
            raise load_error(self.path, "ONNX Runtime", exc) from None
        for arg in self._session.get_inputs():
            dtype = _ORT_TYPES.get(arg.type)
            shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
            if dtype is None or any(d < 0 for d in shape):
                raise InputError(f"{self.path}: input {arg.name!r} has type {arg.type} shape {arg.shape}; "
                                 "edge_kd runs fixed-shape models (export with a fixed example input)")
            self.input_specs.append((arg.name, shape, np.dtype(dtype)))
        self._input_names = [n for n, _, _ in self.input_specs]
        self.output_names = [o.name for o in self._session.get_outputs()]
        for arg in self._session.get_outputs():
            shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
            self.output_specs.append((arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32))))

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(zip(self._input_names, inputs)))

    def _operators(self):
        counts = inspect_ort(self.path)["operators"] if self.format == "ort" else inspect_onnx(self.path)["operators"]
        return counts, None, None, {}

    def tensors(self) -> list[dict[str, Any]]:
        return inspect_ort(self.path)["tensors"] if self.format == "ort" else inspect_onnx(self.path)["tensors"]


def inspect_onnx(path: Path) -> dict[str, Any]:
    """Operator types (counted, subgraphs included) and initializers of an .onnx file."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise load_error(Path(path), "onnx", exc) from None
    counts: Counter[str] = Counter()
    tensors: list[dict[str, Any]] = []

    def walk(graph) -> None:
        for init in graph.initializer:
            dtype = np.dtype(_ONNX_DTYPES.get(init.data_type, np.uint8))
            numel = int(np.prod(init.dims)) if len(init.dims) else 1
            tensors.append({"name": init.name, "bytes": numel * dtype.itemsize, "dtype": dtype.name,
                            "shape": list(init.dims)})
        for node in graph.node:
            counts[ort_op_key(node.domain, node.op_type)] += 1
            if node.op_type == "Constant":
                continue
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    return {"operators": dict(counts), "tensors": sort_tensors(tensors)}


def inspect_ort(path: Path) -> dict[str, Any]:
    """Operator types and initializers of an ORT-format model (read from its flatbuffer)."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.InferenceSession import InferenceSession

    path = Path(path)
    data = check_magic(path, 4, b"ORTM", "ONNX Runtime .ort")
    counts: Counter[str] = Counter()
    tensors: list[dict[str, Any]] = []
    try:
        graph = InferenceSession.GetRootAs(data, 0).Model().Graph()
        for i in range(graph.NodesLength()):
            node = graph.Nodes(i)
            counts[ort_op_key(node.Domain().decode(), node.OpType().decode())] += 1
        for i in range(graph.InitializersLength()):
            init = graph.Initializers(i)
            dims = [int(init.Dims(j)) for j in range(init.DimsLength())]
            dtype = np.dtype(_ONNX_DTYPES.get(init.DataType(), np.uint8))
            numel = int(np.prod(dims)) if dims else 1
            tensors.append({"name": init.Name().decode(), "bytes": numel * dtype.itemsize, "dtype": dtype.name,
                            "shape": dims})
    except Exception as exc:
        raise load_error(path, "ONNX Runtime", exc) from None
    return {"operators": dict(counts), "tensors": sort_tensors(tensors)}
