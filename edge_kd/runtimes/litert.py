"""LiteRT (TFLite) runner (.tflite) and inspection of the flatbuffer: builtin/custom ops, tensor buffers."""
from __future__ import annotations

import re
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge_kd.runtimes.base import Runner, check_magic, load_error, sort_tensors


def _args_index(name: str) -> tuple[int, str]:
    """litert_torch names signature inputs args_0, args_1, ...: order them numerically."""
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else 1 << 30, name)


class LiteRTRunner(Runner):
    runtime = "litert"

    def __init__(self, path: Path, threads: int = 1):
        super().__init__(path, threads)
        check_magic(self.path, 4, b"TFL3", "LiteRT .tflite")
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.runtime_version = metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:
            self.runtime_version = "unknown"
        try:
            # Default delegates stay on: the app's LiteRT applies XNNPACK to the CPU graph too.
            self._interp = Interpreter(model_path=str(self.path), num_threads=threads)
            self._interp.allocate_tensors()
        except Exception as exc:
            raise load_error(self.path, "LiteRT", exc) from None
        details = self._interp.get_input_details()
        out_details = self._interp.get_output_details()
        signatures = self._interp.get_signature_list()
        if len(signatures) == 1:
            # Map the signature's argument order (the torch forward order) to tensor indices.
            key = next(iter(signatures))
            runner = self._interp.get_signature_runner(key)
            ins = runner.get_input_details()
            outs = runner.get_output_details()
            names_in = sorted(ins, key=_args_index)
            names_out = sorted(outs, key=_args_index)
            by_index = {d["index"]: d for d in details}
            by_index_out = {d["index"]: d for d in out_details}
            details = [by_index.get(ins[n]["index"], ins[n]) for n in names_in]
            out_details = [by_index_out.get(outs[n]["index"], outs[n]) for n in names_out]
            names = names_in
            self.output_names = names_out
        else:
            names = [d["name"] for d in details]
            self.output_names = [d["name"] for d in out_details]
        for name, d in zip(names, details):
            self.input_specs.append((name, tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"])))
        self._in_index = [d["index"] for d in details]
        self._out_index = [d["index"] for d in out_details]
        # Full-integer models take and return int8 tensors with a scale/zero point; callers (bench,
        # accuracy, parity) hand over floats, as the app's pre/post-processing would before quantizing.
        self._in_quant = {name: _quant_params(d) for name, d in zip(names, details)}
        self._out_quant = [_quant_params(d) for d in out_details]
        for name, d, q in zip(self.output_names, out_details, self._out_quant):
            self.output_specs.append((name, tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"])))
            if q is not None:
                self.io_quantization[name] = q
        self.io_quantization.update({n: q for n, q in self._in_quant.items() if q is not None})

    def _cast(self, name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
        q = self._in_quant.get(name)
        if q is not None and array.dtype.kind == "f" and dtype.kind in "iu":
            scale, zero_point = q
            info = np.iinfo(dtype)
            return np.clip(np.round(array / scale) + zero_point, info.min, info.max).astype(dtype)
        return super()._cast(name, array, dtype)

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        for index, array in zip(self._in_index, inputs):
            interp.set_tensor(index, array)
        interp.invoke()
        outputs = []
        for index, q in zip(self._out_index, self._out_quant):
            y = interp.get_tensor(index)
            if q is not None and y.dtype.kind in "iu":
                y = (y.astype(np.float32) - q[1]) * q[0]
            outputs.append(y)
        return outputs

    def _operators(self):
        info = inspect_tflite(self.path)
        delegated, total = _delegated_nodes(self._interp._get_ops_details())
        return info["operators"], delegated, total - delegated, {}

    def tensors(self) -> list[dict[str, Any]]:
        return inspect_tflite(self.path)["tensors"]


def _quant_params(detail: dict[str, Any]) -> tuple[float, int] | None:
    """(scale, zero_point) of a quantized int8/uint8 tensor, else None."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if not scale or np.dtype(detail["dtype"]).kind not in "iu" or np.dtype(detail["dtype"]).itemsize != 1:
        return None
    return float(scale), int(zero_point)


def _delegated_nodes(details: list[dict[str, Any]]) -> tuple[int, int]:
    """(ops taken by a delegate, all original ops) of the primary subgraph.

    The interpreter lists the original ops followed by one DELEGATE node per delegated partition; a
    partition is the set of ops reached walking back from the DELEGATE node's outputs to its inputs.
    """
    producer: dict[int, int] = {}
    original = [d for d in details if d["op_name"] != "DELEGATE"]
    for d in original:
        for t in d["outputs"]:
            producer[int(t)] = d["index"]
    by_index = {d["index"]: d for d in original}
    taken: set[int] = set()
    for d in details:
        if d["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        while stack:
            tensor = stack.pop()
            op = producer.get(tensor)
            if op is None or op in taken or tensor in boundary:
                continue
            taken.add(op)
            stack.extend(int(t) for t in by_index[op]["inputs"] if int(t) not in boundary)
    return len(taken), len(original)


def inspect_tflite(path: Path) -> dict[str, Any]:
    """Operator names (``CUSTOM:<code>`` for custom and Flex ops) and constant tensor buffers."""
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    data = check_magic(path, 4, b"TFL3", "LiteRT .tflite")
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    counts: Counter[str] = Counter()
    tensors: list[dict[str, Any]] = []
    try:
        model = schema.Model.GetRootAs(data, 0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            name = op_names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                custom = code.CustomCode()
                name = f"CUSTOM:{custom.decode() if custom else '?'}"
            codes.append(name)
        for s in range(model.SubgraphsLength()):
            sub = model.Subgraphs(s)
            for j in range(sub.OperatorsLength()):
                counts[codes[sub.Operators(j).OpcodeIndex()]] += 1
            for t in range(sub.TensorsLength()):
                tensor = sub.Tensors(t)
                buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() < model.BuffersLength() else None
                if buffer is None:
                    continue
                size = int(buffer.Size()) if buffer.Offset() > 1 else int(buffer.DataLength())
                if size <= 0:
                    continue
                name = (tensor.Name() or b"").decode(errors="replace")
                if len(name) > 160:  # fused-op names repeat the module path of every fused op
                    name = name[:80] + "..." + name[-77:]
                tensors.append({"name": name, "bytes": size,
                                "dtype": type_names.get(tensor.Type(), str(tensor.Type())),
                                "shape": [int(x) for x in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []})
    except Exception as exc:
        raise load_error(path, "LiteRT", exc) from None
    return {"operators": dict(counts), "tensors": sort_tensors(tensors)}
