"""Lower-is-better task metrics (forecast errors: WAPE, MAE) in the gate: the allowed degradation
points up, and a teacher measured in Python only (no runtime artifact) is judged, not faked."""
from __future__ import annotations

import pytest

from edge_kd.gate import evaluate
from edge_kd.targets import load_target


def _profile_with(build, **budgets):
    import json

    data = json.loads((build / "build.json").read_text())["target"]
    data["budgets"] = {**data["budgets"], **budgets}
    from edge_kd.targets import TargetProfile

    return TargetProfile.from_dict(data, source="test")


@pytest.mark.parametrize("student,teacher,passed", [
    (0.5300, 0.5200, True),   # 1pt worse: exactly the allowed degradation of "1pt"
    (0.5301, 0.5200, False),  # beyond it
    (0.5000, 0.5200, True),   # better than the teacher (lower error)
    (0.5101, 0.5200, True),
])
def test_wape_allowed_degradation_absolute(make_build, student, teacher, passed):
    check = evaluate(make_build(metric=student, teacher_metric=teacher, metric_name="wape")).check("accuracy.drop")
    assert check.passed is passed, check.reason
    assert check.limit == pytest.approx(0.53)
    assert check.comparator == "<="
    if not passed:
        assert "lower is better" in check.reason and "over by" in check.reason


def test_wape_relative_degradation(make_build):
    build = make_build(metric=0.535, teacher_metric=0.52, metric_name="wape")
    # 3% of 0.52 allows up to 0.5356: 0.535 passes; 2% (0.5304) does not.
    assert evaluate(build, target=_profile_with(build, accuracy_drop="3%")).check("accuracy.drop").passed
    check = evaluate(build, target=_profile_with(build, accuracy_drop="2%")).check("accuracy.drop")
    assert not check.passed and check.limit == pytest.approx(0.52 * 1.02)


def test_higher_is_better_metric_keeps_its_direction(make_build):
    # The same numbers as accuracy: 0.5301 vs 0.52 is better, not worse.
    assert evaluate(make_build(metric=0.5301, teacher_metric=0.52)).check("accuracy.drop").passed
    assert not evaluate(make_build(metric=0.5099, teacher_metric=0.52)).check("accuracy.drop").passed


def test_teacher_without_runtime_artifact(make_build, fx):
    build = make_build(metric=0.52, teacher_metric=0.515, metric_name="wape")

    def python_teacher(m):
        m["teacher"].pop("latency_ms", None)
        m["teacher"].update(measured_in="python (lightgbm 4.7.0)", artifact=None,
                            no_runtime_artifact="trees have no runtime artifact")
    fx.edit_manifest(build, python_teacher)
    report = evaluate(build)
    assert report.passed, [(c.name, c.reason) for c in report.failed]
    assert "measured in python (lightgbm" in report.check("accuracy.drop").reason
    assert report.summary["teacher_no_runtime_artifact"] is True
    assert report.summary["teacher_latency_ms"]["p90"] is None
    assert report.summary["task_metric"]["higher_is_better"] is False
    md = report.to_markdown()
    assert "wape" in md


@pytest.mark.parametrize("baseline,passed", [(0.52, True), (0.514, False), (0.53, True)])
def test_baseline_metric_loss_for_an_error_metric(make_build, fx, tmp_path, baseline, passed):
    build = make_build(metric=0.52, teacher_metric=0.52, metric_name="wape")

    def mutate(m):
        m["metrics"]["task_metric"]["value"] = baseline
    release = fx.baseline_of(build, tmp_path / "release", mutate)
    # Default tolerance 0.5pt: WAPE rising from 0.514 to 0.52 (0.6pt) is a loss beyond it.
    check = evaluate(build, baseline=release).check("baseline.metric_loss")
    assert check.passed is passed, check.reason


def test_report_shows_direction_and_na_latency(make_build, fx, tmp_path):
    from edge_kd.report import render

    build = make_build(metric=0.52, teacher_metric=0.515, metric_name="wape")
    fx.edit_manifest(build, lambda m: (m["teacher"].pop("latency_ms", None),
                                       m["teacher"].update(no_runtime_artifact="trees")))
    paths = render.write_report([build], tmp_path / "report")
    text = paths["markdown"].read_text()
    assert "lower is better" in text and "n/a (no runtime artifact)" in text


def test_profiles_load():  # the shipped profiles still parse their "1pt" budgets for both directions
    drop = load_target("ort-mobile").budgets.accuracy_drop
    assert drop.limit(0.5, True) == pytest.approx(0.49) and drop.limit(0.5, False) == pytest.approx(0.51)
