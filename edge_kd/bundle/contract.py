"""The I/O contract of an artifact: what an app must feed it and what it gets back, read from the
exported file itself (never from the recipe: converters change dtypes, e.g. LiteRT takes int32 ids
where the PyTorch student takes int64, and full-integer models take int8 with a scale/zero point).

A contract is plain JSON:

    {"format": "tflite", "runtime": "litert",
     "inputs":  [{"name": "args_0", "dtype": "int32", "shape": [1, 64]}],
     "outputs": [{"name": "output_0", "dtype": "int8", "shape": [1, 27],
                  "quantization": {"scale": 0.043, "zero_point": -12}}]}

``quantization`` appears on int8/uint8 tensors whose file stores it: the app quantizes a float input
as ``q = clamp(round(x / scale) + zero_point)`` and dequantizes an output as ``(q - zero_point) * scale``.

This module is pure Python (the gate compares contracts without any runtime); only
:func:`read_contract` opens the artifact in its runtime.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

#: Relative tolerance when comparing recorded scales (JSON round-trips floats exactly; this only
#: absorbs a float32 vs float64 rendering of the same scale).
_SCALE_RTOL = 1e-6


def read_contract(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The contract of ``path`` (.pte, .onnx/.ort, .tflite), read through its runtime's runner.

    >>> read_contract("build/artifact/model.int8.tflite")["inputs"][0]["dtype"]    # doctest: +SKIP
    'int32'
    """
    from edge_kd.runtimes import open_runner

    path = Path(path)
    runner = open_runner(path)
    return {"format": path.suffix.lstrip(".").lower(), "runtime": runner.runtime, **runner.io_contract()}


def _tensor_differences(declared: Any, actual: Any, where: str) -> list[str]:
    if not isinstance(declared, Mapping):
        return [f"{where}: declared {declared!r}, not a tensor description"]
    out = []
    for key in ("name", "dtype", "shape"):
        if declared.get(key) != actual.get(key):
            out.append(f"{where}.{key}: declared {declared.get(key)!r}, the artifact has {actual.get(key)!r}")
    dq, aq = declared.get("quantization"), actual.get("quantization")
    if (dq is None) != (aq is None):
        out.append(f"{where}.quantization: declared {dq!r}, the artifact has {aq!r}")
    elif dq is not None:
        if not isinstance(dq, Mapping):
            return out + [f"{where}.quantization: declared {dq!r}, not {{scale, zero_point}}"]
        scale, ascale = dq.get("scale"), aq.get("scale")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or \
                not math.isclose(float(scale), float(ascale), rel_tol=_SCALE_RTOL, abs_tol=0.0):
            out.append(f"{where}.quantization.scale: declared {scale!r}, the artifact has {ascale!r}")
        if dq.get("zero_point") != aq.get("zero_point"):
            out.append(f"{where}.quantization.zero_point: declared {dq.get('zero_point')!r}, "
                       f"the artifact has {aq.get('zero_point')!r}")
    return out


def contract_differences(declared: Any, actual: Mapping[str, Any], where: str = "contract") -> list[str]:
    """Every field where ``declared`` disagrees with ``actual`` (the artifact's), one line each naming
    the field, e.g. ``contract.inputs[0].dtype: declared 'int64', the artifact has 'int32'``.

    >>> contract_differences({"inputs": [], "outputs": []}, {"inputs": [], "outputs": []})
    []
    """
    if not isinstance(declared, Mapping):
        return [f"{where}: not declared" if declared is None else f"{where}: {declared!r} is not a contract"]
    out = []
    for key in ("format", "runtime"):
        if key in actual and declared.get(key) != actual.get(key):
            out.append(f"{where}.{key}: declared {declared.get(key)!r}, the artifact is {actual.get(key)!r}")
    for side in ("inputs", "outputs"):
        dec, act = declared.get(side), actual.get(side) or []
        if not isinstance(dec, list):
            out.append(f"{where}.{side}: not declared")
            continue
        if len(dec) != len(act):
            out.append(f"{where}.{side}: declares {len(dec)} tensor(s), the artifact has {len(act)}")
        for i, (d, a) in enumerate(zip(dec, act)):
            out.extend(_tensor_differences(d, a, f"{where}.{side}[{i}]"))
    return out


def describe_tensor(entry: Mapping[str, Any]) -> str:
    """``int32 [1, 64] args_0`` (+ `` q(scale, zp)``): one tensor of a contract for a console line."""
    q = entry.get("quantization")
    qs = f" q(scale={q['scale']:.6g}, zero_point={q['zero_point']})" if isinstance(q, Mapping) else ""
    return f"{entry.get('dtype')} {entry.get('shape')} {entry.get('name')}{qs}"
