"""Stages with explicit contracts, and the runner that validates a pipeline before running it.

A stage declares which context keys it ``requires`` and which it ``provides``. ``validate_pipeline``
checks the whole chain before the first stage runs (a bad recipe fails in a second, not after an hour
of training). ``run_pipeline`` then, per stage: checks inputs, reuses a completed record with the same
cache key when the stage can reload its outputs, else runs it and checks its promised outputs.
Stages return new values; they never mutate their inputs.
"""
from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from edge_kd.errors import ConfigError, EdgeKDError
from edge_kd.pipeline.manifest import Build


@dataclass(frozen=True)
class Artifact:
    """A file a stage produced: its role in the bundle, its format, and what the stage knows about it."""

    path: Path
    format: str
    role: str = "model"
    meta: dict[str, Any] = field(default_factory=dict)


class Stage(abc.ABC):
    """One step of the pipeline. Subclasses set ``name``, ``requires``, ``provides`` and ``run``."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def run(self, ctx: dict[str, Any], build: Build, record: dict[str, Any]) -> dict[str, Any]:
        """Do the work; return a dict with every key of ``provides``. Fill ``record['details']``."""

    def cache_key(self, ctx: dict[str, Any]) -> str | None:
        """A content hash of everything the result depends on, or None when it cannot be reused."""
        return None

    def load_cached(self, ctx: dict[str, Any], build: Build, record: dict[str, Any]) -> dict[str, Any] | None:
        """Rebuild the outputs from a completed record's files; None when that is not possible."""
        return None

    def check_inputs(self, ctx: dict[str, Any]) -> None:
        missing = [k for k in self.requires if k not in ctx]
        if missing:
            raise EdgeKDError(f"stage {self.name!r} needs {', '.join(missing)}, which no earlier stage provided")

    def check_outputs(self, outputs: dict[str, Any]) -> None:
        missing = [k for k in self.provides if k not in outputs]
        if missing:
            raise EdgeKDError(f"stage {self.name!r} did not provide {', '.join(missing)} (a bug in the stage)")
        for key, value in outputs.items():
            for artifact in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(artifact, Artifact):
                    if not artifact.path.is_file() or artifact.path.stat().st_size == 0:
                        raise EdgeKDError(f"stage {self.name!r} promised {artifact.path} but it is missing or empty")


def validate_pipeline(stages: Sequence[Stage], initial: Sequence[str]) -> None:
    """Check that every stage's requirements are provided by the initial context or an earlier stage."""
    available = set(initial)
    seen: set[str] = set()
    for index, stage in enumerate(stages):
        if stage.name in seen:
            raise ConfigError(f"stage {stage.name!r} appears twice in the pipeline")
        seen.add(stage.name)
        missing = [k for k in stage.requires if k not in available]
        if missing:
            before = ", ".join(s.name for s in stages[:index]) or "nothing"
            raise ConfigError(f"stage {stage.name!r} needs {', '.join(missing)}, but it runs after {before}, "
                              "which do not provide it; reorder the stages or add the missing one")
        available.update(stage.provides)


def run_pipeline(stages: Sequence[Stage], build: Build, ctx: dict[str, Any], *, reuse: bool = True,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``stages`` in order over a copy of ``ctx``; returns the final context. ``log`` is told when a
    completed stage is reused."""
    validate_pipeline(stages, list(ctx))
    ctx = dict(ctx)
    for stage in stages:
        stage.check_inputs(ctx)
        key = stage.cache_key(ctx)
        previous = build.completed_stage(stage.name, key) if reuse else None
        if previous is not None:
            outputs = stage.load_cached(ctx, build, previous)
            if outputs is not None:
                stage.check_outputs(outputs)
                previous["status"] = "reused"
                build.save()
                ctx.update(outputs)
                if log is not None:
                    log(f"{stage.name}: reusing the completed stage in {build.root} (same inputs)")
                continue
        with build.stage(stage.name, cache_key=key) as record:
            outputs = stage.run(ctx, build, record)
            stage.check_outputs(outputs)
        ctx.update(outputs)
    return ctx


def content_hash(*parts: Any) -> str:
    """A stable sha256 over JSON-able parts and files (Path values are hashed by content)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with open(part, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]
