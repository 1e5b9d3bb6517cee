"""edge_kd.pipeline.records: the typed accessors the gate, the report and the build summary read build.json with."""
from __future__ import annotations

import pytest

from edge_kd.pipeline import records as rec
from edge_kd.targets import load_target


def _manifest(**extra):
    return {"schema_version": 1, "target": load_target("ort-mobile").to_dict(),
            "artifacts": [{"role": "model", "path": "m.ort", "bytes": 1000, "gzip_bytes": 600},
                          {"role": "preprocessing", "path": "labels.json", "bytes": 24, "gzip_bytes": 20},
                          {"role": "export", "path": "m.onnx", "bytes": 5000, "gzip_bytes": 4000}],
            "metrics": {"task_metric": {"name": "accuracy", "value": 0.9}, "latency_ms": {"p50": 1.5, "p90": 2.0}},
            "teacher": {"task_metric": {"name": "accuracy", "value": 0.95}}, **extra}


def test_bundle_total_counts_shipped_roles_only():
    m = _manifest()
    assert rec.bundle_total(m, "bytes") == (1024, 2)
    assert rec.bundle_total(m, "gzip_bytes") == (620, 2)


def test_bundle_total_refuses_a_partial_sum():
    m = _manifest()
    del m["artifacts"][1]["gzip_bytes"]
    with pytest.raises(rec.MissingFigure, match="labels.json.*gzip_bytes"):
        rec.bundle_total(m, "gzip_bytes")
    with pytest.raises(rec.MissingFigure, match="nothing to ship"):
        rec.bundle_total({"artifacts": [{"role": "preprocessing", "bytes": 1}]}, "bytes")


def test_figures_and_their_absence():
    m = _manifest()
    assert rec.task_metric(m, rec.TEACHER) == ("accuracy", 0.95)
    assert rec.number(m, rec.STUDENT, "latency_ms", "p90") == 2.0
    assert rec.optional(rec.number, m, rec.TEACHER, "latency_ms", "p50") is None
    with pytest.raises(rec.MissingFigure, match="metrics.load_ms is not recorded"):
        rec.number(m, "metrics", "load_ms")
    m["metrics"]["latency_ms"]["p90"] = float("nan")
    with pytest.raises(rec.MissingFigure, match="not finite"):
        rec.number(m, "metrics", "latency_ms", "p90")


def test_recorded_budgets_are_the_profiles_under_their_names():
    budgets = rec.recorded_budgets(_manifest())
    assert budgets.artifact_size == load_target("ort-mobile").budgets.artifact_size
    assert budgets.latency_p90 == 20.0
    assert rec.recorded_budgets({"target": None}) is None


def test_distill_figures_use_fixed_keys():
    stage, teacher = rec.metric_fields("roc_auc", test_pytorch=0.8, best_val=0.82, teacher_test=0.85)
    details = {**stage, "teacher": teacher}
    assert rec.distill_figures(details) == {"metric": "roc_auc", "test_pytorch": 0.8, "best_val": 0.82,
                                            "teacher_test": 0.85}
    # the keys named after the metric stay for build.json readers written before the fixed keys
    assert details["test_roc_auc_pytorch"] == 0.8 and teacher["test_roc_auc"] == 0.85


def test_stage_record_and_failed_checks():
    m = _manifest(stages=[{"name": "distill", "status": "ok"}],
                  gate={"passed": False, "checks": [{"name": "bundle.size", "passed": False},
                                                    {"name": "latency.p90", "passed": True}]})
    assert rec.stage_record(m, "distill")["status"] == "ok" and rec.stage_record(m, "prune") is None
    assert rec.failed_checks(m) == ["bundle.size"]
