"""The bundle an app ships, whether its files are still the ones the build measured, and where its
bytes go.

The bundle is every artifact with role ``model`` (what the runtime loads) plus role
``preprocessing`` (vocabulary, hashing parameters, label names): both ship inside the app, so both
count against the size budgets. Other roles (``export``: intermediate .onnx, ``report``) stay on the
build machine and do not count. ``edge_kd.pipeline.records`` defines the roles and reads the figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edge_kd.pipeline.files import sha256_file
from edge_kd.pipeline.records import bundle_artifacts, recorded_int

#: How many single tensors "where the bytes go" lists before summing the rest.
TOP_TENSORS = 10

_HEX = frozenset("0123456789abcdef")


def short_name(name: str, limit: int = 48) -> str:
    """A tensor name short enough for a table or chart label.

    ExecuTorch's XNNPACK payload names constants by their sha256: show the first 12 hex digits.
    Long dotted names keep their end (the layer and parameter), which tells them apart.

    >>> short_name("7d698131b0758e89bbfa7028889cdc8d7c49df9b5a55555fcbf1e8a799f75400")
    '7d698131b075…'
    """
    if len(name) >= 32 and set(name.lower()) <= _HEX:
        return name[:12] + "…"
    if len(name) > limit:
        return "…" + name[-(limit - 1):]
    return name


def verify_artifact(root: Path, entry: Mapping[str, Any]) -> str | None:
    """None when the file on disk is the one recorded (same size and sha256), else why not."""
    rel = entry.get("path")
    if not isinstance(rel, str) or not rel:
        return "an artifact record has no path"
    from edge_kd.pipeline.paths import inside

    if not inside(root, rel):  # a manifest edited to point at another file must not pass as this build's
        return f"{rel}: outside the build folder"
    path = root / rel
    sha = entry.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        return f"{rel}: no sha256 recorded"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{rel}: file is missing"
    except OSError as exc:
        return f"{rel}: cannot read ({exc.strerror})"
    if not path.is_file():
        return f"{rel}: not a regular file"
    recorded = recorded_int(entry, "bytes")
    # A size mismatch already proves an edit; skip hashing then.
    if recorded is not None and recorded != size:
        return f"{rel}: {size} bytes on disk but {recorded} recorded (edited after the build)"
    try:
        actual = sha256_file(path)
    except OSError as exc:
        return f"{rel}: cannot read ({exc.strerror})"
    if actual != sha.lower():
        return f"{rel}: sha256 does not match the manifest (edited after the build)"
    return None


def _tensor_rows(art: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    tensors = art.get("tensors")
    if not isinstance(tensors, list):
        return None
    rows = []
    for t in tensors:
        if not isinstance(t, dict):
            continue
        b = recorded_int(t, "bytes")
        if b is None:
            continue
        shape = t.get("shape")
        rows.append({"kind": "tensor", "name": str(t.get("name", "?")), "bytes": b,
                     "dtype": str(t.get("dtype", "")) or None,
                     "shape": list(shape) if isinstance(shape, (list, tuple)) else None,
                     "artifact": art.get("path")})
    return rows


def bytes_breakdown(manifest: Mapping[str, Any], top: int = TOP_TENSORS) -> dict[str, Any]:
    """Where the bundle's bytes go, largest first: the ``top`` largest tensors of the model
    artifact(s), the remaining tensors summed in one row, each model file's non-tensor bytes (graph,
    metadata, alignment) and each preprocessing file.

    >>> bytes_breakdown(manifest)["items"][0]                       # doctest: +SKIP
    {'kind': 'tensor', 'name': 'fc.weight', 'bytes': 262144, 'share': 0.61, 'dtype': 'int8', ...}
    """
    arts = bundle_artifacts(manifest)
    total = sum(recorded_int(a, "bytes") or 0 for a in arts)
    tensors: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    recorded_any = False
    for art in arts:
        size = recorded_int(art, "bytes") or 0
        rows = _tensor_rows(art) if art.get("role") == "model" else None
        if rows:
            recorded_any = True
            tensors.extend(rows)
            overhead = size - sum(r["bytes"] for r in rows)
            if overhead > 0:
                extra.append({"kind": "overhead", "name": f"{art.get('path')}: graph & metadata",
                              "bytes": overhead, "artifact": art.get("path")})
        else:
            extra.append({"kind": "file", "name": f"{art.get('path')} ({art.get('role')})", "bytes": size,
                          "artifact": art.get("path")})
    tensors.sort(key=lambda r: (-r["bytes"], r["name"]))
    items = tensors[:top]
    rest = tensors[top:]
    if rest:
        items.append({"kind": "rest", "name": f"{len(rest)} smaller tensors", "bytes": sum(r["bytes"] for r in rest),
                      "count": len(rest)})
    items.extend(sorted(extra, key=lambda r: -r["bytes"]))
    for row in items:
        row["share"] = round(row["bytes"] / total, 4) if total else 0.0
    return {"total_bytes": total, "tensors_recorded": recorded_any, "tensor_count": len(tensors),
            "items": items}
