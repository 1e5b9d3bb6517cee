"""The distill stage: a student sized to the target's budget, distilled from the build's one teacher
(the work is ``edge_kd.distill.run.run_distill``, which ``edge-kd distill`` runs too).
"""
from __future__ import annotations

from typing import Any

from edge_kd.pipeline import Artifact, content_hash
from edge_kd.stages.context import STUDENT_SPEC, BuildStage, _recipe_part, _target_part


class DistillStage(BuildStage):
    name = "distill"
    requires = ("recipe", "target")
    provides = ("student_spec", "student_value", "student_family")

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
            return self._outputs(build, student)
        return None

    def run(self, ctx, build, record):
        from edge_kd.distill.run import run_distill

        if self.shared.adopt(self.name, record["cache_key"], build, record, STUDENT_SPEC.parent):
            return self._outputs(build, record["details"]["student"])
        details = run_distill(self.shared, ctx["recipe"], ctx["target"], build, record)
        return self._outputs(build, details["student"])

    @staticmethod
    def _outputs(build: Any, student: dict[str, Any]) -> dict[str, Any]:
        # The family the stage trained (with ``text_auto``, the one it chose on validation): the later
        # stages read the data through that family's preprocessing.
        return {"student_spec": Artifact(build.root / STUDENT_SPEC, "json", "student-spec"),
                "student_value": student["value"], "student_family": student.get("family")}


# ---- prune -------------------------------------------------------------------------------------------
