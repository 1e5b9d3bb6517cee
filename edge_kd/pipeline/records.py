"""Typed access to ``build.json``: the one module that knows where each recorded figure lives.

The gate, the report and the build summary read a manifest through these accessors (never by
hand-written key paths), so a renamed field breaks here and in a test, not silently in a reader. No
heavy imports: ``edge-kd gate`` uses it.

    total, files = bundle_total(manifest, "gzip_bytes")     # MissingFigure when it cannot be trusted
    name, value = task_metric(manifest, "teacher")
    p90 = number(manifest, "metrics", "latency_ms", "p90")
    budgets = recorded_budgets(manifest)                     # edge_kd.targets.Budgets or None
"""
from __future__ import annotations

import math
from typing import Any, Mapping

#: Roles of the artifacts an app ships: what the runtime loads, and its preprocessing assets
#: (vocabulary, hashing parameters, label names). Both count against the size budgets.
ROLE_MODEL = "model"
ROLE_PREPROCESSING = "preprocessing"
BUNDLE_ROLES = (ROLE_MODEL, ROLE_PREPROCESSING)
#: Sections holding figures measured through the runtime: the student's and the fp32 teacher's.
STUDENT, TEACHER = "metrics", "teacher"


class MissingFigure(Exception):
    """A figure is absent or unusable; the message says which and why."""


def artifacts(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The manifest's artifact records that are dicts (anything else is reported by the gate's checks)."""
    arts = manifest.get("artifacts")
    if not isinstance(arts, list):
        return []
    return [a for a in arts if isinstance(a, dict)]


def bundle_artifacts(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The artifacts the app ships (roles ``model`` and ``preprocessing``)."""
    return [a for a in artifacts(manifest) if a.get("role") in BUNDLE_ROLES]


def recorded_int(entry: Mapping[str, Any], key: str) -> int | None:
    """A non-negative integer field of a record, or None when absent or not a proper count."""
    v = entry.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        return None
    return int(v) if v >= 0 else None


def bundle_total(manifest: Mapping[str, Any], key: str = "bytes") -> tuple[int, int]:
    """(sum of ``key`` -- ``bytes`` or ``gzip_bytes`` -- over the bundle, number of files).

    Raises MissingFigure when nothing ships or a file's figure is not recorded (a partial sum would
    pass a budget it should fail)."""
    arts = bundle_artifacts(manifest)
    if not any(a.get("role") == ROLE_MODEL for a in arts):
        raise MissingFigure("no artifact with role 'model' is recorded: nothing to ship")
    total = 0
    for a in arts:
        n = recorded_int(a, key)
        if n is None:
            raise MissingFigure(f"artifact {a.get('path')!r} has no recorded {key}")
        total += n
    return total, len(arts)


def number(manifest: Mapping[str, Any], *path: str, positive: bool = False) -> float:
    """The finite number at ``path`` (e.g. ``"metrics", "latency_ms", "p90"``); MissingFigure otherwise."""
    node: Any = manifest
    where = ".".join(path)
    for key in path:
        if not isinstance(node, Mapping) or key not in node or node[key] is None:
            raise MissingFigure(f"{where} is not recorded")
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise MissingFigure(f"{where} is not a number ({node!r})")
    value = float(node)
    if not math.isfinite(value):
        raise MissingFigure(f"{where} is not finite ({node!r})")
    if positive and value <= 0:
        raise MissingFigure(f"{where} must be positive, got {node!r}")
    return value


def task_metric(manifest: Mapping[str, Any], section: str = STUDENT) -> tuple[str, float]:
    """(name, value) of the task metric measured through the runtime, for ``metrics`` or ``teacher``."""
    value = number(manifest, section, "task_metric", "value")
    name = manifest[section]["task_metric"].get("name")
    if not isinstance(name, str) or not name:
        raise MissingFigure(f"{section}.task_metric.name is not recorded")
    return name, value


def optional(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args)``, or None when the figure is missing (for summaries that show a dash)."""
    try:
        return fn(*args, **kwargs)
    except MissingFigure:
        return None


def recorded_budgets(manifest: Mapping[str, Any]) -> Any:
    """The budgets of the recorded target profile (``edge_kd.targets.Budgets``), None when absent or invalid."""
    from edge_kd.errors import EdgeKDError
    from edge_kd.targets import TargetProfile

    target = manifest.get("target")
    if not isinstance(target, Mapping):
        return None
    try:
        return TargetProfile.from_dict(dict(target), source="build.json: target").budgets
    except EdgeKDError:
        return None


def stage_record(manifest: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The record of stage ``name`` (None when it never ran)."""
    for record in manifest.get("stages") or []:
        if isinstance(record, dict) and record.get("name") == name:
            return record
    return None


def failed_checks(manifest: Mapping[str, Any]) -> list[str]:
    """Names of the gate checks that failed, as recorded by the gate stage."""
    gate = manifest.get("gate") or {}
    return [c["name"] for c in gate.get("checks", []) if isinstance(c, dict) and not c.get("passed")]


# ---- the distill stage's details (fixed keys; the metric's name is a value, not part of a key) ----------
def distill_figures(details: Mapping[str, Any]) -> dict[str, Any]:
    """``{metric, test_pytorch, best_val, teacher_test}`` from the distill stage's details.

    >>> distill_figures({"metric": "accuracy", "test_metric_pytorch": 0.9, "teacher": {"test_metric": 0.95}})
    {'metric': 'accuracy', 'test_pytorch': 0.9, 'best_val': None, 'teacher_test': 0.95}
    """
    teacher = details.get("teacher") or {}
    return {"metric": details.get("metric"), "test_pytorch": details.get("test_metric_pytorch"),
            "best_val": details.get("best_val_metric"), "teacher_test": teacher.get("test_metric")}


def metric_fields(metric: str, *, test_pytorch: float | None = None, best_val: float | None = None,
                  teacher_test: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stage fields, teacher fields) the distill stage records: fixed keys read by
    :func:`distill_figures`, plus the same figures under the metric's name (``test_accuracy_pytorch``)
    that build.json files and scripts before the fixed keys read."""
    stage: dict[str, Any] = {"metric": metric}
    teacher: dict[str, Any] = {}
    if test_pytorch is not None:
        stage.update({"test_metric_pytorch": test_pytorch, f"test_{metric}_pytorch": test_pytorch})
    if best_val is not None:
        stage.update({"best_val_metric": best_val, f"best_val_{metric}": best_val})
    if teacher_test is not None:
        teacher.update({"test_metric": teacher_test, f"test_{metric}": teacher_test})
    return stage, teacher


# ---- the prune stage's latency table (latency-aware channel selection) --------------------------------
def latency_table_record(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The prune stage's latency table summary (``edge_kd.prune.latency``: target, runtime, method,
    model_key, base_ms, path of the cached table, reused), or None when the channels were not chosen by one.

    >>> latency_table_record({"stages": [{"name": "prune", "details": {"latency_table": {"path": "t.json"}}}]})
    {'path': 't.json'}
    """
    record = stage_record(manifest, "prune")
    table = ((record or {}).get("details") or {}).get("latency_table")
    return dict(table) if isinstance(table, Mapping) else None
