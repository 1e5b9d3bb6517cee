"""Plan and run ``edge-kd build``: validate everything first, then run the stages per target.

Module-level imports stay light (the CLI imports this lazily anyway); torch and the runtimes are
imported inside the stages.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from edge_kd.errors import ConfigError, InputError
from edge_kd.pipeline.manifest import MANIFEST_NAME, _holds_files

#: Folder inside the build output shared by all targets (teacher artifacts per runtime).
SHARED_DIR = "_shared"
#: Marker that says "this output folder belongs to edge-kd build" (so a re-run may write into it).
MARKER = ".edge-kd-build.json"


@dataclass
class BuildPlan:
    """Everything validated before the first stage runs."""

    recipe: Any
    targets: list[Any]
    out: Path
    dirs: dict[str, Path]
    stages: list[str]


@dataclass
class BuildSummary:
    """One row of the final table: a target's bundle vs budget, metric vs teacher, p50 vs teacher, verdict."""

    target: str
    build_dir: Path
    bundle_bytes: int | None = None
    bundle_gzip_bytes: int | None = None
    #: the profile's budgets.artifact_size (bytes) and budgets.latency_p90 (ms), under their profile names
    artifact_size: int | None = None
    metric_name: str | None = None
    metric: float | None = None
    teacher_metric: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    teacher_p50_ms: float | None = None
    latency_p90: float | None = None
    gate_passed: bool | None = None
    failed_checks: list[str] = field(default_factory=list)

    @classmethod
    def from_manifest(cls, build_dir: Path, manifest: dict[str, Any]) -> "BuildSummary":
        from edge_kd.pipeline import records as rec

        get = rec.optional
        bundle = get(rec.bundle_total, manifest, "bytes")
        gzip = get(rec.bundle_total, manifest, "gzip_bytes")
        metric = get(rec.task_metric, manifest, rec.STUDENT)
        budgets = rec.recorded_budgets(manifest)
        target = manifest.get("target") or {}
        return cls(
            target=target.get("name", build_dir.name), build_dir=build_dir,
            bundle_bytes=bundle[0] if bundle else None,
            bundle_gzip_bytes=gzip[0] if gzip else None,
            artifact_size=budgets.artifact_size if budgets else None,
            metric_name=metric[0] if metric else None,
            metric=metric[1] if metric else None,
            teacher_metric=get(rec.number, manifest, rec.TEACHER, "task_metric", "value"),
            p50_ms=get(rec.number, manifest, rec.STUDENT, "latency_ms", "p50"),
            p90_ms=get(rec.number, manifest, rec.STUDENT, "latency_ms", "p90"),
            teacher_p50_ms=get(rec.number, manifest, rec.TEACHER, "latency_ms", "p50"),
            latency_p90=budgets.latency_p90 if budgets else None,
            gate_passed=(manifest.get("gate") or {}).get("passed"),
            failed_checks=rec.failed_checks(manifest),
        )

    def row(self) -> list[str]:
        from edge_kd.units import format_bytes

        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        size = "-" if self.bundle_bytes is None else f"{format_bytes(self.bundle_bytes)} / {format_bytes(self.artifact_size or 0)}"
        metric = f"{fmt(self.metric, '.4f')} / {fmt(self.teacher_metric, '.4f')}"
        p50 = f"{fmt(self.p50_ms, '.3f')} / {fmt(self.teacher_p50_ms, '.3f')}"
        speedup = "-" if not (self.p50_ms and self.teacher_p50_ms) else f"{self.teacher_p50_ms / self.p50_ms:.1f}x"
        verdict = {True: "PASS", False: "FAIL", None: "-"}[self.gate_passed]
        if self.failed_checks:
            verdict += " (" + ", ".join(self.failed_checks) + ")"
        return [self.target, size, metric, p50, speedup, verdict]


HEADERS = ["target", "bundle / budget", "metric / teacher", "p50 ms / teacher", "speed-up", "gate"]


def _owned_by_us(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _check_out_dir(out: Path) -> None:
    """Refuse an output folder that holds someone else's files (never overwrite them)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if not out.is_dir() or _owned_by_us(out):
        return
    if _holds_files(out):
        raise InputError(f"{out}: folder is not empty and was not made by edge-kd build; refusing to write into "
                         "someone else's files (choose an empty or new --out)")


def _validate_stage_settings(recipe: Any) -> None:
    """Names the stages will look up (losses, student family, pruning criterion): fail now, not in an hour."""
    from edge_kd.distill.losses import LOSSES
    import edge_kd.models.students.forecast  # noqa: F401  (importing a family's module registers it)
    import edge_kd.models.students.image  # noqa: F401
    import edge_kd.models.students.items  # noqa: F401
    import edge_kd.models.students.tabular  # noqa: F401
    import edge_kd.models.students.text  # noqa: F401
    from edge_kd.models.students.base import FAMILIES

    src = recipe.source
    for name in recipe.distill.losses:
        if name not in LOSSES:
            raise ConfigError(f"unknown KD loss {name!r}; known: {', '.join(LOSSES.names())}", source=src,
                              key="distill.losses")
    if recipe.student.family == "forecast_mlp":  # a forecasting student: known before any data is read
        for name in recipe.distill.losses:
            if name != "regression_kd":
                raise ConfigError(f"KD loss {name!r} is for classes; a forecasting (regression) student distils "
                                  "with 'regression_kd'", source=src, key="distill.losses")
    from edge_kd.distill.run import TEACHER_FAMILY, TEXT_AUTO

    if recipe.student.family not in ("custom", TEACHER_FAMILY, TEXT_AUTO) and recipe.student.family not in FAMILIES:
        raise ConfigError(f"unknown student family {recipe.student.family!r}; known: "
                          f"{', '.join(FAMILIES.names())}, custom, {TEACHER_FAMILY}, {TEXT_AUTO}", source=src,
                          key="student.family")
    if recipe.prune.enabled:
        from edge_kd.prune.criteria import CRITERIA

        if recipe.prune.criterion not in CRITERIA:
            raise ConfigError(f"unknown pruning criterion {recipe.prune.criterion!r}; known: "
                              f"{', '.join(CRITERIA.names())}", source=src, key="prune.criterion")
    from edge_kd.distill.run import _options, student_candidates

    _options(recipe)  # strict [distill].options
    student_candidates(recipe)  # a bad [student] options.dim width list, before any data is read


def plan_build(recipe_path: str | os.PathLike[str], targets: Sequence[str] | None = None,
               out: str | os.PathLike[str] | None = None, *, shared_data: str | None = None) -> BuildPlan:
    """Load and validate the recipe, the profiles and the output folder (no heavy work, no data read).

    >>> plan = plan_build("examples/intent_bitext.toml", ["ort-mobile"], "builds/intent")  # doctest: +SKIP
    """
    from edge_kd.recipe import load_recipe
    from edge_kd.targets import load_target

    recipe = load_recipe(recipe_path, shared_data=shared_data)
    refs = list(targets or ([recipe.target] if recipe.target else []))
    if not refs:
        raise InputError(f"{recipe_path}: no target: pass --target NAME (repeatable) or set `target` in the recipe")
    # A recipe's [budgets] tighten each target's for this model (build.json records the result).
    profiles = [recipe.budgets.apply(load_target(ref), source=str(recipe.source)) for ref in refs]
    from edge_kd.pipeline.paths import check_output_dir, safe_name

    for p in profiles:  # each name becomes a folder under --out: it must not climb out of it
        safe_name(p.name, what="target name", source=p.source or None)
    names = [p.name for p in profiles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"target {dupes[0]!r} is given twice")
    if out is None:
        safe_name(recipe.name, what="recipe name", source=str(recipe.source))
    out_dir = check_output_dir(Path(out) if out is not None else Path("builds") / recipe.name)
    _check_out_dir(out_dir)
    dirs = {p.name: out_dir / p.name for p in profiles}
    for name, d in dirs.items():
        if d.is_dir() and _holds_files(d) and not (d / MANIFEST_NAME).exists():
            raise InputError(f"{d}: folder is not empty and holds no {MANIFEST_NAME}; refusing to overwrite it")
    _validate_stage_settings(recipe)
    stages = ["distill"] + (["prune"] if recipe.prune.enabled else []) + ["quantize", "bundle", "bench", "gate"]
    if not recipe.distill.enabled:
        raise ConfigError("edge-kd build distills a student; [distill].enabled = false is not supported here "
                          "(use edge-kd export/quantize for a model you already have)", source=recipe.source,
                          key="distill.enabled")
    return BuildPlan(recipe, profiles, out_dir, dirs, stages)


def build(recipe_path: str | os.PathLike[str], targets: Sequence[str] | None = None,
          out: str | os.PathLike[str] | None = None, *, resume: bool = False, device: str = "auto",
          shared_data: str | None = None, log: Callable[[str], None] | None = None) -> list[BuildSummary]:
    """Run the whole pipeline of ``recipe_path`` for each target; returns one summary per target.

    >>> rows = build("examples/intent_bitext.toml", ["tflite-int8"], "builds/intent")  # doctest: +SKIP
    >>> rows[0].gate_passed                                                            # doctest: +SKIP
    True
    """
    from edge_kd.pipeline.lock import BuildLock

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    plan = plan_build(recipe_path, targets, out, shared_data=shared_data)
    with BuildLock(plan.out):
        return _build(plan, resume=resume, device=device, log=log)


def _build(plan: BuildPlan, *, resume: bool, device: str, log: Callable[[str], None]) -> list[BuildSummary]:
    from edge_kd import console
    from edge_kd.stages.stages import BuildContext, make_stages
    from edge_kd.pipeline import Build, atomic_write_json, atomic_write_text, run_pipeline, validate_pipeline
    from edge_kd.pipeline.manifest import read_manifest

    shared = BuildContext(plan.recipe, plan.out / SHARED_DIR, device=device, resume=resume, log=log)
    stage_lists = {t.name: make_stages(plan.recipe, shared) for t in plan.targets}
    for stages in stage_lists.values():
        validate_pipeline(stages, ["recipe", "target"])
    # Reading the data validates paths, columns and splits before any training starts.
    shared.load_data()
    plan.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan.out / MARKER, {"recipe": str(plan.recipe.source), "targets": list(plan.dirs)})
    console.keep_log_in(plan.out / "logs" / "edge-kd.log")  # what is logged outside the targets' logs
    summaries = []
    for target in plan.targets:
        build_dir = plan.dirs[target.name]
        log(f"== {target.name}: building into {build_dir}")
        b = Build.create(build_dir, target=target.to_dict(), recipe=plan.recipe.to_dict())
        # The toolchain's own logs for this target land beside its artifacts, not on the console.
        console.log_to(build_dir / "logs" / "edge-kd.log")
        try:
            run_pipeline(stage_lists[target.name], b, {"recipe": plan.recipe, "target": target}, log=log)
        finally:
            console.log_to(None)
        summaries.append(BuildSummary.from_manifest(build_dir, read_manifest(build_dir)))
    atomic_write_text(plan.out / "summary.json", summary_json(summaries) + "\n")
    return summaries


def run_stage(name: str, recipe: Any, target: Any, out: str | os.PathLike[str], *, resume: bool = False,
              device: str = "auto", log: Callable[[str], None] | None = None, measure: Callable | None = None,
              inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one stage of ``edge-kd build`` on its own into the build folder ``out``: what the single-stage
    commands do. The same stage object, cache key and ``Build`` handle as in a build; with ``resume`` a
    completed stage with the same inputs is reused. ``inputs``: context values the stage requires besides
    the recipe and target. Returns the stage's record from build.json.

    >>> record = run_stage("distill", load_recipe("r.toml"), load_target("ort-mobile"), "b")  # doctest: +SKIP
    >>> record["details"]["sizing"]["value"]                                                  # doctest: +SKIP
    """
    from edge_kd.distill.ddp import init_distributed
    from edge_kd.pipeline import Build, run_pipeline
    from edge_kd.pipeline.manifest import new_manifest
    from edge_kd.stages.stages import BuildContext, stage_named

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(out)
    env = init_distributed(device)  # under torchrun every rank runs the stage; one writes build.json
    shared = BuildContext(recipe, out / SHARED_DIR, device=device, resume=resume, log=log, measure=measure)
    if name == "distill":  # the folder is written only once the data has passed its checks
        shared.load_data()
    if env.is_main:
        handle = Build.create(out, target=target.to_dict(), recipe=recipe.to_dict())
    else:
        handle = Build(out, new_manifest(target.to_dict(), recipe.to_dict()), persist=False)
    run_pipeline([stage_named(name, shared)], handle, {"recipe": recipe, "target": target, **(inputs or {})},
                 reuse=resume, log=log)
    return next(s for s in handle.manifest["stages"] if s.get("name") == name)


def summary_table(summaries: Sequence[BuildSummary]) -> str:
    """The table `edge-kd build` and `make demo` print."""
    import io

    from edge_kd.cli.common import print_table

    from edge_kd.metrics import higher_is_better

    buf = io.StringIO()
    print_table([s.row() for s in summaries], HEADERS, file=buf)
    # An error metric reads the other way round from accuracy: say so under the numbers.
    errors = sorted({s.metric_name for s in summaries if s.metric_name and not higher_is_better(s.metric_name)})
    if errors:
        print(f"metric: {', '.join(errors)} (an error: lower is better)", file=buf)
    return buf.getvalue()


def stage_times(summaries: Sequence[BuildSummary]) -> str:
    """Seconds per stage and target, as recorded in each build.json ("reused" stages count ~0)."""
    from edge_kd.pipeline.manifest import read_manifest

    per_target: dict[str, dict[str, float]] = {}
    order: list[str] = []
    for s in summaries:
        try:
            stages = read_manifest(s.build_dir).get("stages", [])
        except InputError:
            continue
        row = per_target.setdefault(s.target, {})
        for record in stages:
            name = record.get("name")
            if not isinstance(name, str):
                continue
            if name not in order:
                order.append(name)
            seconds = record.get("seconds") or 0.0
            row[name] = row.get(name, 0.0) + (0.0 if record.get("status") == "reused" else float(seconds))
    if not per_target:
        return ""
    rows = [[t, *(f"{times.get(n, 0.0):.1f}" for n in order), f"{sum(times.values()):.1f}"]
            for t, times in per_target.items()]
    import io

    from edge_kd.cli.common import print_table

    buf = io.StringIO()
    print_table(rows, ["time (s)", *order, "total"], file=buf)
    return buf.getvalue()


def summary_json(summaries: Sequence[BuildSummary]) -> str:
    return json.dumps([{k: (str(v) if isinstance(v, Path) else v) for k, v in s.__dict__.items()}
                       for s in summaries], indent=2)
