"""Golden test vectors: real test-split inputs, the exact tensors the artifact takes, and what the
artifact returned for them in its runtime, so an app team can check its port of the preprocessing
and its runtime integration (Kotlin, Swift, JavaScript) against numbers, not prose.

``vectors/vectors.json`` (beside the bundle: test data for the app's test suite, not shipped in
the app, so not counted in the bundle bytes):

    {"format": "edge_kd.vectors", "version": 1,
     "artifact": {"path", "sha256", "runtime", "runtime_version"}, "preprocessing": "bundle/preprocess.json",
     "contract": {...}, "tolerance": {"atol": 0.002, "top1_margin": 0.004},
     "vectors": [{"id": 0, "row": 17, "label": "refund",
                  "raw": {"text": "..."} | {"row": {"col": value}} | {"pixels": "vectors/images/000.png",
                          "source": "test/apple/1.jpg", "source_sha256": "..."},
                  "inputs": [[...]] | [{"sha256": "..."}],     # flat, row-major, in the contract's dtypes
                  "outputs": [[...]], "raw_outputs": [[...]]?, "top1": 3, "margin": 1.7}]}

Image inputs are too large to list: ``pixels`` is the resized image as a lossless PNG (the app's
normalization of it must reproduce the input's sha256 bit for bit) and ``inputs`` holds the sha256
of the tensor's bytes (little-endian). ``outputs`` are float logits (dequantized with the contract's
scale/zero point when the output is int8; then ``raw_outputs`` holds the int8 values). ``atol`` is
the allowed absolute difference per logit; top-1 must match wherever ``margin`` (top-1 minus
runner-up logit) exceeds ``top1_margin``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_kd.errors import InputError
from edge_kd.pipeline.files import sha256_file

VECTORS_FORMAT = "edge_kd.vectors"
VECTORS_VERSION = 1
#: Relative part of the tolerance: other CPUs' kernels (ARM dot products, other accumulation orders)
#: move float logits by far less than this; int8 outputs may move by one quantization step.
RTOL = 1e-3


def tensor_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def _flat(array: np.ndarray) -> list[Any]:
    return np.asarray(array).reshape(-1).tolist()


def _top(logits: np.ndarray) -> tuple[int, float]:
    """(top-1, margin over the runner-up); a single logit is binary: class 1 when > 0."""
    v = np.asarray(logits, dtype=np.float64).reshape(-1)
    if v.size == 1:
        return int(v[0] > 0), float(abs(v[0]))
    order = np.argsort(-v, kind="stable")
    return int(order[0]), float(v[order[0]] - v[order[1]])


def run_exact(runner: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run on inputs already in the contract's dtypes; float outputs (int8 ones dequantized)."""
    return [np.asarray(o, dtype=np.float32) for o in runner.run(list(inputs))]


def make_vectors(runner: Any, contract: Mapping[str, Any], samples: Sequence[dict[str, Any]],
                 inputs: Sequence[Sequence[np.ndarray]], *, image_inputs: bool = False) -> dict[str, Any]:
    """Run every sample's ``inputs`` (contract dtypes) through ``runner`` and record the vectors.

    ``samples``: per vector ``{"row", "label", "raw"}`` (JSON-ready). Returns the ``vectors`` and the
    ``tolerance`` fields of vectors.json.
    """
    vectors = []
    max_abs = 0.0
    for i, (sample, arrays) in enumerate(zip(samples, inputs)):
        outputs = run_exact(runner, arrays)
        top1, margin = _top(outputs[0])
        max_abs = max(max_abs, *(float(np.abs(o).max()) for o in outputs if o.size))
        vec = {"id": i, **sample,
               "inputs": [{"sha256": tensor_sha256(a)} for a in arrays] if image_inputs else [_flat(a) for a in arrays],
               "outputs": [_flat(o) for o in outputs], "top1": top1, "margin": round(margin, 6)}
        raw = []
        for o, entry in zip(outputs, contract["outputs"]):
            q = entry.get("quantization")
            if q is not None:  # the runner dequantized (q - zp) * scale: recover q exactly
                raw.append([int(v) for v in (np.round(o / np.float32(q["scale"])) + q["zero_point"]).reshape(-1)])
        if raw:
            vec["raw_outputs"] = raw
        vectors.append(vec)
    steps = [float(e["quantization"]["scale"]) for e in contract["outputs"] if e.get("quantization")]
    atol = max(1e-5, RTOL * max_abs, *(1.01 * s for s in steps))
    return {"tolerance": {"atol": float(f"{atol:.3g}"), "top1_margin": float(f"{2 * atol:.3g}")}, "vectors": vectors}


# ---- replay --------------------------------------------------------------------------------------
@dataclass
class Replay:
    """What ``verify`` found: ``problems`` name the field and the vector; empty means it replays."""

    vectors: int = 0
    problems: list[str] = field(default_factory=list)
    max_abs_error: float = 0.0
    top1_agreement: float | None = None
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "vectors": self.vectors, "problems": self.problems,
                "max_abs_error": self.max_abs_error, "top1_agreement": self.top1_agreement, "checked": self.checked}


def load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the {what} is not a JSON object")
    return data


def replay(root: str | os.PathLike[str], vectors_doc: Mapping[str, Any], asset: Mapping[str, Any],
           artifact: Path, *, limit_problems: int = 20) -> Replay:
    """Replay vectors through ``artifact`` in its runtime: raw input -> inputs through the shipped
    ``asset`` (must equal the recorded inputs), inputs -> outputs (within tolerance, same top-1)."""
    from edge_kd.bundle.assets import IMAGE_FORMAT, raw_to_inputs
    from edge_kd.runtimes import open_runner

    root = Path(root)
    runner = open_runner(artifact)
    contract = asset["contract"]
    tol = vectors_doc.get("tolerance") or {}
    atol, margin_tol = float(tol.get("atol", 0.0)), float(tol.get("top1_margin", 0.0))
    image = asset.get("format") == IMAGE_FORMAT
    report = Replay()
    agree = judged = 0
    problems = report.problems
    raws = inputs_checked = 0
    for vec in vectors_doc.get("vectors") or []:
        vid = f"vector {vec.get('id')}"
        report.vectors += 1
        entries = contract["inputs"]
        recorded = vec.get("inputs") or []
        if len(recorded) != len(entries):
            problems.append(f"{vid}: inputs: {len(recorded)} recorded, the contract declares {len(entries)}")
            continue
        arrays = []
        if image:
            pixels = root / vec["raw"]["pixels"]
            if not pixels.is_file():
                problems.append(f"{vid}: raw.pixels: {vec['raw']['pixels']} is missing")
                continue
            if vec["raw"].get("pixels_sha256") and sha256_file(pixels) != vec["raw"]["pixels_sha256"]:
                problems.append(f"{vid}: raw.pixels: {vec['raw']['pixels']} changed after the build (sha256)")
        try:
            derived = raw_to_inputs(asset, vec["raw"], root) if "raw" in vec else None
        except InputError as exc:
            problems.append(f"{vid}: raw: {exc}")
            continue
        for k, (entry, rec) in enumerate(zip(entries, recorded)):
            name = f"{vid}: inputs[{k}] ({entry.get('name')})"
            if image:
                array = derived[k]
                if tensor_sha256(array) != rec.get("sha256"):
                    problems.append(f"{name}: the asset's normalization of raw.pixels does not reproduce the "
                                    "recorded input (sha256)")
            else:
                array = np.asarray(rec, dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])
                if derived is not None:
                    raws += 1
                    diff = np.flatnonzero(derived[k].reshape(-1) != array.reshape(-1))
                    if diff.size:
                        j = int(diff[0])
                        problems.append(f"{name}[{j}]: the shipped preprocessing gives {derived[k].reshape(-1)[j]} "
                                        f"for the raw input, the vector says {array.reshape(-1)[j]} "
                                        f"({diff.size} value(s) differ)")
            arrays.append(array)
            inputs_checked += 1
        if image:
            raws += 1
        outputs = run_exact(runner, arrays)
        expected = vec.get("outputs") or []
        for k, (out, exp) in enumerate(zip(outputs, expected)):
            exp = np.asarray(exp, dtype=np.float32)
            got = out.reshape(-1)
            if got.size != exp.size:
                problems.append(f"{vid}: outputs[{k}]: {got.size} values, the vector has {exp.size}")
                continue
            err = np.abs(got.astype(np.float64) - exp.astype(np.float64))
            report.max_abs_error = max(report.max_abs_error, float(err.max()) if err.size else 0.0)
            if err.size and err.max() > atol:
                j = int(err.argmax())
                problems.append(f"{vid}: outputs[{k}][{j}] = {got[j]:.6g}, expected {exp[j]:.6g} (atol {atol:g})")
        top1, _ = _top(outputs[0])
        if vec.get("margin", 0.0) > margin_tol:
            judged += 1
            if top1 == vec.get("top1"):
                agree += 1
            else:
                problems.append(f"{vid}: top1 = {top1}, expected {vec.get('top1')}")
    report.top1_agreement = agree / judged if judged else None
    report.checked = {"raw_inputs": raws, "inputs": inputs_checked}
    if len(problems) > limit_problems:
        report.problems = problems[:limit_problems] + [f"... and {len(problems) - limit_problems} more"]
    return report
