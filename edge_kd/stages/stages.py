"""The stages of ``edge-kd build``, each a :class:`~edge_kd.pipeline.Stage` with a contract.

    distill   requires recipe, target              provides student_spec, student_value
    prune     requires student_spec, student_value provides student_spec        (when [prune].enabled)
    quantize  requires student_spec, student_value provides artifact
    bundle    requires artifact, student_value     provides bundle         (contract + golden vectors)
    bench     requires artifact, student_value     provides metrics
    gate      requires metrics                     provides gate

Each stage's cache key hashes what its result depends on; ``run_pipeline`` reuses a completed stage
with the same key (a re-run, ``--resume``, or a second target that shares the teacher), so the teacher's
features, logits and runtime artifacts are computed once and the distillation is not redone.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_kd.pipeline import Artifact, Stage, content_hash
from edge_kd.pipeline.manifest import MODEL_ROLES, read_manifest

STUDENT_SPEC = Path("student") / "student.json"
ARTIFACT_DIR = "artifact"
PRUNED_DIR = "pruned"
#: The build's one teacher, recorded once (in the shared folder of the build).
TEACHER_RECORD = "teacher.json"


def _recipe_part(recipe: Any, *sections: str) -> dict[str, Any]:
    d = recipe.to_dict()
    return {k: d.get(k) for k in ("seed", "teacher", "data", "student", *sections)}


def _target_part(target: Any, *sections: str) -> dict[str, Any]:
    d = target.to_dict()
    return {k: d.get(k) for k in sections}


@dataclass
class BuildContext:
    """What the targets of one build share: the recipe, the data (loaded once), the teacher (built
    once, lazily) and the folder of teacher artifacts per runtime."""

    recipe: Any
    shared_dir: Path
    device: str = "auto"
    resume: bool = False
    log: Callable[[str], None] = print
    #: How the distill stage measures a candidate student's size (default: export it int8 to the target).
    measure: Callable | None = None
    _splits: Any = None
    _teacher: Any = None
    _teacher_fp: str = ""
    _teacher_state: Any = None
    _family: Any = None

    @property
    def cache_root(self) -> Path:
        options = dict(self.recipe.distill.options or {})
        root = options.get("cache_dir") or self.recipe.data.cache_dir or os.environ.get(
            "EDGE_KD_CACHE", Path.home() / ".cache" / "edge_kd")
        return Path(root).expanduser()

    def load_data(self) -> Any:
        if self._splits is None:
            from edge_kd.recipe import load_splits

            self._splits = load_splits(self.recipe.data)
        return self._splits

    @property
    def task(self) -> str:
        return "binary" if self.load_data().train.task == "binary" else "classification"

    def teacher(self) -> Any:
        """The build's one teacher: fitted once and shared by every target. Its weights are fingerprinted
        and kept right after the fit; a later call that finds them changed (a stage must never train or
        trace the shared model in place) puts the fitted weights back and says so, so every target
        distils from, and compares with, the same teacher."""
        from edge_kd.distill.cache import weights_fingerprint

        if self._teacher is None:
            from edge_kd.recipe import teacher_from_recipe

            self._teacher = teacher_from_recipe(self.recipe.teacher, self.load_data(), cache_dir=str(self.cache_root),
                                                seed=self.recipe.seed)
            self._teacher_fp = weights_fingerprint(self._teacher.model)
            self._teacher_state = {k: v.detach().clone() for k, v in self._teacher.model.state_dict().items()}
        elif weights_fingerprint(self._teacher.model) != self._teacher_fp:
            self.log("teacher: its weights changed after the fit; restoring the fitted weights")
            self._teacher.model.load_state_dict(self._teacher_state)
        return self._teacher

    def record_teacher(self, figures: dict[str, Any]) -> None:
        """Write the build's teacher (name, weights hash, PyTorch test metric) once, to
        ``<build>/_shared/teacher.json``; the per-target build.json files record the teacher measured
        through each runtime, whose numerics may differ in the last digits."""
        from edge_kd.pipeline import atomic_write_json

        path = self.shared_dir / TEACHER_RECORD
        if path.is_file():
            try:
                if json.loads(path.read_text()) == figures:
                    return
            except ValueError:
                pass
        atomic_write_json(path, figures)

    @property
    def teacher_fingerprint(self) -> str:
        """sha256 of the fitted teacher's weights (``edge_kd.distill.cache.weights_fingerprint``)."""
        self.teacher()
        return self._teacher_fp

    def student_data(self) -> tuple[Any, Any]:
        """(student family, StudentData) of the recipe, completed from the training data."""
        if self._family is None:
            from edge_kd.distill.run import make_student_family

            family, sdata = make_student_family(self.recipe, self.load_data().train)
            if family is None:  # family "teacher": the student reads the data as the teacher does
                sdata.prepare = self.teacher().prepare
            self._family = (family, sdata)
        return self._family

    def sibling_stage(self, name: str, key: str, own_root: Path) -> tuple[Path, dict[str, Any], dict[str, Any]] | None:
        """(folder, stage record, manifest) of a stage completed with the same cache key in another target's
        folder of this build (a stage whose result does not depend on the target is then copied, not recomputed)."""
        for manifest_path in sorted(self.shared_dir.parent.glob("*/build.json")):
            root = manifest_path.parent
            if root.resolve() == own_root.resolve():
                continue
            try:
                manifest = read_manifest(root)
            except Exception:  # noqa: BLE001 - a damaged sibling manifest only means no reuse
                continue
            for record in manifest.get("stages", []):
                if record.get("name") == name and record.get("cache_key") == key and \
                        record.get("status") in ("ok", "reused"):
                    return root, record, manifest
        return None

    def adopt(self, name: str, key: str, build: Any, record: dict[str, Any], folder: Path) -> bool:
        """Copy ``folder`` (relative to a build root) from a sibling target whose stage ``name`` completed
        with ``key``; fills ``record`` and registers the copied files. False when there is none."""
        found = self.sibling_stage(name, key, build.root)
        if found is None or not (found[0] / folder).is_dir():
            return False
        source_root, source, manifest = found
        dest = build.root / folder
        tmp = dest.with_name(dest.name + ".adopting")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source_root / folder, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)  # atomic: a crash leaves the old folder or the complete copy
        for entry in manifest.get("artifacts", []):
            rel = Path(entry["path"])
            if not rel.is_absolute() and rel.parts[:len(folder.parts)] == folder.parts and (build.root / rel).is_file():
                build.add_artifact(build.root / rel, role=entry["role"], format=entry["format"])
        record["details"] = dict(source.get("details") or {})
        record["outputs"] = dict(source.get("outputs") or {})
        record["reused_from"] = source_root.name
        record["status"] = "reused"
        self.log(f"{name}: same inputs as the completed stage for {source_root.name}; copied its result")
        return True

    def student_arrays(self, split: str, value: Any, indices: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        ds = getattr(self.load_data(), split)
        if indices is not None:
            ds = ds.subset(indices)
        _, sdata = self.student_data()
        return sdata.inputs(ds, value)

    def eval_indices(self, split: str, cap: int | None, seed: int = 0) -> np.ndarray:
        from edge_kd.data.splits import calibration_sample

        ds = getattr(self.load_data(), split)
        return calibration_sample(ds, cap, seed) if cap and cap < len(ds) else np.arange(len(ds))


def _rows(arrays: tuple[np.ndarray, ...], labels: np.ndarray) -> list[tuple[tuple[np.ndarray, ...], Any]]:
    """Per-sample (batch 1) inputs with labels: how a phone app calls the model."""
    return [(tuple(np.ascontiguousarray(a[i:i + 1]) for a in arrays), labels[i]) for i in range(len(labels))]


def _student_identity(spec_path: Path) -> tuple[Path, Path | None]:
    """What a student is for cache keys: its spec JSON and its weights file (the JSON names the file,
    not its bytes, so a retrained student with the same architecture must still change the key)."""
    weights = json.loads(spec_path.read_text()).get("weights")
    path = spec_path.parent / weights if weights else None
    return spec_path, (path if path is not None and path.is_file() else None)


def _load_student(spec_path: Path) -> Any:
    from edge_kd.models.spec import ModelSpec

    return ModelSpec.load(spec_path).build()


class BuildStage(Stage):
    """A stage of the build: it reads what the targets share (data, teacher) from one BuildContext."""

    def __init__(self, shared: BuildContext):
        self.shared = shared


# ---- distill ----------------------------------------------------------------------------------------
class DistillStage(BuildStage):
    name = "distill"
    requires = ("recipe", "target")
    provides = ("student_spec", "student_value")

    def cache_key(self, ctx: dict[str, Any]) -> str:
        from edge_kd.distill.run import TEACHER_FAMILY

        if ctx["recipe"].student.family == TEACHER_FAMILY:  # no sizing, no training: the same for every target
            return content_hash("build-distill-teacher-v1", _recipe_part(ctx["recipe"], "distill"))
        return content_hash("build-distill-v1", _recipe_part(ctx["recipe"], "distill"),
                            _target_part(ctx["target"], "budgets", "runtime", "quantization"))

    def load_cached(self, ctx, build, record):
        spec = build.root / STUDENT_SPEC
        student = (record.get("details") or {}).get("student", {})
        if spec.is_file() and (spec.parent / "student.safetensors").is_file() and "value" in student:
            return {"student_spec": Artifact(spec, "json", "student-spec"), "student_value": student["value"]}
        return None

    def run(self, ctx, build, record):
        from edge_kd.distill.run import run_distill

        if self.shared.adopt(self.name, record["cache_key"], build, record, STUDENT_SPEC.parent):
            return {"student_spec": Artifact(build.root / STUDENT_SPEC, "json", "student-spec"),
                    "student_value": record["details"]["student"]["value"]}
        details = run_distill(self.shared, ctx["recipe"], ctx["target"], build, record)
        return {"student_spec": Artifact(build.root / STUDENT_SPEC, "json", "student-spec"),
                "student_value": details["student"]["value"]}


# ---- prune -------------------------------------------------------------------------------------------
class PruneStage(BuildStage):
    name = "prune"
    requires = ("student_spec", "student_value", "target")
    provides = ("student_spec",)

    def cache_key(self, ctx):
        # The runtime matters only to a latency goal: targets sharing round_to share the pruned model.
        prune = ctx["recipe"].prune
        return content_hash("build-prune-v2", *_student_identity(ctx["student_spec"].path),
                            _recipe_part(ctx["recipe"], "prune"), prune.round_to or ctx["target"].pruning.round_to,
                            _target_part(ctx["target"], "runtime") if prune.goal == "latency" else None)

    def load_cached(self, ctx, build, record):
        spec = build.root / PRUNED_DIR / "student.json"
        return {"student_spec": Artifact(spec, "json", "student-spec")} if spec.is_file() else None

    def run(self, ctx, build, record):
        from edge_kd.models.spec import ModelSpec
        from edge_kd.prune.pruner import PruneConfig
        from edge_kd.prune.schedule import RecoveryConfig, RecoveryData
        from edge_kd.prune.serialize import save_pruned

        if self.shared.adopt(self.name, record["cache_key"], build, record, Path(PRUNED_DIR)):
            return {"student_spec": Artifact(build.root / PRUNED_DIR / "student.json", "json", "student-spec")}
        cfg, target, value = ctx["recipe"].prune, ctx["target"], ctx["student_value"]
        spec = ModelSpec.load(ctx["student_spec"].path)
        model = spec.build()
        example = spec.example_inputs()
        splits = self.shared.load_data()
        metric = "roc_auc" if self.shared.task == "binary" else "accuracy"
        data = RecoveryData(self.shared.student_arrays("train", value), splits.train.labels,
                            self.shared.student_arrays("val", value), splits.val.labels, metric)
        distill_cfg = ctx["recipe"].distill
        recovery = RecoveryConfig(epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, batch_size=int(distill_cfg.batch_size),
                                  temperature=distill_cfg.temperature, alpha=distill_cfg.alpha,
                                  device=self.shared.device)
        config = PruneConfig(goal=cfg.goal, amount=cfg.amount, criterion=cfg.criterion,
                             round_to=cfg.round_to or target.pruning.round_to, protect=tuple(cfg.protect),
                             steps=cfg.steps)
        result = prune_entry(model, example, config, target, recovery=recovery, recovery_data=data,
                             measure_latency=cfg.goal == "latency",
                             on_step=lambda r, _m: self.shared.log(
                                 f"prune step {r.step}: MACs x{1 / r.macs_ratio:.2f}, {metric} "
                                 f"{r.accuracy_before_recovery if r.accuracy_before_recovery is not None else r.accuracy}"
                                 f" -> {r.accuracy} ({r.seconds:.0f} s)"))
        path = save_pruned(result.model, spec, build.root / PRUNED_DIR, name="student")
        record["details"] = result.to_dict()
        if not result.goal_met:
            self.shared.log(f"prune: goal not met (missed by {result.missed_by}); continuing with the best model")
        return {"student_spec": Artifact(path, "json", "student-spec")}


def latency_probe(example: tuple, target: Any) -> Callable[[Any], float]:
    """``fn(model) -> p50 ms``: the model exported for ``target`` and benchmarked in its runtime."""
    def latency(model: Any) -> float:
        from edge_kd.prune.schedule import runtime_latency

        return float(runtime_latency(model, example, target)["latency_ms"]["p50"])

    return latency


def prune_entry(model: Any, example: tuple, config: Any, target: Any, *, recovery: Any, recovery_data: Any,
                measure_latency: bool = True, on_step: Callable | None = None) -> Any:
    """The prune step, shared by ``edge-kd prune`` and the build's prune stage: ``run_schedule`` toward
    ``config``'s goal, each step recovered by the distillation trainer from the unpruned model on
    ``recovery_data`` (None: no recovery) and judged on its validation rows; with ``measure_latency``
    every step is exported and benchmarked in ``target``'s runtime. Returns the ``ScheduleResult``."""
    from edge_kd.prune.schedule import run_schedule

    return run_schedule(model, example, config, teacher=model, recovery=recovery, recovery_data=recovery_data,
                        evaluate=recovery_data.evaluate if recovery_data is not None else None,
                        latency=latency_probe(example, target) if measure_latency else None, on_step=on_step)


# ---- quantize + export ----------------------------------------------------------------------------
class QuantizeStage(BuildStage):
    """Static int8 calibrated on stratified training rows (or fp32 export when the profile says so)."""

    name = "quantize"
    requires = ("student_spec", "student_value", "target")
    provides = ("artifact",)

    def cache_key(self, ctx):
        from edge_kd.runtimes.registry import runtime_spec

        # Bumped per runtime when its int8 export writes something different: older builds are redone.
        revision = runtime_spec(ctx["target"].runtime.name).export_revision
        return content_hash(f"build-quantize-v{revision}", *_student_identity(ctx["student_spec"].path),
                            _recipe_part(ctx["recipe"], "quantize"),
                            _target_part(ctx["target"], "runtime", "quantization", "budgets"))

    def load_cached(self, ctx, build, record):
        primary = record.get("outputs", {}).get("primary")
        if primary and (build.root / primary).is_file():
            return {"artifact": Artifact(build.root / primary, Path(primary).suffix.lstrip("."), "model")}
        return None

    def run(self, ctx, build, record):
        from edge_kd.data.splits import calibration_sample

        recipe, target, value = ctx["recipe"], ctx["target"], ctx["student_value"]
        model = _load_student(ctx["student_spec"].path)
        from edge_kd.models.spec import ModelSpec

        example = ModelSpec.load(ctx["student_spec"].path).example_inputs()
        splits = self.shared.load_data()
        out = build.root / ARTIFACT_DIR
        if out.exists():
            shutil.rmtree(out)  # ours: a previous attempt of this stage
        # ... and so are its records (the shipped file's name depends on which candidate won).
        build.manifest["artifacts"] = [a for a in build.manifest.get("artifacts", [])
                                       if not str(a.get("path", "")).startswith(ARTIFACT_DIR + "/")]
        mode = recipe.quantize.mode or target.quantization.mode
        if mode == "int8" and recipe.quantize.enabled:
            n = recipe.quantize.calibration_samples or target.quantization.calibration_samples
            idx = calibration_sample(splits.train, n, recipe.seed)
            calib_x = self.shared.student_arrays("train", value, idx)
            calibration = [s for s, _ in _rows(calib_x, splits.train.labels[idx])]
            self.shared.log(f"quantize: int8 for {target.runtime.name}, calibrating on {len(calibration)} rows "
                            "(then checking accuracy through the runtime)")
            eval_idx = self.shared.eval_indices("val", 300, recipe.seed)
            eval_x = self.shared.student_arrays("val", value, eval_idx)
            result = quantize_entry(model, example, target, calibration, out, build, record,
                                    method=recipe.quantize.method,
                                    eval_samples=_rows(eval_x, splits.val.labels[eval_idx]), seed=recipe.seed,
                                    bundle_extra_bytes=_bundle_extras(build))
            selection = result.report["selection"]
            self.shared.log(f"quantize: ships {selection['shipped']} ({Path(result.primary).name}): "
                            f"{selection['reason']}")
        else:
            result = export_entry(model, example, target, out, build, record)
        return {"artifact": Artifact(Path(result.primary), Path(result.primary).suffix.lstrip("."), "model")}


def _stored_tensors(path: Path) -> list[dict[str, Any]]:
    from edge_kd.runtimes import open_runner

    try:
        return open_runner(path).tensors()
    except Exception:  # the breakdown is informative; never fail a build over it
        return []


def export_entry(model: Any, example: tuple, target: Any, out: Path, build: Any, record: dict[str, Any], *,
                 name: str = "model", check_parity: bool = True, atol: float | None = None,
                 input_names: list[str] | None = None) -> Any:
    """The export step, shared by ``edge-kd export`` and the build's quantize stage when the target (or
    the recipe) wants fp32: export, check in the runtime, record every file (the shipped one with its
    stored tensors) and the operator list. Returns the ``ExportResult``."""
    from edge_kd.export import export_model

    result = export_model(model, example, target, out, name=name, check_parity=check_parity, atol=atol,
                          input_names=input_names)
    _replace_model_records(build, [a.path for a in result.artifacts])
    for artifact in result.artifacts:
        extra = {"tensors": result.tensors} if artifact.role == "model" else {}
        build.add_artifact(artifact.path, role=artifact.role, format=artifact.format, **extra)
    record["outputs"] = {"primary": build.relative(result.primary),
                         "files": [a.path.name for a in result.artifacts]}
    record["details"] = {"mode": "fp32", "parity": result.parity, "ops": result.ops, "runtime": result.runtime,
                         "runtime_version": result.runtime_version}
    build.update_metrics(ops=result.ops)
    return result


def quantize_entry(model: Any, example: tuple, target: Any, calibration: list, out: Path, build: Any,
                   record: dict[str, Any], **options: Any) -> Any:
    """The int8 step, shared by ``edge-kd quantize`` and the build's quantize stage: ``quantize_model``
    (``options`` are its keyword arguments), then every file recorded with its role (the shipped model
    with its stored tensors, the report, the int8 sources, the fp32 reference) and the report as the
    stage's details. Returns the ``QuantizeResult``."""
    import contextlib
    import sys

    from edge_kd.quantize import quantize_model

    # Converters print progress on stdout; keep stdout for the commands' own output (--json must parse).
    with contextlib.redirect_stdout(sys.stderr):
        result = quantize_model(model, example, target, calibration, out, **options)
    _replace_model_records(build, [result.primary, *result.artifacts, *result.fp32_artifacts])
    # The shipped file is whichever candidate won (fp32, static int8 or the runtime's other scheme).
    precision = result.shipped
    build.add_artifact(result.primary, role="model", format=target.primary_format, precision=precision,
                       tensors=_stored_tensors(result.primary))
    for path in result.artifacts:
        if path == result.primary:
            continue
        if path.suffix == ".json":
            build.add_artifact(path, role="quantization-report", format="json")
        elif path.suffix == ".config":
            build.add_artifact(path, role="required-operators", format="config")
        else:
            build.add_artifact(path, role="model-source", format=path.suffix.lstrip("."), precision=precision)
    if precision != "fp32":  # when fp32 ships, the reference files are the shipped ones
        for path in result.fp32_artifacts:
            if path.suffix != ".config":
                build.add_artifact(path, role="fp32-reference", format=path.suffix.lstrip("."), precision="fp32")
    record["outputs"] = {"primary": build.relative(result.primary),
                         "files": [p.name for p in result.artifacts]}
    record["details"] = result.report
    return result


def _replace_model_records(build: Any, keep: list[Path]) -> None:
    """A new export or quantization replaces the build's model files (another target, another --name,
    an earlier attempt) instead of adding to them: the bundle must count the shipped model once. Old
    files are deleted only when they still hold the bytes the build recorded (``remove_replaced``)."""
    from edge_kd.pipeline.paths import remove_replaced

    remove_replaced(build.root, build.drop_artifacts(roles=MODEL_ROLES), keep=keep)


def _bundle_extras(build: Any) -> tuple[int, int]:
    """(bytes, gzip bytes) of the files the app ships beside the model (preprocessing assets)."""
    from edge_kd.pipeline.records import ROLE_MODEL, bundle_artifacts

    extra = [a for a in bundle_artifacts(build.manifest) if a.get("role") != ROLE_MODEL]
    return sum(int(a.get("bytes") or 0) for a in extra), sum(int(a.get("gzip_bytes") or 0) for a in extra)


# ---- bundle ------------------------------------------------------------------------------------
class BundleStage(Stage):
    """The app's preprocessing asset with the artifact's I/O contract, and golden test vectors run
    through the artifact (see :mod:`edge_kd.bundle`)."""

    name = "bundle"
    requires = ("artifact", "student_value", "target")
    provides = ("bundle",)

    def __init__(self, shared: BuildContext):
        self.shared = shared

    def cache_key(self, ctx):
        return content_hash("build-bundle-v1", ctx["artifact"].path, ctx["student_value"],
                            _recipe_part(ctx["recipe"]))

    def load_cached(self, ctx, build, record):
        from edge_kd.bundle import MANIFEST_KEY

        from edge_kd.bundle.make import demote_student_assets

        bundle = build.manifest.get(MANIFEST_KEY)
        paths = [bundle[k]["path"] for k in ("artifact", "preprocessing", "vectors")] if bundle else []
        if not paths or not all((build.root / p).is_file() for p in paths):
            return None
        demote_student_assets(build, bundle["preprocessing"]["path"])  # a re-run distill registered its own
        return {"bundle": bundle}

    def run(self, ctx, build, record):
        from edge_kd.bundle.make import asset_maker, raw_samples, vector_count, write_bundle

        value = ctx["student_value"]
        test = self.shared.load_data().test
        _, sdata = self.shared.student_data()
        idx = self.shared.eval_indices("test", vector_count(test), ctx["recipe"].seed)
        prepared = sdata.prepare(test) if sdata.prepare is not None else test
        maker = asset_maker(prepared, text_spec=sdata.text_spec(value) if sdata.kind == "text" else None)
        inputs = [x for x, _ in _rows(self.shared.student_arrays("test", value, idx), test.labels[idx])]
        bundle = write_bundle(build, ctx["artifact"].path, maker, raw_samples(test, idx), inputs)
        record["details"] = {"contract": bundle["contract"], "vectors": bundle["vectors"]["count"],
                             "tolerance": bundle["tolerance"]}
        record["outputs"] = {"preprocessing": bundle["preprocessing"]["path"], "vectors": bundle["vectors"]["path"]}
        return {"bundle": bundle}


# ---- bench --------------------------------------------------------------------------------------
class BenchStage(BuildStage):
    """Latency (emulated phone core) and the task metric through the runtime, for the student and
    for the fp32 teacher exported to the same runtime (cached per runtime in the shared folder)."""

    name = "bench"
    requires = ("artifact", "student_value", "target")
    provides = ("metrics",)

    def cache_key(self, ctx):
        return content_hash("build-bench-v1", ctx["artifact"].path, _recipe_part(ctx["recipe"], "bench"),
                            _target_part(ctx["target"], "runtime", "bench", "ops"))

    def load_cached(self, ctx, build, record):
        metrics = build.manifest.get("metrics") or {}
        return {"metrics": metrics} if metrics.get("task_metric") and build.manifest.get("teacher") else None

    def run(self, ctx, build, record):
        from edge_kd.bench import benchmark_artifact, evaluate_artifact

        recipe, target, value = ctx["recipe"], ctx["target"], ctx["student_value"]
        splits = self.shared.load_data()
        task = self.shared.task
        idx = self.shared.eval_indices("test", recipe.bench.eval_samples, recipe.seed)
        labels = splits.test.labels[idx]
        log = self.shared.log
        log(f"bench: {ctx['artifact'].path.name} in {target.runtime.name} ({len(idx)} test rows, pinned core)")
        student_eval = evaluate_artifact(ctx["artifact"].path, _rows(self.shared.student_arrays("test", value, idx),
                                                                      labels), task=task,
                                         threads=target.runtime.threads)
        student_bench = benchmark_artifact(ctx["artifact"].path, target)
        teacher_path = self._teacher_artifact(target)
        teacher = self.shared.teacher()
        prepared = teacher.prepare(splits.test)
        teacher_eval = evaluate_artifact(teacher_path, _rows(prepared.inputs(idx), labels), task=task,
                                         threads=target.runtime.threads)
        teacher_bench = benchmark_artifact(teacher_path, target)
        metrics = {**_bench_fields(student_bench), **_eval_fields(student_eval)}
        teacher_metrics = {**_bench_fields(teacher_bench), **_eval_fields(teacher_eval),
                           "artifact": teacher_bench.get("artifact"), "name": teacher.name}
        build.manifest["metrics"] = metrics
        build.manifest["teacher"] = teacher_metrics
        build.save()
        record["details"] = {"eval_rows": int(len(idx)), "student": student_eval, "teacher": teacher_eval}
        return {"metrics": metrics}

    def _teacher_artifact(self, target: Any) -> Path:
        """The fp32 teacher exported for this runtime, built once per teacher and runtime."""
        from edge_kd.export import export_model
        from edge_kd.pipeline import atomic_write_json

        teacher = self.shared.teacher()
        fp = self.shared.teacher_fingerprint[:16]
        folder = self.shared.shared_dir / f"teacher-{target.runtime.name}-{fp}"
        stamp = folder / "export.json"
        if stamp.is_file():
            import json

            primary = folder / json.loads(stamp.read_text())["primary"]
            if primary.is_file():
                return primary
        self.shared.log(f"bench: exporting the fp32 teacher to {target.runtime.name} (once per runtime)")
        # A copy: exporters trace (and some rewrite) the module they get; the build's teacher stays as fitted.
        import copy

        result = export_model(copy.deepcopy(teacher.model), teacher.example_inputs(), target, folder, name="teacher")
        atomic_write_json(stamp, {"primary": result.primary.name, "teacher": teacher.name, "weights": fp})
        return result.primary


def _bench_fields(bench: dict[str, Any]) -> dict[str, Any]:
    keys = ("latency_ms", "load_ms", "peak_rss_mb", "runtime", "runtime_version", "threads", "pinned_core", "ops")
    return {k: bench[k] for k in keys if k in bench}


def _eval_fields(ev: dict[str, Any]) -> dict[str, Any]:
    out = {"task_metric": ev["task_metric"], "eval_rows": ev.get("n")}
    for k in ("accuracy", "roc_auc"):
        if ev.get(k) is not None:
            out[k] = ev[k]
    return out


# ---- gate ------------------------------------------------------------------------------------------
class GateStage(Stage):
    """The release gate on the recorded numbers; writes ``report.md`` beside build.json."""

    name = "gate"
    requires = ("metrics", "target")
    provides = ("gate",)

    def run(self, ctx, build, record):
        from edge_kd.gate import evaluate
        from edge_kd.pipeline import atomic_write_text

        report = evaluate(build)
        build.manifest["gate"] = report.to_dict()
        atomic_write_text(build.root / "report.md", report.to_markdown())
        record["details"] = {"passed": report.passed, "failed": [c.name for c in report.failed]}
        return {"gate": report.passed}


def stage_named(name: str, shared: BuildContext) -> Stage:
    """One stage of the build by name (what a single-stage command runs)."""
    classes = {c.name: c for c in (DistillStage, PruneStage, QuantizeStage, BenchStage, GateStage)}
    if name not in classes:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(classes)}")
    return classes[name](shared) if issubclass(classes[name], BuildStage) else classes[name]()


def make_stages(recipe: Any, shared: BuildContext) -> list[Stage]:
    stages: list[Stage] = [DistillStage(shared)]
    if recipe.prune.enabled:
        stages.append(PruneStage(shared))
    stages += [QuantizeStage(shared), BundleStage(shared), BenchStage(shared), GateStage()]
    return stages
