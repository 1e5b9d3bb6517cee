"""Comparison with the last release: growth in size and latency, loss in the task metric."""
from __future__ import annotations

import pytest

from edge_kd.errors import InputError
from edge_kd.gate import Tolerances, evaluate
from edge_kd.gate.tolerances import parse_latency_tolerance, parse_metric_tolerance, parse_size_tolerance

BASELINE_CHECKS = ["baseline.size_growth", "baseline.metric_loss", "baseline.latency_growth"]


def _baseline(fx, build, tmp_path, **changes):
    def mutate(m):
        for a in m["artifacts"]:
            if a["role"] == "model" and "model_bytes" in changes:
                a["bytes"] = changes["model_bytes"]
        if "metric" in changes:
            m["metrics"]["task_metric"]["value"] = changes["metric"]
        if "p90" in changes:
            m["metrics"]["latency_ms"]["p90"] = changes["p90"]
        if "target" in changes:
            m["target"]["name"] = changes["target"]
    return fx.baseline_of(build, tmp_path / "release", mutate)


def test_identical_baseline_passes_all_comparisons(good_build, fx, tmp_path):
    report = evaluate(good_build, baseline=_baseline(fx, good_build, tmp_path))
    assert [c.name for c in report.checks[-3:]] == BASELINE_CHECKS
    assert report.passed
    assert report.check("baseline.size_growth").value == 0.0
    assert report.tolerances == {"max_size_growth": "5%", "max_metric_loss": "0.5pt", "max_latency_growth": "10%"}


def test_baseline_needs_only_its_build_json(good_build, fx, tmp_path):
    base = _baseline(fx, good_build, tmp_path)
    assert sorted(p.name for p in base.parent.iterdir()) == ["build.json"]
    assert evaluate(good_build, baseline=base.parent).passed


def test_size_growth_beyond_tolerance_fails(good_build, fx, tmp_path):
    cur = evaluate(good_build).check("bundle.size").value
    model = next(a for a in evaluate(good_build).bundle if a["role"] == "model")["bytes"]
    # Baseline 10% smaller in total: growth ~11% > 5%.
    shrink = int(cur * 0.1)
    report = evaluate(good_build, baseline=_baseline(fx, good_build, tmp_path, model_bytes=model - shrink))
    check = report.check("baseline.size_growth")
    assert not check.passed and check.unit == "fraction"
    assert check.value == pytest.approx(shrink / (cur - shrink))
    assert "grows more than the allowed 5%" in check.reason


def test_size_growth_absolute_tolerance(good_build, fx, tmp_path):
    model = next(a for a in evaluate(good_build).bundle if a["role"] == "model")["bytes"]
    base = _baseline(fx, good_build, tmp_path, model_bytes=model - 1000)
    assert not evaluate(good_build, baseline=base, tolerances={"max_size_growth": "999B"}).passed
    report = evaluate(good_build, baseline=base, tolerances={"max_size_growth": "1000B"})
    assert report.check("baseline.size_growth").passed and report.check("baseline.size_growth").unit == "bytes"


@pytest.mark.parametrize("baseline_metric,tolerance,passed", [
    (0.917, "0.5pt", True),     # loses exactly 0.5pt
    (0.9171, "0.5pt", False),   # loses 0.51pt
    (0.917, "0.2pt", False),
    (0.917, "1%", True),        # 1% of 0.917 = 0.917pt
    (0.90, "0.5pt", True),      # improved
])
def test_metric_loss(good_build, fx, tmp_path, baseline_metric, tolerance, passed):
    # good_build's metric is 0.912
    report = evaluate(good_build, baseline=_baseline(fx, good_build, tmp_path, metric=baseline_metric),
                      tolerances={"max_metric_loss": tolerance})
    assert report.check("baseline.metric_loss").passed is passed


@pytest.mark.parametrize("baseline_p90,tolerance,passed", [
    (9.5, "10%", True), (8.7, "10%", True), (8.6, "10%", False), (8.0, "2ms", True), (7.4, "2ms", False),
])
def test_latency_growth(good_build, fx, tmp_path, baseline_p90, tolerance, passed):
    # good_build's p90 is 9.5 ms
    report = evaluate(good_build, baseline=_baseline(fx, good_build, tmp_path, p90=baseline_p90),
                      tolerances={"max_latency_growth": tolerance})
    assert report.check("baseline.latency_growth").passed is passed


def test_baseline_for_another_target_is_bad_input(good_build, fx, tmp_path):
    with pytest.raises(InputError, match="baseline is for target 'tflite-int8'"):
        evaluate(good_build, baseline=_baseline(fx, good_build, tmp_path, target="tflite-int8"))


def test_baseline_missing_figures_fail_closed(good_build, fx, tmp_path):
    def strip(m):
        del m["metrics"]["latency_ms"]
        del m["metrics"]["task_metric"]
        m["artifacts"] = []
    base = fx.baseline_of(good_build, tmp_path / "release", strip)
    report = evaluate(good_build, baseline=base)
    for name in BASELINE_CHECKS:
        check = report.check(name)
        assert not check.passed and check.reason.startswith("baseline:"), check


def test_baseline_of_newer_schema_is_bad_input(good_build, fx, tmp_path):
    base = fx.baseline_of(good_build, tmp_path / "release", lambda m: m.update(schema_version=99))
    with pytest.raises(InputError, match="schema_version 99"):
        evaluate(good_build, baseline=base)


def test_tolerance_parsing_golden_values():
    assert parse_size_tolerance("5%").kind == "relative" and parse_size_tolerance("5%").value == 0.05
    assert parse_size_tolerance("64KiB").value == 65536.0
    assert parse_latency_tolerance("10%").value == pytest.approx(0.10)
    assert parse_latency_tolerance("0.5s").value == 500.0
    assert parse_metric_tolerance("0.5pt").value == pytest.approx(0.005)
    assert parse_metric_tolerance("2%").kind == "relative"
    tol = parse_size_tolerance("5%")
    assert tol.allowed(2000) == pytest.approx(100)
    for bad, parser in [("5", parse_size_tolerance), ("fast", parse_latency_tolerance), ("12", parse_latency_tolerance),
                        ("0.5", parse_metric_tolerance), ("-1%", parse_size_tolerance)]:
        with pytest.raises(ValueError):
            parser(bad)
    with pytest.raises(InputError, match="unknown tolerance"):
        Tolerances.from_mapping({"max_speed": "1%"})
    with pytest.raises(InputError, match="max-latency-growth"):
        Tolerances.from_mapping({"max_latency_growth": "12"})
