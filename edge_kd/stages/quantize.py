"""The quantize stage and the entry functions it shares with ``edge-kd export`` / ``edge-kd quantize``
(``export_entry``, ``quantize_entry``): calibrate, build the candidates, ship the one the profile's
``[quantization] ship`` picks, and record every file with its role.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edge_kd.pipeline import Artifact, content_hash
from edge_kd.pipeline.manifest import MODEL_ROLES
from edge_kd.stages.context import (ARTIFACT_DIR, BuildStage, _load_student,
                                    _recipe_part, _rows, _student_identity, _target_part)


class QuantizeStage(BuildStage):
    """Static int8 calibrated on stratified training rows (or fp32 export when the profile says so)."""

    name = "quantize"
    requires = ("student_spec", "student_value", "target")
    provides = ("artifact",)

    def cache_key(self, ctx):
        from edge_kd.runtimes.registry import runtime_spec

        # Bumped per runtime when its int8 export writes something different: older builds are redone.
        revision = runtime_spec(ctx["target"].runtime.name).export_revision
        # (also bumped when the stage's own decision changes: the teacher's line, float_modules, equal
        # metrics going to the fastest candidate)
        return content_hash(f"build-quantize-v{revision}", "teacher-referenced-budget", "float-modules",
                            "ties-to-fastest",
                            *_student_identity(ctx["student_spec"].path),
                            _recipe_part(ctx["recipe"], "quantize"),
                            _target_part(ctx["target"], "runtime", "quantization", "budgets"),
                            # The ARM core whose estimates decide the ship choice (none: the host's timings,
                            # and the key of every build made before the choice could be emulated).
                            *([f"ship-core:{ctx['target'].ship_core}"] if ctx["target"].ship_core else []),
                            *([f"ship:{ship}"] if (ship := _ship_policy(ctx["recipe"], ctx["target"])[0]) else []))

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
            calib_x = self.shared.student_arrays("train", value, idx, family=ctx.get("student_family"))
            calibration = [s for s, _ in _rows(calib_x, splits.train.labels[idx])]
            self.shared.log(f"quantize: int8 for {target.runtime.name}, calibrating on {len(calibration)} rows "
                            "(then checking accuracy through the runtime)")
            eval_idx = self.shared.eval_indices("val", recipe.quantize.eval_samples or None, recipe.seed)
            eval_x = self.shared.student_arrays("val", value, eval_idx, family=ctx.get("student_family"))
            task = self.shared.task if self.shared.task in ("regression", "ranking") else "classification"
            ship, ship_from = _ship_policy(recipe, target)
            result = quantize_entry(model, example, target, calibration, out, build, record,
                                    method=recipe.quantize.method, ship=ship, ship_from=ship_from,
                                    eval_samples=_rows(eval_x, splits.val.labels[eval_idx]), seed=recipe.seed,
                                    bundle_extra_bytes=_bundle_extras(build), task=task,
                                    reference_metric=self._teacher_reference(task, splits.val.labels, eval_idx))
            selection = result.report["selection"]
            self.shared.log(f"quantize: ships {selection['shipped']} ({Path(result.primary).name}): "
                            f"{selection['reason']}")
        else:
            result = export_entry(model, example, target, out, build, record)
        return {"artifact": Artifact(Path(result.primary), Path(result.primary).suffix.lstrip("."), "model")}

    def _teacher_reference(self, task: str, labels: Any, rows: Any) -> float | None:
        """The teacher's metric on the validation rows the candidates are judged on. The gate allows the
        shipped student ``accuracy_drop`` below the teacher, so the quantize stage holds every candidate to
        that same line (and to ``accuracy_drop`` below the fp32 student): an int8 artifact the fp32
        student's own slack let through would fail the gate on the test split. None for a binary task (the
        gate's ROC-AUC is not the top-1 the candidates are compared by)."""
        if self.shared.task == "binary":
            return None
        import numpy as np

        from edge_kd.metrics import metric_value

        metric = {"regression": "wape", "ranking": "recall@10"}.get(task, "accuracy")
        outputs = self.shared.teacher_outputs("val")
        return float(metric_value(outputs[rows], np.asarray(labels)[rows], metric))


def _ship_policy(recipe: Any, target: Any) -> tuple[str | None, str | None]:
    """The ship policy of this build: the profile's, except that a recipe asking for the smallest student
    (``[student] objective = "smallest-within-drop"``) ships the smallest candidate within the budgets
    rather than the fastest (the fp32 file of a student sized in int8 bytes can be 3-4x larger), unless
    the profile forces ``int8`` or ``fp32``."""
    if recipe.student.objective == "smallest-within-drop" and target.quantization.ship == "fastest-within-budget":
        return "smallest-within-budget", "recipe: [student] objective = 'smallest-within-drop'"
    return None, None


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
