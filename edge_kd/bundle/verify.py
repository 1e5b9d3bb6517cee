"""``edge-kd verify``: check a bundle against its artifact, in the artifact's runtime.

1. the artifact is the file the build recorded (sha256);
2. the contract read from the artifact now equals the contract recorded at build time and the one
   the shipped preprocessing asset declares;
3. every vector replays: its raw input through the shipped asset gives the recorded tensors, and the
   artifact returns the recorded outputs within the tolerance, with the same top-1.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_kd.bundle import MANIFEST_KEY
from edge_kd.bundle.contract import contract_differences
from edge_kd.bundle.vectors import Replay, load_json, replay
from edge_kd.errors import InputError
from edge_kd.pipeline.files import sha256_file


@dataclass
class VerifyResult:
    bundle: str
    artifact: str
    runtime: str
    contract: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    replay: Replay | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and (self.replay is None or self.replay.ok)

    @property
    def all_problems(self) -> list[str]:
        return self.problems + (self.replay.problems if self.replay else [])

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "artifact": self.artifact, "runtime": self.runtime, "ok": self.ok,
                "problems": self.all_problems, "contract": self.contract,
                "replay": self.replay.to_dict() if self.replay else None}


def _not_a_bundle(path: Path, why: str) -> InputError:
    return InputError(f"{path}: not an edge_kd bundle ({why}); pass a build folder written by `edge-kd build`")


def locate(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """(build folder, manifest) of a bundle; InputError (exit 2) for anything that is not one."""
    from edge_kd.pipeline.manifest import MANIFEST_NAME, read_manifest

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    root = path if path.is_dir() else path.parent
    if not (root / MANIFEST_NAME).is_file():
        raise _not_a_bundle(path, f"no {MANIFEST_NAME}")
    manifest = read_manifest(root)
    record = manifest.get(MANIFEST_KEY)
    if not isinstance(record, dict) or not isinstance(record.get("artifact"), dict):
        raise _not_a_bundle(path, "its build.json records no bundle: built before contracts and vectors, or "
                                  "not by the build pipeline")
    return root, manifest


def verify_bundle(path: str | os.PathLike[str]) -> VerifyResult:
    """Verify the bundle in build folder ``path`` (see the module doc); InputError when it is not one.

    >>> result = verify_bundle("builds/demo/ort-mobile")          # doctest: +SKIP
    >>> result.ok, result.replay.vectors                          # doctest: +SKIP
    (True, 32)
    """
    from edge_kd.bundle.contract import read_contract

    root, manifest = locate(path)
    record = manifest[MANIFEST_KEY]
    try:
        artifact = root / record["artifact"]["path"]
        asset_rel = record["preprocessing"]["path"]
        vectors_rel = record["vectors"]["path"]
    except (KeyError, TypeError):
        raise _not_a_bundle(Path(path), "its bundle record lacks artifact, preprocessing or vectors") from None
    for rel in (record["artifact"]["path"], asset_rel, vectors_rel):
        if not (root / rel).is_file():
            raise _not_a_bundle(Path(path), f"{rel} is missing")
    problems: list[str] = []
    if sha256_file(artifact) != record["artifact"].get("sha256"):
        problems.append(f"artifact.sha256: {record['artifact']['path']} is not the file the build recorded "
                        "(changed after the build)")
    try:
        actual = read_contract(artifact)
    except InputError as exc:  # e.g. the artifact was overwritten with a broken file: a mismatch, not bad usage
        problems.append(f"artifact: {exc}")
        return VerifyResult(str(root), str(record["artifact"]["path"]), "?", {"inputs": [], "outputs": []}, problems)
    problems += contract_differences(record.get("contract"), actual, "build.json bundle.contract")
    asset = load_json(root / asset_rel, "preprocessing asset")
    problems += contract_differences(asset.get("contract"), actual, f"{asset_rel} contract")
    declared_input = asset.get("input")
    if isinstance(declared_input, dict) and actual["inputs"]:
        for key in ("name", "dtype", "shape"):
            if declared_input.get(key) != actual["inputs"][0].get(key):
                problems.append(f"{asset_rel} input.{key}: declared {declared_input.get(key)!r}, the artifact has "
                                f"{actual['inputs'][0].get(key)!r}")
    doc = load_json(root / vectors_rel, "vectors file")
    if sha256_file(root / vectors_rel) != record["vectors"].get("sha256"):
        problems.append(f"vectors.sha256: {vectors_rel} changed after the build")
    if doc.get("artifact", {}).get("sha256") != record["artifact"].get("sha256"):
        problems.append(f"{vectors_rel} artifact.sha256: the vectors were computed for another artifact")
    result = VerifyResult(str(root), str(record["artifact"]["path"]), actual["runtime"], actual, problems)
    result.replay = replay(root, doc, asset, artifact)
    return result
