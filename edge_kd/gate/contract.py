"""Gate check ``bundle.contract``: the shipped preprocessing asset declares its artifact's real I/O.

The build records the contract read from the artifact (``build.json`` ``bundle``, written by
:mod:`edge_kd.bundle.make`) with the artifact's sha256. Without opening any runtime, the gate checks
that the artifact is still that file, that the shipped asset declares that contract (and, for text,
that its ``input`` is the contract's first input), and that the vectors were computed for that
artifact. Builds made before contracts existed (no bundle stage, no record) get no such check;
a build whose bundle stage ran but whose record is gone fails.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from edge_kd.bundle import MANIFEST_KEY
from edge_kd.bundle.contract import contract_differences
from edge_kd.gate.result import Check
from edge_kd.pipeline.files import sha256_file

NAME = "bundle.contract"
TITLE = "I/O contract matches the artifact"


def _fail(problems: list[str]) -> Check:
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return Check(NAME, TITLE, False, len(problems), 0, "; ".join(problems[:3]) + more, "mismatches", comparator="==")


def _read_json(root: Path, rel: Any, what: str, problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(rel, str) or not rel:
        problems.append(f"bundle.{what}.path is not recorded")
        return None
    try:
        data = json.loads((root / rel).read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{rel}: file is missing")
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{rel}: not readable JSON ({exc})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{rel}: not a JSON object")
        return None
    return data


def check_contract(manifest: Mapping[str, Any], root: Path | None) -> Check | None:
    """The ``bundle.contract`` check, or None for a build that predates bundles (see the module doc)."""
    record = manifest.get(MANIFEST_KEY)
    stages = manifest.get("stages") if isinstance(manifest.get("stages"), list) else []
    staged = any(isinstance(s, dict) and s.get("name") == MANIFEST_KEY for s in stages)
    if record is None and not staged:
        return None
    if not isinstance(record, Mapping) or not isinstance(record.get("artifact"), Mapping) or \
            not isinstance(record.get("contract"), Mapping):
        return _fail(["the bundle stage ran but build.json records no bundle contract"])
    if root is None:
        return _fail(["cannot read the shipped asset without the build directory (pass a path or a Build)"])
    problems: list[str] = []
    contract = record["contract"]
    art_rel, art_sha = record["artifact"].get("path"), record["artifact"].get("sha256")
    models = [a for a in manifest.get("artifacts") or [] if isinstance(a, dict) and a.get("role") == "model"]
    entry = next((a for a in models if a.get("path") == art_rel), None)
    if entry is None:
        problems.append(f"bundle.artifact.path: {art_rel!r} is not the build's model artifact "
                        f"({', '.join(str(a.get('path')) for a in models) or 'none recorded'})")
    elif entry.get("sha256") != art_sha:
        problems.append(f"bundle.artifact.sha256: {art_rel} was replaced after its contract was recorded")
    path = root / art_rel if isinstance(art_rel, str) else None
    if path is not None and path.is_file() and sha256_file(path) != art_sha:
        problems.append(f"{art_rel}: sha256 differs from the one its contract was recorded for "
                        "(artifact changed after the build; its vectors no longer apply)")
    prep = record.get("preprocessing") if isinstance(record.get("preprocessing"), Mapping) else {}
    asset = _read_json(root, prep.get("path"), "preprocessing", problems)
    if asset is not None:
        rel = prep.get("path")
        problems += contract_differences(asset.get("contract"), contract, f"{rel} contract")
        declared = asset.get("input")
        inputs = contract.get("inputs") or []
        if isinstance(declared, Mapping) and inputs:
            for key in ("name", "dtype", "shape"):
                if declared.get(key) != inputs[0].get(key):
                    problems.append(f"{rel} input.{key}: declared {declared.get(key)!r}, the artifact has "
                                    f"{inputs[0].get(key)!r}")
        if not any(isinstance(a, dict) and a.get("role") == "preprocessing" and a.get("path") == rel
                   for a in manifest.get("artifacts") or []):
            problems.append(f"{rel}: not recorded as the bundle's preprocessing artifact")
    vec = record.get("vectors") if isinstance(record.get("vectors"), Mapping) else {}
    doc = _read_json(root, vec.get("path"), "vectors", problems)
    if doc is not None:
        if (doc.get("artifact") or {}).get("sha256") != art_sha:
            problems.append(f"{vec.get('path')} artifact.sha256: the vectors were computed for another artifact")
        problems += contract_differences(doc.get("contract"), contract, f"{vec.get('path')} contract")
    if problems:
        return _fail(problems)
    ins = ", ".join(f"{t.get('dtype')}{t.get('shape')}" for t in contract.get("inputs") or [])
    return Check(NAME, TITLE, True, 0, 0, f"declared = recorded from the artifact ({ins}); "
                 f"{vec.get('count', '?')} vectors for this artifact", "mismatches", comparator="==")
