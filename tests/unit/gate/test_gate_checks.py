"""Each gate check passes on a good build and fails, with a reason, when its figure breaks."""
from __future__ import annotations

import pytest

from edge_kd.gate import evaluate
from edge_kd.targets import load_target

ALL_CHECKS = ["build.stages", "artifacts.integrity", "bundle.size", "bundle.download_size", "latency.p90",
              "accuracy.drop", "ops.policy", "artifact.choice"]


def test_good_build_passes_every_check(good_build):
    report = evaluate(good_build)
    assert [c.name for c in report.checks] == ALL_CHECKS
    assert report.passed, [(c.name, c.reason) for c in report.failed]
    assert report.target == "android-arm64-xnnpack" and report.target_source == "manifest"


@pytest.mark.parametrize("target", ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"])
def test_every_shipped_target_passes_with_its_bundle(make_build, target):
    report = evaluate(make_build(target=target))
    assert report.passed, [(c.name, c.reason) for c in report.failed]
    # ONNX Runtime: the intermediate .onnx (role export) is not part of the bundle.
    roles = sorted(a["role"] for a in report.bundle)
    assert roles == ["model", "preprocessing"]


def test_bundle_size_counts_model_and_preprocessing_only(make_build, fx):
    build = make_build(target="ort-mobile")
    manifest = __import__("json").loads((build / "build.json").read_text())
    arts = {a["role"]: a for a in manifest["artifacts"]}
    expected = arts["model"]["bytes"] + arts["preprocessing"]["bytes"]
    report = evaluate(build)
    assert report.check("bundle.size").value == expected
    assert report.check("bundle.download_size").value == arts["model"]["gzip_bytes"] + \
        arts["preprocessing"]["gzip_bytes"]


def test_bundle_size_over_budget_fails_with_overage(make_build):
    # width 24 makes a ~170 KiB model against a 64 KiB budget.
    report = evaluate(make_build(width=24))
    size = report.check("bundle.size")
    assert not size.passed and size.value > size.limit == 64 * 1024
    assert "over budget by" in size.reason
    assert not report.check("bundle.download_size").passed
    assert not report.passed


def test_size_exactly_on_budget_passes(make_build, fx):
    build = make_build()
    total = evaluate(build).check("bundle.size").value
    report = evaluate(build, target=_profile_with(build, artifact_size=total))
    assert report.check("bundle.size").passed
    report = evaluate(build, target=_profile_with(build, artifact_size=total - 1))
    assert not report.check("bundle.size").passed


def _profile_with(build, **budgets):
    import json

    from edge_kd.targets import TargetProfile

    data = json.loads((build / "build.json").read_text())["target"]
    data["budgets"] = {**data["budgets"], **budgets}
    return TargetProfile.from_dict(data)


def test_download_size_fails_alone_when_only_gzip_budget_is_tight(make_build):
    build = make_build()
    gz = evaluate(build).check("bundle.download_size").value
    report = evaluate(build, target=_profile_with(build, download_size=gz - 100))
    assert report.check("bundle.size").passed
    assert not report.check("bundle.download_size").passed
    assert [c.name for c in report.failed] == ["bundle.download_size"]


def test_latency_over_budget_fails(make_build):
    report = evaluate(make_build(latency=(10.0, 12.5, 14.0)))
    lat = report.check("latency.p90")
    assert not lat.passed and lat.value == 12.5 and lat.limit == 12.0
    assert "0.50 ms over" in lat.reason
    assert [c.name for c in report.failed] == ["latency.p90"]


def test_latency_on_budget_passes(make_build):
    assert evaluate(make_build(latency=(10.0, 12.0, 14.0))).check("latency.p90").passed


@pytest.mark.parametrize("metric,teacher,passed", [
    (0.908, 0.918, True),    # exactly the allowed 1pt drop
    (0.9079, 0.918, False),  # just beyond it
    (0.93, 0.918, True),     # student beats teacher
])
def test_accuracy_drop_absolute_points(make_build, metric, teacher, passed):
    check = evaluate(make_build(metric=metric, teacher_metric=teacher)).check("accuracy.drop")
    assert check.passed is passed
    assert check.limit == pytest.approx(0.908)
    assert check.comparator == ">="


def test_accuracy_drop_relative_budget(make_build):
    build = make_build(metric=0.90, teacher_metric=0.918)
    # 2% of 0.918 allows down to 0.89964: 0.90 passes; 1% (0.90882) does not.
    assert evaluate(build, target=_profile_with(build, accuracy_drop="2%")).check("accuracy.drop").passed
    check = evaluate(build, target=_profile_with(build, accuracy_drop="1%")).check("accuracy.drop")
    assert not check.passed and check.limit == pytest.approx(0.918 * 0.99)
    assert "short by" in check.reason


def test_accuracy_metric_name_mismatch_fails(make_build, fx):
    build = make_build()
    fx.edit_manifest(build, lambda m: m["teacher"]["task_metric"].update(name="f1"))
    check = evaluate(build).check("accuracy.drop")
    assert not check.passed and "not comparable" in check.reason


def test_op_policy_violation_fails_and_names_the_op(make_build):
    report = evaluate(make_build(target="tflite-int8", violations=["FlexErf", {"op": "Custom", "reason": "custom op"}]))
    ops = report.check("ops.policy")
    assert not ops.passed and ops.value == 2
    assert "FlexErf" in ops.reason and "Custom (custom op)" in ops.reason


def test_not_delegated_bookkeeping_ops_do_not_fail_xnnpack(make_build, fx):
    # ExecuTorch counts its memory-planning calls as not delegated; runtimes.ops excludes them from
    # the violations, and the gate follows that verdict.
    build = make_build()
    fx.edit_manifest(build, lambda m: m["metrics"]["ops"].update(not_delegated=3))
    assert evaluate(build).check("ops.policy").passed


def test_op_list_checked_against_another_policy_fails(make_build, fx):
    build = make_build(target="ort-mobile")
    fx.edit_manifest(build, lambda m: m["metrics"]["ops"].update(policy="any"))
    ops = evaluate(build).check("ops.policy")
    assert not ops.passed and "'ort-mobile-operators'" in ops.reason


def test_policy_any_passes_without_op_list(make_build, fx):
    build = make_build()
    fx.edit_manifest(build, lambda m: m["metrics"].pop("ops"))
    profile = load_target("android-arm64-xnnpack")
    import dataclasses

    from edge_kd.targets import OpPolicy

    profile = dataclasses.replace(profile, ops=OpPolicy("any"),
                                  budgets=_profile_with(build).budgets)
    assert evaluate(build, target=profile).check("ops.policy").passed


def test_failed_stage_fails_the_build_but_the_running_gate_stage_does_not(make_build, fx):
    build = make_build()

    def fail_bench(m):
        for s in m["stages"]:
            if s["name"] == "bench":
                s["status"] = "failed"
        m["stages"].append({"name": "gate", "status": "running"})

    fx.edit_manifest(build, fail_bench)
    check = evaluate(build).check("build.stages")
    assert not check.passed and "bench (failed)" in check.reason and "gate" not in check.reason


def test_target_override_replaces_budgets(make_build):
    # The recorded profile allows 64 KiB; the shipped profile (release policy) allows 4 MiB.
    build = make_build(width=24)
    assert not evaluate(build).check("bundle.size").passed
    report = evaluate(build, target="android-arm64-xnnpack")
    assert report.check("bundle.size").passed and report.check("bundle.size").limit == 4 * 1024 * 1024
    assert report.target_source.endswith("android-arm64-xnnpack.toml")


def test_breakdown_lists_largest_tensors_first_then_rest_and_files(make_build, fx):
    report = evaluate(make_build())
    bd = report.breakdown
    tensors = [i for i in bd["items"] if i["kind"] == "tensor"]
    assert len(tensors) == 10 and bd["tensor_count"] == 14
    sizes = [t["bytes"] for t in tensors]
    assert sizes == sorted(sizes, reverse=True)
    assert tensors[0]["name"] == "features.5.conv.weight" and tensors[0]["bytes"] == 32 * 32 * 9
    kinds = [i["kind"] for i in bd["items"]]
    assert kinds[10:] == ["rest", "overhead", "file"]
    assert sum(i["bytes"] for i in bd["items"]) == bd["total_bytes"] == report.check("bundle.size").value
    assert bd["items"][10]["count"] == 4


def test_breakdown_without_tensor_list_reports_files(make_build):
    bd = evaluate(make_build(with_tensors=False)).breakdown
    assert not bd["tensors_recorded"] and [i["kind"] for i in bd["items"]] == ["file", "file"]


def _with_choice(build, fx, shipped: str, p50: dict, *, policy: str = "fastest-within-budget",
                 within: dict | None = None):
    """Record the quantize stage's artifact choice: per-round medians around each candidate's p50."""
    pattern = [1.0, 1.03, 0.97, 1.02, 1.0, 0.98, 1.0, 1.04]

    def mutate(m):
        stage = next(s for s in m["stages"] if s["name"] == "quantize")
        stage["details"] = {"selection": {
            "policy": policy, "shipped": shipped, "noise_margin": 0.05, "reason": "test",
            "candidates": [{"name": n, "shipped": n == shipped, "p50_ms": v, "rounds_ms": [v * k for k in pattern],
                            "within_budget": (within or {}).get(n, True)} for n, v in p50.items()]}}
    return fx.edit_manifest(build, mutate)


def test_choice_fails_a_shipped_int8_slower_than_fp32(good_build, fx):
    _with_choice(good_build, fx, "int8", {"fp32": 0.017, "int8": 0.090})
    check = evaluate(good_build).check("artifact.choice")
    assert not check.passed and check.value == 1
    assert "fp32 meets every budget and runs 5.29x faster" in check.reason


def test_choice_passes_the_fastest_or_a_tie_or_a_forced_choice(good_build, fx):
    _with_choice(good_build, fx, "fp32", {"fp32": 0.017, "int8": 0.090})
    assert evaluate(good_build).check("artifact.choice").passed
    _with_choice(good_build, fx, "int8", {"fp32": 1.00, "int8": 1.03})  # within the 5% noise margin
    assert evaluate(good_build).check("artifact.choice").passed
    _with_choice(good_build, fx, "int8", {"fp32": 0.017, "int8": 0.090}, within={"fp32": False})  # fp32 too big
    assert evaluate(good_build).check("artifact.choice").passed
    _with_choice(good_build, fx, "int8", {"fp32": 0.017, "int8": 0.090}, policy="int8")
    check = evaluate(good_build).check("artifact.choice")
    assert check.passed and "ship = 'int8' in the profile" in check.reason


def test_choice_fails_closed_on_a_broken_record(good_build, fx):
    _with_choice(good_build, fx, "nothing", {"fp32": 0.017, "int8": 0.090})
    assert "0 candidates are marked shipped" in evaluate(good_build).check("artifact.choice").reason


def test_a_recorded_reference_baseline_is_gated(make_build, fx):
    # Next-purchase builds record the popularity baseline on the same rows (metrics.baseline).
    build = make_build()
    name = __import__("json").loads((build / "build.json").read_text())["metrics"]["task_metric"]["name"]
    value = __import__("json").loads((build / "build.json").read_text())["metrics"]["task_metric"]["value"]
    fx.edit_manifest(build, lambda m: m["metrics"].update(baseline={"name": "popularity", name: value / 2}))
    report = evaluate(build)
    names = [c.name for c in report.checks]
    assert names.index("metric.baseline") == names.index("accuracy.drop") + 1
    check = report.check("metric.baseline")
    assert check.passed and check.limit == pytest.approx(value / 2) and "2.00x the popularity" in check.reason
    fx.edit_manifest(build, lambda m: m["metrics"].update(baseline={"name": "popularity", name: value}))
    report = evaluate(build)
    assert not report.passed and "not above the popularity baseline" in report.check("metric.baseline").reason
