"""Profiles load strictly: every error names the file and the key, and resolves `extends`."""
from __future__ import annotations

import pytest

from edge_kd.errors import ConfigError, InputError
from edge_kd.targets import TargetProfile, list_target_names, load_target

SHIPPED = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]

MINIMAL = """
name = "mine"
[runtime]
name = "onnxruntime"
formats = ["onnx", "ort"]
[budgets]
artifact_size = "1MiB"
download_size = "800KiB"
latency_p90 = "10ms"
accuracy_drop = "1pt"
"""


def test_shipped_profiles_load():
    assert list_target_names() == SHIPPED
    xnn = load_target("android-arm64-xnnpack")
    assert xnn.runtime.name == "executorch" and xnn.runtime.delegate == "xnnpack" and xnn.primary_format == "pte"
    assert xnn.quantization.weights == "per-channel-symmetric"
    assert xnn.quantization.activations == "per-tensor-asymmetric"
    assert xnn.pruning.round_to == 8
    assert xnn.ops.policy == "xnnpack-full-delegation"
    ort = load_target("ort-mobile")
    assert ort.runtime.formats == ("onnx", "ort") and ort.primary_format == "ort"
    assert ort.ops.policy == "ort-mobile-operators"
    tfl = load_target("tflite-int8")
    assert tfl.runtime.name == "litert" and tfl.ops.policy == "tflite-builtin-only"
    for profile in (xnn, ort, tfl):
        assert profile.runtime.threads == 1
        assert profile.budgets.artifact_size > 0 and profile.budgets.latency_p90 > 0


def test_profile_round_trips_through_dict():
    for name in SHIPPED:
        profile = load_target(name)
        assert TargetProfile.from_dict(profile.to_dict()) == profile


def test_minimal_profile_gets_defaults(write_profile):
    profile = load_target(write_profile("mine", MINIMAL))
    assert profile.name == "mine"
    assert profile.budgets.artifact_size == 1024**2
    assert profile.budgets.download_size == 800 * 1024
    assert profile.budgets.latency_p90 == 10.0
    assert profile.quantization.calibration_method == "auto"
    assert profile.bench.warmup_runs >= 1


def test_extends_shipped_profile_and_overrides_a_field(write_profile):
    path = write_profile("small-phone", 'extends = "android-arm64-xnnpack"\n[budgets]\nartifact_size = "512KiB"\n')
    profile = load_target(path)
    parent = load_target("android-arm64-xnnpack")
    assert profile.name == "small-phone"
    assert profile.budgets.artifact_size == 512 * 1024
    assert profile.budgets.latency_p90 == parent.budgets.latency_p90  # inherited
    assert profile.runtime == parent.runtime


def test_extends_chain_by_relative_path(write_profile):
    write_profile("base", MINIMAL.replace('name = "mine"', 'name = "base"'))
    path = write_profile("child", 'extends = "base.toml"\n[runtime]\nthreads = 2\n')
    profile = load_target(path)
    assert profile.runtime.threads == 2 and profile.runtime.name == "onnxruntime"


def _error(path) -> str:
    with pytest.raises(InputError) as info:
        load_target(path)
    return str(info.value)


def test_unknown_key_names_file_and_key(write_profile):
    path = write_profile("typo", MINIMAL.replace('latency_p90 = "10ms"', 'latency_p90 = "10ms"\nlatncy_p99 = "3ms"'))
    message = _error(path)
    assert str(path) in message and "budgets.latncy_p99" in message and "unknown key" in message


def test_bad_unit(write_profile):
    path = write_profile("unit", MINIMAL.replace('"1MiB"', '"1 megabyte"'))
    message = _error(path)
    assert "budgets.artifact_size" in message and "1 megabyte" in message


def test_negative_budget(write_profile):
    path = write_profile("neg", MINIMAL.replace('"10ms"', '"-10ms"'))
    message = _error(path)
    assert "budgets.latency_p90" in message and "negative" in message


def test_missing_required_field(write_profile):
    path = write_profile("missing", MINIMAL.replace('accuracy_drop = "1pt"\n', ""))
    message = _error(path)
    assert "budgets.accuracy_drop" in message and "required key is missing" in message


def test_wrong_type(write_profile):
    path = write_profile("wrongtype", MINIMAL.replace('[runtime]', '[runtime]\nthreads = "four"'))
    message = _error(path)
    assert "runtime.threads" in message and "integer" in message


def test_invalid_format_for_runtime(write_profile):
    path = write_profile("fmt", MINIMAL.replace('["onnx", "ort"]', '["pte"]'))
    assert "not valid for runtime" in _error(path)


def test_extends_unknown_profile(write_profile):
    path = write_profile("orphan", 'extends = "no-such-target"\n')
    message = _error(path)
    assert "extends" in message and "no-such-target" in message and "android-arm64-xnnpack" in message


def test_extends_cycle(write_profile):
    write_profile("a", 'extends = "b.toml"\n')
    path = write_profile("b", 'extends = "a.toml"\n')
    message = _error(path)
    assert "cycle" in message and "a.toml" in message and "b.toml" in message


def test_self_extends_is_a_cycle(write_profile):
    path = write_profile("selfish", 'extends = "selfish.toml"\n')
    assert "cycle" in _error(path)


def test_not_toml(write_profile):
    path = write_profile("broken", "[budgets\nartifact_size = 1")
    assert "not valid TOML" in _error(path)


def test_unknown_target_name_lists_known():
    with pytest.raises(InputError) as info:
        load_target("iphone-coreml")
    assert "iphone-coreml" in str(info.value) and "ort-mobile" in str(info.value)


def test_unknown_calibration_method(write_profile):
    path = write_profile("calib", MINIMAL + '[quantization]\ncalibration_method = "magic"\n')
    assert "calibration_method" in _error(path)


def test_ship_policy_defaults_and_is_validated(write_profile):
    assert load_target(write_profile("dflt", MINIMAL)).quantization.ship == "fastest-within-budget"
    assert load_target(write_profile("forced", MINIMAL + '[quantization]\nship = "int8"\n')).quantization.ship == "int8"
    message = _error(write_profile("bad-ship", MINIMAL + '[quantization]\nship = "smallest"\n'))
    assert "quantization.ship" in message and "fastest-within-budget" in message


def test_config_error_is_a_config_error(write_profile):
    path = write_profile("typo2", MINIMAL + "[pruning]\nround = 8\n")
    with pytest.raises(ConfigError) as info:
        load_target(path)
    assert info.value.key == "pruning.round" and info.value.source == str(path)
    assert "pruning.round_to" in str(info.value)  # the hint


def test_embedding_scheme_is_checked_against_the_runtime(write_profile):
    assert load_target("android-arm64-xnnpack").quantization.embeddings == "int8"
    ok = write_profile("mine", 'extends = "android-arm64-xnnpack"\n[quantization]\nembeddings = "int4"\n')
    assert load_target(ok).quantization.embeddings == "int4"
    bad = write_profile("bad", 'extends = "ort-mobile"\n[quantization]\nembeddings = "int4"\n')
    with pytest.raises(ConfigError) as exc:
        load_target(bad)
    msg = str(exc.value)
    assert "quantization.embeddings = 'int4'" in msg and "'onnxruntime'" in msg and "executorch, litert" in msg
    assert "\n" not in msg
    unknown = write_profile("u", 'extends = "ort-mobile"\n[quantization]\nembeddings = "int2"\n')
    with pytest.raises(ConfigError, match="quantization.embeddings"):
        load_target(unknown)
    # A float profile never quantizes: its embedding setting is not checked against the runtime.
    fp32 = write_profile("f", 'extends = "ort-mobile"\n[quantization]\nmode = "fp32"\nembeddings = "int4"\n')
    assert load_target(fp32).quantization.mode == "fp32"
