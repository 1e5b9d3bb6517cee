"""The gate fails CLOSED: missing or unusable figures and edited artifacts are failed checks, and
input it cannot judge at all raises InputError (exit 2). Never a pass."""
from __future__ import annotations

import json

import pytest

from edge_kd.errors import InputError
from edge_kd.gate import evaluate
from edge_kd.pipeline import Build


@pytest.mark.parametrize("remove,check", [
    (("metrics", "latency_ms"), "latency.p90"),
    (("metrics", "latency_ms", "p90"), "latency.p90"),
    (("metrics", "task_metric"), "accuracy.drop"),
    (("metrics", "task_metric", "name"), "accuracy.drop"),
    (("teacher", "task_metric"), "accuracy.drop"),
    (("teacher",), "accuracy.drop"),
    (("metrics", "ops"), "ops.policy"),
    (("metrics", "ops", "violations"), "ops.policy"),
    (("metrics",), "latency.p90"),
])
def test_missing_figure_is_a_failed_check(make_build, fx, remove, check):
    build = make_build()

    def drop(m):
        node = m
        for key in remove[:-1]:
            node = node[key]
        del node[remove[-1]]

    fx.edit_manifest(build, drop)
    report = evaluate(build)
    result = report.check(check)
    assert not result.passed and not report.passed
    assert "not recorded" in result.reason


@pytest.mark.parametrize("bad", [None, "9.5", True, float("nan"), -1.0, 0])
def test_unusable_latency_value_fails(make_build, fx, bad):
    build = make_build()
    path = build / "build.json"
    data = json.loads(path.read_text())
    data["metrics"]["latency_ms"]["p90"] = bad
    path.write_text(json.dumps(data))  # json writes NaN literally, as a buggy writer would
    check = evaluate(build).check("latency.p90")
    assert not check.passed and check.value is None


@pytest.mark.parametrize("bad", ["0.9", None, float("inf")])
def test_unusable_metric_value_fails(make_build, fx, bad):
    build = make_build()
    fx.edit_manifest(build, lambda m: m["metrics"]["task_metric"].update(value=bad))
    assert not evaluate(build).check("accuracy.drop").passed


def test_missing_artifact_file_fails_integrity(make_build):
    build = make_build()
    (build / "model.pte").unlink()
    check = evaluate(build).check("artifacts.integrity")
    assert not check.passed and "model.pte: file is missing" in check.reason


def test_preprocessing_asset_edited_after_build_fails(make_build):
    build = make_build()
    with open(build / "labels.txt", "a") as fh:
        fh.write("extra_label\n")
    check = evaluate(build).check("artifacts.integrity")
    assert not check.passed and "labels.txt" in check.reason and "edited after the build" in check.reason


def test_same_size_edit_is_caught_by_sha256(make_build):
    build = make_build()
    path = build / "model.pte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    check = evaluate(build).check("artifacts.integrity")
    assert not check.passed and "sha256 does not match" in check.reason


def test_missing_intermediate_export_is_allowed_but_an_edited_one_fails(make_build):
    build = make_build(target="ort-mobile")
    (build / "export" / "model.onnx").write_bytes(b"tampered")
    assert not evaluate(build).check("artifacts.integrity").passed
    (build / "export" / "model.onnx").unlink()
    assert evaluate(build).check("artifacts.integrity").passed


def test_no_model_artifact_fails_size_and_integrity(make_build, fx):
    build = make_build()
    fx.edit_manifest(build, lambda m: m.update(artifacts=[a for a in m["artifacts"] if a["role"] != "model"]))
    report = evaluate(build)
    for name in ("artifacts.integrity", "bundle.size", "bundle.download_size"):
        assert not report.check(name).passed
        assert "nothing to ship" in report.check(name).reason


def test_artifact_without_recorded_bytes_fails_size(make_build, fx):
    build = make_build()
    fx.edit_manifest(build, lambda m: m["artifacts"][1].pop("gzip_bytes"))
    check = evaluate(build).check("bundle.download_size")
    assert not check.passed and "gzip_bytes" in check.reason


def test_manifest_dict_without_build_dir_cannot_verify_files(make_build):
    build = make_build()
    manifest = json.loads((build / "build.json").read_text())
    check = evaluate(manifest).check("artifacts.integrity")
    assert not check.passed and "without the build directory" in check.reason
    assert evaluate(manifest, root=build).passed
    assert evaluate(Build.open(build)).passed


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unsupported_schema_version_is_bad_input(make_build, fx, version):
    build = make_build()
    fx.edit_manifest(build, lambda m: m.update(schema_version=version))
    with pytest.raises(InputError, match="schema_version"):
        evaluate(build)
    manifest = json.loads((build / "build.json").read_text())
    with pytest.raises(InputError, match="schema_version"):
        evaluate(manifest, root=build)


def test_corrupt_json_and_missing_path_are_bad_input(tmp_path):
    bad = tmp_path / "build.json"
    bad.write_text('{"schema_version": 1, ')
    with pytest.raises(InputError, match="corrupt JSON"):
        evaluate(bad)
    with pytest.raises(InputError, match="no such build"):
        evaluate(tmp_path / "missing")
    with pytest.raises(InputError, match="not an edge_kd build manifest"):
        evaluate({"hello": 1})


def test_manifest_without_target_needs_target_option(make_build, fx):
    build = make_build()
    fx.edit_manifest(build, lambda m: m.update(target=None))
    with pytest.raises(InputError, match="pass --target"):
        evaluate(build)
    report = evaluate(build, target="android-arm64-xnnpack")
    assert report.target == "android-arm64-xnnpack"


def test_target_for_another_runtime_is_bad_input(make_build):
    with pytest.raises(InputError, match="built for runtime executorch"):
        evaluate(make_build(), target="tflite-int8")


def test_corrupt_recorded_target_is_bad_input(make_build, fx):
    build = make_build()
    fx.edit_manifest(build, lambda m: m["target"]["budgets"].update(latency_p90="fast"))
    with pytest.raises(InputError, match="latency_p90"):
        evaluate(build)
