"""The stages of ``edge-kd build``, each a :class:`~edge_kd.pipeline.Stage` with a contract.

    distill   requires recipe, target              provides student_spec, student_value, student_family
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

from typing import Any

from edge_kd.pipeline import Stage
from edge_kd.stages.bench import BenchStage
from edge_kd.stages.bundle import BundleStage
from edge_kd.stages.context import (ARTIFACT_DIR, PRUNED_DIR, STUDENT_SPEC, TEACHER_RECORD, BuildContext,
                                    BuildStage)
from edge_kd.stages.distill import DistillStage
from edge_kd.stages.gate import GateStage
from edge_kd.stages.prune import PruneStage, latency_probe, prune_entry
from edge_kd.stages.quantize import QuantizeStage, export_entry, quantize_entry


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


__all__ = ["ARTIFACT_DIR", "PRUNED_DIR", "STUDENT_SPEC", "TEACHER_RECORD", "BenchStage", "BuildContext", "BuildStage",
           "BundleStage", "DistillStage", "GateStage", "PruneStage", "QuantizeStage", "export_entry", "latency_probe",
           "make_stages", "prune_entry", "quantize_entry", "stage_named"]
