"""The build directory and its versioned ``build.json`` manifest.

Every stage appends what it did (name, seconds, status, outputs) and every artifact is recorded with
bytes, gzip bytes and sha256, so the gate reads recorded numbers and never re-measures. The manifest is
rewritten atomically after each change: an interrupted build leaves the last consistent state.

Schema (version 1), documented for users in README.md ("build.json"):

    schema_version  int, 1
    edge_kd_version str
    created/updated ISO-8601 UTC
    target          the resolved profile (TargetProfile.to_dict(); reloads with TargetProfile.from_dict)
    recipe          the recipe as given (or null for single-stage commands)
    tool_versions   {package: version} of the toolchain that built it
    stages          [{name, status: ok|failed|interrupted|reused, seconds, started, cache_key, outputs, details}]
    artifacts       [{role, path (relative to the build dir), format, bytes, gzip_bytes, sha256, ...}]
    metrics         measured through the runtime: {task_metric: {name, value}, latency_ms: {p50, p90, p99, mean},
                    load_ms, peak_rss_mb, ops: {...}, ...}
    teacher         the same metrics for the fp32 teacher in the same runtime
    gate            {passed, checks: [{name, passed, value, limit, reason}]}
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from edge_kd.errors import InputError
from edge_kd.pipeline.atomic import atomic_write_json
from edge_kd.pipeline.files import file_facts

SCHEMA_VERSION = 1
#: Roles of the files one export or quantization writes: a new export/quantization replaces all of
#: them, so the bundle never counts an older model (another target or --name) twice.
MODEL_ROLES = ("model", "export", "model-source", "quantization-report", "required-operators", "fp32-reference")
MANIFEST_NAME = "build.json"
TOOL_PACKAGES = ("edge-kd", "torch", "executorch", "torchao", "onnx", "onnxruntime", "onnxscript",
                 "ai-edge-litert", "litert-torch", "ai-edge-quantizer", "torch-pruning", "numpy")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def tool_versions() -> dict[str, str]:
    """Versions of the toolchain, read from package metadata (imports nothing heavy)."""
    versions = {"python": platform.python_version(), "platform": f"{sys.platform}-{platform.machine()}"}
    for pkg in TOOL_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def new_manifest(target: dict[str, Any] | None = None, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "edge_kd_version": tool_versions().get("edge-kd", "unknown"),
        "created": _now(),
        "updated": _now(),
        "target": target,
        "recipe": recipe,
        "tool_versions": tool_versions(),
        "stages": [],
        "artifacts": [],
        "metrics": {},
        "teacher": {},
        "gate": None,
    }


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a build.json (or a build directory holding one). Raises InputError."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (expected a build directory or its build.json)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt JSON ({exc.msg} at line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError(f"{path}: not an edge_kd build manifest (no schema_version)")
    version = data["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        raise InputError(f"{path}: manifest schema_version {version!r} is not supported by this edge_kd "
                         f"(supports 1..{SCHEMA_VERSION}); upgrade edge_kd to read it")
    return data


def _holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds anything besides our own lock file."""
    from edge_kd.pipeline.lock import LOCK_NAME

    return any(p.name != LOCK_NAME for p in folder.iterdir())


class Build:
    """A build directory: artifacts plus ``build.json``.

    >>> build = Build.create(tmp_path / "b", target=profile.to_dict())      # doctest: +SKIP
    >>> with build.stage("export") as rec:                                  # doctest: +SKIP
    ...     build.add_artifact(path, role="model", format="pte")
    """

    def __init__(self, root: Path, manifest: dict[str, Any], *, persist: bool = True):
        self.root = Path(root)
        self.manifest = manifest
        #: False for a rank of a distributed run other than the main one: it follows the same stage code
        #: but writes nothing (one writer per build.json).
        self.persist = persist

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @classmethod
    def create(cls, root: str | os.PathLike[str], *, target: dict[str, Any] | None = None,
               recipe: dict[str, Any] | None = None, resume: bool = True) -> "Build":
        """Open ``root`` as a build directory, creating it when needed.

        A folder that holds files but no build.json belongs to someone else: refuse (exit 2) rather
        than mix our files into theirs. An existing build is reused (its stage records allow
        resuming) unless ``resume`` is False, in which case its records start afresh.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise InputError(f"{root}: exists and is not a directory")
        manifest_path = root / MANIFEST_NAME
        if root.is_dir() and _holds_files(root) and not manifest_path.exists():
            raise InputError(f"{root}: folder is not empty and holds no {MANIFEST_NAME}; refusing to write "
                             "into someone else's files (choose an empty or new --out)")
        if manifest_path.exists():
            manifest = read_manifest(manifest_path)
            if not resume:
                manifest = new_manifest(target, recipe)
            else:
                if target is not None:
                    manifest["target"] = target
                if recipe is not None:
                    manifest["recipe"] = recipe
                manifest["tool_versions"] = tool_versions()
        else:
            root.mkdir(parents=True, exist_ok=True)
            manifest = new_manifest(target, recipe)
        build = cls(root, manifest)
        build.save()
        return build

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "Build":
        path = Path(path)
        root = path if path.is_dir() else path.parent
        return cls(root, read_manifest(path))

    def save(self) -> None:
        if not self.persist:
            return
        self.manifest["updated"] = _now()
        atomic_write_json(self.manifest_path, self.manifest)

    # ---- stages -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str, *, cache_key: str | None = None) -> Iterator[dict[str, Any]]:
        """Time a stage and record it. The yielded dict's ``outputs``/``details`` are the stage's to fill.

        A stage that raises is recorded as failed (or interrupted on Ctrl-C) and the error propagates.
        """
        record: dict[str, Any] = {"name": name, "status": "running", "started": _now(), "seconds": None,
                                  "cache_key": cache_key, "outputs": {}, "details": {}}
        # A re-run replaces the earlier record of the same stage.
        self.manifest["stages"] = [s for s in self.manifest["stages"] if s.get("name") != name]
        self.manifest["stages"].append(record)
        start = time.perf_counter()
        try:
            yield record
        except KeyboardInterrupt:
            record["status"] = "interrupted"
            raise
        except BaseException as exc:
            record["status"] = "failed"
            record["error"] = f"{type(exc).__name__}: {exc}"
            raise
        else:
            if record["status"] == "running":
                record["status"] = "ok"
        finally:
            record["seconds"] = round(time.perf_counter() - start, 3)
            self.save()

    def completed_stage(self, name: str, cache_key: str | None) -> dict[str, Any] | None:
        """The record of ``name`` if it completed with the same cache key (for reuse on resume)."""
        for record in self.manifest["stages"]:
            if record.get("name") == name and record.get("status") in ("ok", "reused") \
                    and cache_key is not None and record.get("cache_key") == cache_key:
                return record
        return None

    # ---- artifacts and metrics ------------------------------------------------------------------
    def add_artifact(self, path: str | os.PathLike[str], *, role: str, format: str, **extra: Any) -> dict[str, Any]:
        """Record a file of the build (the model or a preprocessing asset of the bundle)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: artifact does not exist")
        if not self.inside(path):  # the gate refuses artifacts outside the build folder: never record one
            raise InputError(f"{path}: an artifact must be inside the build folder {self.root}")
        rel = self.relative(path)
        entry = {"role": role, "path": rel, "format": format, **file_facts(path), **extra}
        self.manifest["artifacts"] = [a for a in self.manifest["artifacts"] if a.get("path") != rel]
        self.manifest["artifacts"].append(entry)
        self.save()
        return entry

    def relative(self, path: str | os.PathLike[str]) -> str:
        """How build.json names ``path``: relative to the build folder, absolute when outside it."""
        try:
            return str(Path(path).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(Path(path).resolve())

    def inside(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` lies inside the build folder."""
        try:
            Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True

    def drop_artifacts(self, *, roles: tuple[str, ...]) -> list[dict[str, Any]]:
        """Forget the recorded artifacts of ``roles`` (a stage about to record new ones); returns them."""
        dropped = [a for a in self.manifest["artifacts"] if a.get("role") in roles]
        self.manifest["artifacts"] = [a for a in self.manifest["artifacts"] if a.get("role") not in roles]
        return dropped

    def artifact_path(self, entry: dict[str, Any]) -> Path:
        p = Path(entry["path"])
        return p if p.is_absolute() else self.root / p

    def update_metrics(self, section: str = "metrics", **values: Any) -> None:
        self.manifest.setdefault(section, {}).update(values)
        self.save()
