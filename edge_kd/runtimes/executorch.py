"""ExecuTorch runner (.pte) and .pte inspection: operators left to portable kernels vs delegated to
XNNPACK, and the constant tensors stored in the file."""
from __future__ import annotations

import hashlib
import re
import struct
from collections import Counter
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge_kd.runtimes._flatbuf import FbTable
from edge_kd.runtimes.base import Runner, check_magic, load_error, sort_tensors
from edge_kd.runtimes.ops import ET_DELEGATE_OP

# ExecuTorch ScalarType codes (exir/scalar_type.py) -> numpy.
_SCALAR_TYPES = {0: np.uint8, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64, 5: np.float16, 6: np.float32,
                 7: np.float64, 11: np.bool_}
_XNN_DTYPES = {1: "float32", 2: "float16", 3: "qint8", 4: "quint8", 5: "qint32", 6: "qcint8", 7: "qcint32",
               8: "qcint4", 9: "qdint8", 10: "qbint4", 11: "qpint8", 12: "int32", 13: "pfp32", 14: "bfloat16"}


class ExecuTorchRunner(Runner):
    runtime = "executorch"

    def __init__(self, path: Path, threads: int = 1):
        super().__init__(path, threads)
        check_magic(self.path, 4, b"ET", "ExecuTorch .pte")
        import torch

        # The quantized embedding kernels (embedding_byte/embedding_4bit, see edge_kd.quantize.embeddings)
        # live in this library; importing it registers them with the runtime, as an app links them.
        import executorch.kernels.quantized  # noqa: F401
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime, Verification

        self._torch = torch
        self.runtime_version = _version("executorch")
        # XNNPACK's threadpool is process-wide; size it to the profile's thread count (1 = one phone core).
        if hasattr(portable_lib, "_unsafe_reset_threadpool"):
            portable_lib._unsafe_reset_threadpool(threads)
        try:
            program = Runtime.get().load_program(self.path, verification=Verification.InternalConsistency)
            if "forward" not in program.method_names:
                raise ValueError(f"program has no 'forward' method (methods: {sorted(program.method_names)})")
            self._method = program.load_method("forward")
            meta = self._method.metadata
        except Exception as exc:  # the runtime's own error types differ per failure
            raise load_error(self.path, "ExecuTorch", exc) from None
        for i in range(meta.num_inputs()):
            info = meta.input_tensor_meta(i)
            dtype = _SCALAR_TYPES.get(info.dtype())
            if dtype is None:
                raise load_error(self.path, "ExecuTorch", ValueError(f"input {i} has unsupported dtype code {info.dtype()}"))
            self.input_specs.append((f"input_{i}", tuple(info.sizes()), np.dtype(dtype)))
        self.output_names = [f"output_{i}" for i in range(meta.num_outputs())]
        for i, name in enumerate(self.output_names):
            try:
                info = meta.output_tensor_meta(i)
            except Exception:  # a non-tensor output (a scalar, None) has no tensor metadata: not in the contract
                continue
            self.output_specs.append((name, tuple(info.sizes()), np.dtype(_SCALAR_TYPES.get(info.dtype(), np.float32))))

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self._method.execute([self._torch.from_numpy(a) for a in inputs])
        return [o.numpy() if hasattr(o, "numpy") else np.asarray(o) for o in outputs]

    def _operators(self):
        info = inspect_pte(self.path)
        return info["operators"], info["delegated"], info["not_delegated"], {"delegates": info["delegates"],
                                                                             "delegated_operators": info["delegated_operators"]}

    def tensors(self) -> list[dict[str, Any]]:
        return inspect_pte(self.path)["tensors"]


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def _xnn_node_names() -> tuple[str, ...]:
    """XNNPACK node kinds in union order, read from the installed schema (so new kinds are named)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("executorch")
        roots = list(spec.submodule_search_locations or []) if spec else []
        text = next(Path(r, "backends/xnnpack/serialization/schema.fbs") for r in roots
                    if Path(r, "backends/xnnpack/serialization/schema.fbs").is_file()).read_text()
        body = re.search(r"union\s+XNodeUnion\s*\{(.*?)\}", text, re.S).group(1)
        return tuple(re.sub(r"//.*", "", line).split(":")[0].strip().rstrip(",")
                     for line in body.splitlines() if re.sub(r"//.*", "", line).strip())
    except Exception:
        return ()


def _xnnpack_payload(blob: bytes) -> dict[str, Any]:
    """Node kinds and constant tensors of one XNNPACK delegate blob."""
    # Newer payloads start with an "XH00" header giving the flatbuffer's offset; older ones are bare.
    fb_offset = struct.unpack_from("<I", blob, 10)[0] if blob[4:6] == b"XH" else 0
    graph = FbTable.root(blob, fb_offset)
    names = _xnn_node_names()
    kinds: Counter[str] = Counter()
    for node in graph.tables(1):
        kind = int(node.scalar(0, "B"))
        kinds[names[kind - 1] if 0 < kind <= len(names) else f"XNNNode{kind}"] += 1
    constants = list(graph.tables(8))
    tensors = []
    for value in graph.tables(2):
        kind = int(value.scalar(0, "B"))
        table = value.table(1)
        if table is None:
            continue
        if kind == 2:  # quantized: the plain tensor value is nested
            table = table.table(0)
            if table is None:
                continue
        idx = int(table.scalar(3, "I"))
        if idx <= 0 or idx >= len(constants):
            continue
        const = constants[idx]
        key = const.string(2)
        tensors.append({"name": f"xnnpack:{key[:16]}" if key else f"xnnpack_constant_{idx}", "key": key,
                        "bytes": int(const.scalar(1, "Q")),
                        "dtype": _XNN_DTYPES.get(int(table.scalar(0, "h")), "unknown"),
                        "shape": table.scalars(2, "I")})
    return {"kinds": dict(kinds), "tensors": tensors}


@lru_cache(maxsize=8)
def _inspect_cached(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    from executorch.exir._serialize._program import deserialize_pte_binary

    data = Path(path).read_bytes()
    pte = deserialize_pte_binary(data)
    program = pte.program
    operators: Counter[str] = Counter()
    delegated_ops: Counter[str] = Counter()
    delegates: Counter[str] = Counter()
    tensors: list[dict[str, Any]] = []
    named_bytes: dict[str, int] = {}
    if pte.named_data is not None:
        for key, entry in pte.named_data.pte_data.items():
            buf = pte.named_data.buffers[entry.buffer_index]
            named_bytes[key] = len(getattr(buf, "buffer", buf))
    seen_named: set[str] = set()
    for plan in program.execution_plan:
        for chain in plan.chains:
            for ins in chain.instructions:
                args = ins.instr_args
                kind = type(args).__name__
                if kind == "KernelCall":
                    op = plan.operators[args.op_index]
                    name = op.name + (f".{op.overload}" if op.overload and op.overload != "default" else "")
                    operators[name] += 1
                elif kind == "DelegateCall":
                    delegate = plan.delegates[args.delegate_index]
                    operators[f"{ET_DELEGATE_OP}[{delegate.id}]"] += 1
                    delegates[delegate.id] += 1
        for delegate in plan.delegates:
            if delegate.id != "XnnpackBackend" or delegate.processed.location.name != "INLINE":
                continue
            blob = program.backend_delegate_data[delegate.processed.index].data
            payload = _xnnpack_payload(bytes(blob))
            delegated_ops.update(payload["kinds"])
            for t in payload["tensors"]:
                if t["key"] in named_bytes:
                    seen_named.add(t["key"])
                tensors.append(t)
        # Constants the portable kernels read (tensors outside any delegate), each buffer once.
        seen_buffers: set[int] = set()
        for value in plan.values:
            val = value.val
            idx = getattr(val, "data_buffer_idx", 0)
            if type(val).__name__ != "Tensor" or idx <= 0 or idx in seen_buffers:
                continue
            seen_buffers.add(idx)
            numel = int(np.prod(val.sizes)) if len(val.sizes) else 1
            dtype = np.dtype(_SCALAR_TYPES.get(int(val.scalar_type), np.uint8))
            nbytes = numel * dtype.itemsize
            key = ""
            if idx < len(program.constant_buffer):
                storage = bytes(program.constant_buffer[idx].storage)[:nbytes]
                key = hashlib.sha256(storage).hexdigest() if len(storage) == nbytes else ""
            tensors.append({"name": f"constant_buffer_{idx}", "key": key, "bytes": nbytes,
                            "dtype": dtype.name, "shape": list(val.sizes)})
    for key, n in named_bytes.items():
        if key not in seen_named:
            tensors.append({"name": f"named:{key[:16]}", "key": key, "bytes": n, "dtype": "unknown", "shape": []})
    not_delegated = sum(n for op, n in operators.items() if not op.startswith(ET_DELEGATE_OP))
    return {"operators": dict(operators), "delegated_operators": dict(delegated_ops),
            "delegated": sum(delegated_ops.values()) if delegated_ops else (sum(delegates.values()) or 0),
            "not_delegated": not_delegated, "delegates": dict(delegates), "tensors": sort_tensors(tensors)}


def inspect_pte(path: Path) -> dict[str, Any]:
    """Operators (portable kernel calls and delegate calls), XNNPACK node kinds and stored tensors."""
    path = Path(path)
    stat = path.stat()
    try:
        return _inspect_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except Exception as exc:
        raise load_error(path, "ExecuTorch", exc) from None
