"""Budgets vs recorded measurements: the release gate.

The gate reads what the build recorded in ``build.json`` (sizes, latency measured in the target
runtime, the task metric of the student and of the fp32 teacher, the operator list) and never
re-measures. It fails CLOSED: a figure that is missing, not a number, or whose artifact file was
edited after the build (sha256 mismatch) is a failed check with a reason, never a pass. Input that
cannot be judged at all (corrupt JSON, a newer manifest schema, a baseline for another target) raises
:class:`~edge_kd.errors.InputError` (exit 2).

Imports nothing heavy: the gate runs in CI jobs that never touch torch.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Union

from edge_kd.errors import InputError
from edge_kd.metrics import higher_is_better
from edge_kd.gate.bundle import bytes_breakdown, verify_artifact
from edge_kd.pipeline import records as rec
from edge_kd.pipeline.records import BUNDLE_ROLES, MissingFigure
from edge_kd.gate.contract import check_contract
from edge_kd.gate.result import Check, GateReport
from edge_kd.gate.tolerances import Tolerance, Tolerances
from edge_kd.pipeline.manifest import MANIFEST_NAME, SCHEMA_VERSION, read_manifest
from edge_kd.targets import TargetProfile, load_target
from edge_kd.units import format_bytes

ManifestLike = Union[str, "os.PathLike[str]", Mapping[str, Any], Any]

#: Figures compare with this slack so that a value exactly on its limit passes despite float rounding.
_EPS = 1e-9
#: The stage that runs the gate inside a build is still "running" while it calls evaluate().
_GATE_STAGE = "gate"
_OK_STAGE_STATUSES = ("ok", "reused")


# ---- loading --------------------------------------------------------------------------------------
def _check_schema(manifest: Any, label: str) -> dict[str, Any]:
    if not isinstance(manifest, Mapping) or "schema_version" not in manifest:
        raise InputError(f"{label}: not an edge_kd build manifest (no schema_version)")
    version = manifest["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise InputError(f"{label}: manifest schema_version {version!r} is not supported by this edge_kd "
                         f"(supports 1..{SCHEMA_VERSION}); upgrade edge_kd to read it")
    return dict(manifest)


def load_build(obj: ManifestLike, root: str | os.PathLike[str] | None = None,
               what: str = "build") -> tuple[dict[str, Any], Path | None, str]:
    """(manifest, build directory or None, label) from a path, a ``Build`` or a manifest dict."""
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.exists():
            raise InputError(f"{path}: no such {what} (expected a build directory or its {MANIFEST_NAME})")
        manifest = read_manifest(path)
        build_root = path if path.is_dir() else path.parent
        return manifest, build_root, str(path)
    if hasattr(obj, "manifest") and hasattr(obj, "root"):  # an edge_kd.pipeline.Build
        label = str(Path(obj.root))
        return _check_schema(obj.manifest, label), Path(obj.root), label
    if isinstance(obj, Mapping):
        label = str(root) if root is not None else f"<{what} manifest>"
        return _check_schema(obj, label), (Path(root) if root is not None else None), label
    raise InputError(f"cannot read a {what} from {type(obj).__name__}; pass a build directory, a build.json, "
                     "a Build or a manifest dict")


#: Builds of one release share their profile; validating it once per distinct profile keeps a
#: dozen-build gate fast (strict config building introspects type hints).
_PROFILE_CACHE: dict[str, TargetProfile] = {}


def _recorded_target(manifest: Mapping[str, Any], label: str) -> TargetProfile | None:
    data = manifest.get("target")
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InputError(f"{label}: 'target' is not a profile table")
    try:
        key = json.dumps(data, sort_keys=True)
    except (TypeError, ValueError):
        key = None
    if key is not None and key in _PROFILE_CACHE:
        return _PROFILE_CACHE[key]
    profile = TargetProfile.from_dict(dict(data), source=f"{label} (recorded target)")
    if key is not None and len(_PROFILE_CACHE) < 64:
        _PROFILE_CACHE[key] = profile
    return profile


def _resolve_target(target: Any, recorded: TargetProfile | None, label: str) -> tuple[TargetProfile, str]:
    if target is None:
        if recorded is None:
            raise InputError(f"{label}: the manifest records no target profile; pass --target NAME|PATH")
        return recorded, "manifest"
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    if recorded is not None and recorded.runtime.name != profile.runtime.name:
        raise InputError(f"{label}: built for runtime {recorded.runtime.name} (target {recorded.name}) but "
                         f"--target {profile.name} is for {profile.runtime.name}; its budgets do not apply")
    return profile, profile.source or profile.name


def _tolerances(tolerances: Tolerances | Mapping[str, object] | None) -> Tolerances:
    if tolerances is None:
        return Tolerances()
    if isinstance(tolerances, Tolerances):
        return tolerances
    return Tolerances.from_mapping(tolerances)


# ---- reading figures ------------------------------------------------------------------------------
def _pct(value: float, limit: float) -> str:
    return f"{100.0 * value / limit:.1f}%" if limit else "n/a"


# ---- the checks -----------------------------------------------------------------------------------
def _check_stages(manifest: Mapping[str, Any]) -> Check:
    title = "Build stages completed"
    stages = manifest.get("stages")
    if stages is None:
        stages = []
    if not isinstance(stages, list):
        return Check("build.stages", title, False, None, None, "'stages' is not a list", "failed stages")
    bad = [f"{s.get('name', '?')} ({s.get('status', 'no status')})" for s in stages
           if isinstance(s, dict) and s.get("name") != _GATE_STAGE and s.get("status") not in _OK_STAGE_STATUSES]
    counted = [s for s in stages if isinstance(s, dict) and s.get("name") != _GATE_STAGE]
    if bad:
        return Check("build.stages", title, False, len(bad), 0,
                     f"stage(s) did not complete: {', '.join(bad)}; recorded figures may be stale", "failed stages")
    reason = f"all {len(counted)} stages ok" if counted else "no stage records (manifest written outside a pipeline)"
    return Check("build.stages", title, True, 0, 0, reason, "failed stages")


def _check_integrity(manifest: Mapping[str, Any], root: Path | None) -> Check:
    title = "Artifacts match the manifest"
    arts = rec.artifacts(manifest)
    bundle = [a for a in arts if a.get("role") in BUNDLE_ROLES]
    if not any(a.get("role") == "model" for a in bundle):
        return Check("artifacts.integrity", title, False, None, None,
                     "no artifact with role 'model' is recorded: nothing to ship", "bad files", comparator="==")
    if root is None:
        return Check("artifacts.integrity", title, False, None, None,
                     "cannot verify artifact files without the build directory (pass a path or a Build)",
                     "bad files", comparator="==")
    from edge_kd.pipeline.paths import inside

    problems = [p for a in bundle if (p := verify_artifact(root, a))]
    # Files that do not ship (intermediate exports, reports) may be left out of a CI artifact; when
    # present they must still be the recorded ones, or the build directory was tampered with.
    others_checked = 0
    for a in arts:
        if a.get("role") in BUNDLE_ROLES:
            continue
        rel = a.get("path")
        if isinstance(rel, str) and (not inside(root, rel) or (root / rel).exists()):
            others_checked += 1
            if (p := verify_artifact(root, a)):
                problems.append(p)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return Check("artifacts.integrity", title, False, len(problems), 0,
                     "; ".join(problems[:3]) + more, "bad files", comparator="==")
    reason = f"{len(bundle)} bundle file(s) present with the recorded sha256"
    if others_checked:
        reason += f", and {others_checked} other file(s)"
    return Check("artifacts.integrity", title, True, 0, 0, reason, "bad files", comparator="==")


def _check_size(manifest: Mapping[str, Any], key: str, limit: int, name: str, title: str) -> Check:
    try:
        total, files = rec.bundle_total(manifest, key)
    except MissingFigure as exc:
        return Check(name, title, False, None, limit, str(exc), "bytes")
    passed = total <= limit
    if passed:
        reason = f"{_pct(total, limit)} of budget, {format_bytes(limit - total)} to spare ({files} file(s))"
    else:
        reason = f"over budget by {format_bytes(total - limit)} ({_pct(total, limit)} of budget, {files} file(s))"
    return Check(name, title, passed, total, limit, reason, "bytes")


def _check_latency(manifest: Mapping[str, Any], limit: float, *, emulated: bool = False) -> Check:
    if emulated:
        return _check_emulated_latency(manifest, limit)
    title = "Latency p90"
    try:
        p90 = rec.number(manifest, "metrics", "latency_ms", "p90", positive=True)
    except MissingFigure as exc:
        return Check("latency.p90", title, False, None, limit, str(exc), "ms")
    context = []
    for q in ("p50", "p99"):
        try:
            context.append(f"{q} {rec.number(manifest, 'metrics', 'latency_ms', q):.2f} ms")
        except MissingFigure:
            pass
    ctx = f" ({', '.join(context)})" if context else ""
    if p90 <= limit + _EPS:
        return Check("latency.p90", title, True, p90, limit, f"{limit - p90:.2f} ms headroom{ctx}", "ms")
    return Check("latency.p90", title, False, p90, limit,
                 f"{p90 - limit:.2f} ms over the budget ({_pct(p90, limit)}){ctx}", "ms")


def _check_emulated_latency(manifest: Mapping[str, Any], limit: float) -> Check:
    """The profile's ``[bench] gate_latency = "emulated"``: the ARM cost-model estimate (edge_kd.emulate)
    stands for the p90; it is one deterministic figure per inference, not a distribution."""
    title = "Latency (ARM estimate)"
    try:
        value = rec.number(manifest, "metrics", "emulated", "estimate_ms", positive=True)
    except MissingFigure as exc:
        return Check("latency.p90", title, False, None, limit,
                     f"{exc} (the profile gates on the ARM estimate; build with [bench] emulate set)", "ms")
    emulated = manifest["metrics"]["emulated"]
    ctx = f" ({emulated.get('core')}: {emulated.get('instructions', 0) / 1e6:.2f} M instructions per inference)"
    if value <= limit + _EPS:
        return Check("latency.p90", title, True, value, limit, f"{limit - value:.2f} ms headroom{ctx}", "ms")
    return Check("latency.p90", title, False, value, limit,
                 f"{value - limit:.2f} ms over the budget ({_pct(value, limit)}){ctx}", "ms")


def _check_accuracy(manifest: Mapping[str, Any], profile: TargetProfile) -> Check:
    title = "Task metric vs teacher"
    drop = profile.budgets.accuracy_drop
    try:
        name, value = rec.task_metric(manifest, "metrics")
        tname, teacher = rec.task_metric(manifest, "teacher")
    except MissingFigure as exc:
        return Check("accuracy.drop", title, False, None, None, str(exc), "", comparator=">=")
    if name != tname:
        return Check("accuracy.drop", title, False, value, None,
                     f"student measured {name!r} but teacher {tname!r}: not comparable", name, comparator=">=")
    where = _teacher_measured_in(manifest)
    higher = higher_is_better(name)
    # For an error metric (WAPE, MAE) the allowed degradation is a rise of the error.
    bound = drop.min_allowed(teacher) if higher else drop.max_allowed(teacher)
    lost = teacher - value if higher else value - teacher
    comparator, allowed = (">=", f"allowed drop {drop}") if higher else ("<=", f"allowed degradation {drop}")
    if (value >= bound - _EPS) if higher else (value <= bound + _EPS):
        reason = (f"{lost * 100:.2f}pt {'below' if higher else 'above'} teacher {teacher:.4f}{where}; {allowed}"
                  if lost > 0 else f"matches or beats the teacher ({teacher:.4f}{where}); {allowed}")
        return Check("accuracy.drop", title, True, value, bound, reason, name, comparator=comparator)
    if higher:
        reason = f"drops {lost * 100:.2f}pt from teacher {teacher:.4f}{where}; {allowed}, short by"
    else:
        reason = (f"{name} {lost * 100:.2f}pt worse than teacher {teacher:.4f}{where} (lower is better); "
                  f"{allowed}, over by")
    return Check("accuracy.drop", title, False, value, bound, f"{reason} {abs(value - bound) * 100:.2f}pt", name,
                 comparator=comparator)


def _teacher_measured_in(manifest: Mapping[str, Any]) -> str:
    """" (measured in python (lightgbm 4.7.0))" for a teacher with no runtime artifact, else ""."""
    teacher = manifest.get("teacher")
    where = teacher.get("measured_in") if isinstance(teacher, Mapping) else None
    return f", measured in {where}" if isinstance(where, str) and where else ""


def _check_reference_baseline(manifest: Mapping[str, Any]) -> Check | None:
    """Next-purchase builds record a popularity baseline measured on the same test rows
    (``metrics.baseline``): a recommender that does not beat "the most-bought products for everyone"
    must not ship. None when the build records no baseline (other tasks)."""
    baseline = (manifest.get("metrics") or {}).get("baseline")
    if not isinstance(baseline, Mapping):
        return None
    title = f"Task metric vs the {baseline.get('name', 'reference')} baseline"
    try:
        name, value = rec.task_metric(manifest, "metrics")
    except MissingFigure as exc:
        return Check("metric.baseline", title, False, None, None, str(exc), "", comparator=">")
    ref = baseline.get(name)
    if not isinstance(ref, (int, float)):
        return Check("metric.baseline", title, False, value, None, f"the baseline records no {name!r}", name,
                     comparator=">")
    if value > ref + _EPS:
        return Check("metric.baseline", title, True, value, ref,
                     f"{value / ref:.2f}x the {baseline.get('name')} baseline's {ref:.4f}" if ref > 0 else
                     f"above the {baseline.get('name')} baseline's {ref:.4f}", name, comparator=">")
    return Check("metric.baseline", title, False, value, ref,
                 f"not above the {baseline.get('name')} baseline ({ref:.4f})", name, comparator=">")


def _violation_text(v: Any) -> str:
    if isinstance(v, Mapping):
        op = v.get("op") or v.get("name") or v.get("operator") or "?"
        why = v.get("reason") or v.get("why")
        return f"{op} ({why})" if why else str(op)
    return str(v)


def _check_ops(manifest: Mapping[str, Any], policy: str) -> Check:
    title = "Operator policy"
    name = "ops.policy"
    if policy == "any":
        return Check(name, title, True, "any", None, "the target allows any operator", "")
    metrics = manifest.get("metrics")
    ops = metrics.get("ops") if isinstance(metrics, Mapping) else None
    if not isinstance(ops, Mapping):
        return Check(name, title, False, None, 0, "metrics.ops is not recorded: the operator list was never "
                     "checked", "violations")
    recorded = ops.get("policy")
    if recorded != policy:
        return Check(name, title, False, None, 0,
                     f"operators were checked against policy {recorded!r} but the target requires {policy!r}; "
                     "re-run the ops check for this target", "violations")
    violations = ops.get("violations")
    if not isinstance(violations, list):
        return Check(name, title, False, None, 0, "metrics.ops.violations is not recorded", "violations")
    # The violation list is the verdict of edge_kd.runtimes.ops for this policy: it already knows
    # which operators are bookkeeping (e.g. ExecuTorch memory ops are never delegated and are fine).
    problems = [_violation_text(v) for v in violations]
    operators = ops.get("operators")
    kinds = f"{len(operators)} operator kind(s)" if isinstance(operators, Mapping) else "the recorded operators"
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        return Check(name, title, False, len(problems), 0,
                     f"not allowed by {policy}: {', '.join(problems[:5])}{more}", "violations")
    return Check(name, title, True, 0, 0, f"{kinds}, all allowed by {policy}", "violations")


def artifact_choice(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The quantize stage's recorded artifact choice (edge_kd.quantize.selection), or None."""
    for stage in reversed(manifest.get("stages") or []):
        if isinstance(stage, Mapping) and stage.get("name") == "quantize":
            details = stage.get("details")
            selection = details.get("selection") if isinstance(details, Mapping) else None
            return selection if isinstance(selection, Mapping) else None
    return None


def choice_core(selection: Mapping[str, Any]) -> str | None:
    """The ARM core whose cost-model estimates decided a recorded choice (``[quantization]
    ship_latency``), or None when the host's interleaved timings decided."""
    latency = selection.get("latency")
    if isinstance(latency, Mapping) and latency.get("source") == "emulated":
        return str(latency.get("core"))
    return None


def _check_choice(manifest: Mapping[str, Any]) -> Check:
    """The shipped artifact is not slower, beyond measurement noise, than another candidate of the same
    build that meets every budget (measured interleaved in one process by the quantize stage)."""
    from edge_kd.bench.compare import NOISE_MARGIN, slower_beyond_noise

    name, title = "artifact.choice", "Fastest artifact within budget shipped"
    selection = artifact_choice(manifest)
    if selection is None:
        return Check(name, title, True, None, None, "no alternatives recorded (the quantize stage measured no "
                     "candidates, e.g. quantization.mode = 'fp32')", "")
    candidates = [c for c in selection.get("candidates") or [] if isinstance(c, Mapping)]
    shipped = [c for c in candidates if c.get("shipped")]
    if len(shipped) != 1:
        return Check(name, title, False, None, None, f"{len(shipped)} candidates are marked shipped; expected 1", "")
    ship = shipped[0]
    margin = selection.get("noise_margin", NOISE_MARGIN)
    margin = float(margin) if isinstance(margin, (int, float)) and not isinstance(margin, bool) else NOISE_MARGIN
    policy = selection.get("policy", "fastest-within-budget")
    rounds = ship.get("rounds_ms")
    if not isinstance(rounds, list) or not rounds:
        return Check(name, title, False, None, None, f"shipped candidate {ship.get('name')!r} has no recorded "
                     "latency rounds", "")
    faster = []
    for c in candidates:
        if c is ship or not c.get("within_budget") or not isinstance(c.get("rounds_ms"), list):
            continue
        slower, ratio = slower_beyond_noise(rounds, c["rounds_ms"], margin=margin)
        if slower:
            faster.append((ratio, c))
    # An emulated choice compares the ARM cost-model estimates (one per candidate), not host rounds.
    core = choice_core(selection)
    label, how = (f"{core} estimate", "ARM cost-model estimates") if core else ("p50", "interleaved rounds")
    what = f"{ship.get('name')} ({label} {ship.get('p50_ms')} ms)"
    if not faster:
        others = len([c for c in candidates if c is not ship])
        return Check(name, title, True, 0, 0, f"ships {what}; no budget-meeting alternative of {others} is faster "
                     f"beyond the {margin:.0%} noise margin (policy {policy})", "faster alternatives")
    ratio, best = max(faster, key=lambda rc: rc[0])
    reason = (f"ships {what} but {best.get('name')} meets every budget and runs {ratio:.2f}x faster "
              f"({label} {best.get('p50_ms')} ms, {how}, noise margin {margin:.0%})")
    if policy != "fastest-within-budget":
        source = selection.get("policy_from")
        return Check(name, title, True, len(faster), 0, f"{reason}; shipped anyway: ship = {policy!r} "
                     + (f"({source})" if source else "in the profile"), "faster alternatives")
    return Check(name, title, False, len(faster), 0, reason, "faster alternatives")


def _growth_check(name: str, title: str, current: float, base: float, tol: Tolerance, unit: str,
                  fmt) -> Check:
    growth = current - base
    allowed = tol.allowed(base)
    passed = growth <= allowed + _EPS
    if tol.kind == "relative":
        value: float = growth / base
        limit: float = tol.value
        vunit = "fraction"
    else:
        value, limit, vunit = growth, tol.value, unit
    change = f"{fmt(base)} → {fmt(current)} ({growth / base * 100:+.1f}%)"
    reason = f"{change}; allowed growth {tol}" if passed else f"{change} grows more than the allowed {tol}"
    return Check(name, title, passed, value, limit, reason, vunit)


def _baseline_checks(manifest: Mapping[str, Any], base: Mapping[str, Any], tol: Tolerances) -> list[Check]:
    checks = []
    title = "Size growth vs baseline"
    try:
        cur, _ = rec.bundle_total(manifest, "bytes")
        try:
            old, _ = rec.bundle_total(base, "bytes")
        except MissingFigure as exc:
            raise MissingFigure(f"baseline: {exc}") from None
        if old <= 0:
            raise MissingFigure("baseline bundle has 0 bytes recorded")
        checks.append(_growth_check("baseline.size_growth", title, cur, old, tol.max_size_growth, "bytes",
                                    format_bytes))
    except MissingFigure as exc:
        checks.append(Check("baseline.size_growth", title, False, None, tol.max_size_growth.value, str(exc),
                            "fraction" if tol.max_size_growth.kind == "relative" else "bytes"))

    title = "Metric loss vs baseline"
    mtol = tol.max_metric_loss
    munit = "fraction" if mtol.kind == "relative" else "points"
    try:
        name, cur_m = rec.task_metric(manifest, "metrics")
        try:
            bname, old_m = rec.task_metric(base, "metrics")
        except MissingFigure as exc:
            raise MissingFigure(f"baseline: {exc}") from None
        if name != bname:
            raise MissingFigure(f"baseline measured {bname!r}, this build {name!r}: not comparable")
        # Loss in the metric's direction: accuracy that went down, or an error (WAPE) that went up.
        loss = old_m - cur_m if higher_is_better(name) else cur_m - old_m
        allowed = mtol.allowed(old_m)
        passed = loss <= allowed + _EPS
        value = loss / old_m if mtol.kind == "relative" and old_m else loss
        change = f"{name} {old_m:.4f} → {cur_m:.4f} ({(cur_m - old_m) * 100:+.2f}pt)"
        reason = f"{change}; allowed loss {mtol}" if passed else f"{change} loses more than the allowed {mtol}"
        checks.append(Check("baseline.metric_loss", title, passed, value, mtol.value, reason, munit))
    except MissingFigure as exc:
        checks.append(Check("baseline.metric_loss", title, False, None, mtol.value, str(exc), munit))

    title = "Latency growth vs baseline"
    ltol = tol.max_latency_growth
    try:
        cur_l = rec.number(manifest, "metrics", "latency_ms", "p90", positive=True)
        try:
            old_l = rec.number(base, "metrics", "latency_ms", "p90", positive=True)
        except MissingFigure as exc:
            raise MissingFigure(f"baseline: {exc}") from None
        checks.append(_growth_check("baseline.latency_growth", title, cur_l, old_l, ltol, "ms",
                                    lambda v: f"{v:.2f} ms"))
    except MissingFigure as exc:
        checks.append(Check("baseline.latency_growth", title, False, None, ltol.value, str(exc),
                            "fraction" if ltol.kind == "relative" else "ms"))
    return checks


def _summary(manifest: Mapping[str, Any], profile: TargetProfile) -> dict[str, Any]:
    """The figures reports plot, each None when not recorded (the checks say why)."""
    get = rec.optional

    bundle = get(rec.bundle_total, manifest, "bytes")
    gz = get(rec.bundle_total, manifest, "gzip_bytes")
    metric = get(rec.task_metric, manifest, "metrics")
    teacher = get(rec.task_metric, manifest, "teacher")
    latency = {q: get(rec.number, manifest, "metrics", "latency_ms", q) for q in ("p50", "p90", "p99", "mean")}
    teacher_latency = {q: get(rec.number, manifest, "teacher", "latency_ms", q) for q in ("p50", "p90", "p99", "mean")}
    recorded_target = manifest.get("target") if isinstance(manifest.get("target"), Mapping) else {}
    return {
        "runtime": profile.runtime.name,
        "format": profile.primary_format,
        "recorded_target": recorded_target.get("name"),
        "bundle_bytes": bundle[0] if bundle else None,
        "bundle_gzip_bytes": gz[0] if gz else None,
        "task_metric": {"name": metric[0], "value": metric[1],
                        "higher_is_better": higher_is_better(metric[0])} if metric else None,
        "teacher_metric": {"name": teacher[0], "value": teacher[1]} if teacher else None,
        "latency_ms": latency,
        "teacher_latency_ms": teacher_latency,
        # A teacher with no artifact in this runtime (gradient-boosted trees): measured in Python, no latency.
        "teacher_no_runtime_artifact": bool(isinstance(manifest.get("teacher"), Mapping)
                                            and manifest["teacher"].get("no_runtime_artifact")),
        "load_ms": get(rec.number, manifest, "metrics", "load_ms"),
        "peak_rss_mb": get(rec.number, manifest, "metrics", "peak_rss_mb"),
        # The ARM estimate of edge_kd.emulate, when the profile emulated a core (None otherwise).
        "arm_estimate_ms": get(rec.number, manifest, "metrics", "emulated", "estimate_ms"),
        "teacher_arm_estimate_ms": get(rec.number, manifest, "teacher", "emulated", "estimate_ms"),
        "budgets": {"artifact_size": profile.budgets.artifact_size, "download_size": profile.budgets.download_size,
                    "latency_p90_ms": profile.budgets.latency_p90, "accuracy_drop": str(profile.budgets.accuracy_drop)},
    }


def _bundle_files(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{k: a.get(k) for k in ("role", "path", "format", "bytes", "gzip_bytes", "sha256")}
            for a in rec.bundle_artifacts(manifest)]


def evaluate(manifest_or_path: ManifestLike, *, target: str | os.PathLike[str] | TargetProfile | None = None,
             baseline: ManifestLike | None = None, tolerances: Tolerances | Mapping[str, object] | None = None,
             root: str | os.PathLike[str] | None = None) -> GateReport:
    """Judge one build against its budgets (and, optionally, against the last release).

    ``manifest_or_path``: a build directory, its ``build.json``, an ``edge_kd.pipeline.Build``, or a
    manifest dict (then pass ``root``, the build directory, so that artifact files can be verified;
    without it that check fails). ``target``: a profile name/path or ``TargetProfile`` whose budgets
    replace the recorded profile's (release policy changed; it must be for the same runtime).
    ``baseline``: the last release's build (directory, build.json, Build or dict; its files are not
    needed), which must be for the same target. ``tolerances``: a :class:`Tolerances` or a mapping such
    as ``{"max_size_growth": "5%", "max_metric_loss": "0.5pt", "max_latency_growth": "2ms"}``.

    Raises InputError for input that cannot be judged; returns a report (``passed`` False) for
    anything that can be judged and fails, including missing figures.

    >>> report = evaluate("builds/intent", baseline="release/build.json")    # doctest: +SKIP
    >>> report.passed, [c.name for c in report.failed]                       # doctest: +SKIP
    (False, ['baseline.latency_growth'])
    """
    start = time.perf_counter()
    manifest, build_root, label = load_build(manifest_or_path, root)
    recorded = _recorded_target(manifest, label)
    profile, target_source = _resolve_target(target, recorded, label)
    tol = _tolerances(tolerances)

    base_manifest = base_label = None
    if baseline is not None:
        base_manifest, _, base_label = load_build(baseline, what="baseline")
        base_target = _recorded_target(base_manifest, base_label)
        if base_target is None:
            raise InputError(f"{base_label}: the baseline records no target profile; cannot tell whether it is "
                             "comparable")
        this_target = recorded.name if recorded is not None else profile.name
        if base_target.name != this_target:
            raise InputError(f"{base_label}: baseline is for target {base_target.name!r} but {label} is for "
                             f"{this_target!r}; compare builds of the same target")

    budgets = profile.budgets
    checks = [
        _check_stages(manifest),
        _check_integrity(manifest, build_root),
        _check_size(manifest, "bytes", budgets.artifact_size, "bundle.size", "Bundle size"),
        _check_size(manifest, "gzip_bytes", budgets.download_size, "bundle.download_size",
                    "Download size (gzip)"),
        _check_latency(manifest, budgets.latency_p90, emulated=profile.bench.gate_latency == "emulated"),
        _check_accuracy(manifest, profile),
        _check_ops(manifest, profile.ops.policy),
        _check_choice(manifest),
    ]
    contract = check_contract(manifest, build_root)
    if contract is not None:
        checks.insert(2, contract)
    reference = _check_reference_baseline(manifest)
    if reference is not None:
        checks.insert(checks.index(next(c for c in checks if c.name == "accuracy.drop")) + 1, reference)
    if base_manifest is not None:
        checks += _baseline_checks(manifest, base_manifest, tol)

    return GateReport(
        passed=all(c.passed for c in checks),
        checks=checks,
        build=label,
        target=profile.name,
        target_source=target_source,
        baseline=base_label,
        tolerances=tol.to_dict() if base_manifest is not None else None,
        bundle=_bundle_files(manifest),
        breakdown=bytes_breakdown(manifest),
        summary=_summary(manifest, profile),
        seconds=time.perf_counter() - start,
    )
