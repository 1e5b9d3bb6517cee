"""The runtime registry: a runtime added in one place is known to profiles, export, runners, the
benchmark worker and the int8 path."""
from __future__ import annotations

import numpy as np
import pytest

from edge_kd.errors import ConfigError, InputError
from edge_kd.runtimes import open_runner, runtime_for, runtime_spec
from edge_kd.runtimes.ops import OP_POLICIES, register_op_policy, violations
from edge_kd.runtimes.registry import RUNTIMES, STANDARD_RANGE_METHODS, RuntimeSpec, register_runtime
from edge_kd.targets import load_target

FLAVOUR = "onnxruntime-full"
POLICY = "onnx-default-domain"


@pytest.fixture
def full_ort():
    """The full ONNX Runtime shipping plain .onnx, checked against its own policy: standard ONNX
    operators only (no com.microsoft contrib ops, which some ports of the full runtime lack)."""
    @register_op_policy(POLICY, FLAVOUR)
    def default_domain_only(operators: dict[str, int]) -> list[str]:
        return [op for op in operators if "::" in op]

    spec = register_runtime(RuntimeSpec(
        name=FLAVOUR, formats=("onnx",), primary_format="onnx", exporter="edge_kd.export.onnx",
        runner="edge_kd.runtimes.onnxruntime:OrtRunner", op_policy=POLICY,
        int8_backend="edge_kd.quantize.onnxruntime:OrtBackend",
        bench_preload=("onnxruntime", "edge_kd.runtimes.onnxruntime")))
    yield spec
    RUNTIMES.remove(FLAVOUR)
    OP_POLICIES.remove(POLICY)


@pytest.fixture
def flavour_profile(full_ort, tmp_path):
    path = tmp_path / "ort-full.toml"
    path.write_text('extends = "ort-mobile"\n[runtime]\nname = "onnxruntime-full"\nformats = ["onnx"]\n'
                    '[bench]\nwarmup_runs = 1\nmin_runs = 3\nmin_seconds = 0.0\npin_core = false\n'
                    f'[ops]\npolicy = "{POLICY}"\n')
    return load_target(path)


def test_shipped_specs_cover_the_shipped_profiles():
    for name in ("android-arm64-xnnpack", "ort-mobile", "tflite-int8"):
        target = load_target(name)
        spec = runtime_spec(target.runtime.name)
        assert set(target.runtime.formats) <= set(spec.formats)
        assert target.primary_format == spec.primary_format
        assert target.ops.policy == spec.op_policy


def test_standard_range_methods_are_the_implemented_ones():
    from edge_kd.quantize.calibration import RANGE_METHODS

    assert STANDARD_RANGE_METHODS == RANGE_METHODS


def test_unknown_runtime_in_a_profile_lists_the_known(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('extends = "ort-mobile"\n[runtime]\nname = "coreml"\n')
    with pytest.raises(ConfigError) as info:
        load_target(path)
    assert "coreml" in str(info.value) and "onnxruntime" in str(info.value)


def test_unknown_op_policy_in_a_profile(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('extends = "ort-mobile"\n[ops]\npolicy = "everything-goes"\n')
    with pytest.raises(ConfigError) as info:
        load_target(path)
    assert "everything-goes" in str(info.value) and "ort-mobile-operators" in str(info.value)


def test_runtime_for_prefers_the_named_runtime(full_ort):
    assert runtime_for("m.onnx") == "onnxruntime"  # the first registered runtime loading .onnx
    assert runtime_for("m.onnx", FLAVOUR) == FLAVOUR
    assert runtime_for("m.ort", FLAVOUR) == "onnxruntime"  # the flavour does not load .ort
    with pytest.raises(InputError, match="known: .pte, .onnx, .ort, .tflite"):
        runtime_for("m.xyz")


def test_a_runtime_added_in_one_place_exports_runs_benchmarks_and_quantizes(flavour_profile, tmp_path):
    import torch

    from edge_kd.bench import benchmark_artifact, evaluate_artifact
    from edge_kd.export import export_model
    from edge_kd.quantize import quantize_model
    from edge_kd.testing.tiny_models import TINY_SPECS

    target = flavour_profile
    assert target.runtime.name == FLAVOUR and target.primary_format == "onnx"
    spec = TINY_SPECS["mlp"]
    torch.manual_seed(0)
    model = spec.build()
    result = export_model(model, spec.example_inputs(), target, tmp_path / "fp32")
    assert result.primary.suffix == ".onnx" and [a.format for a in result.artifacts] == ["onnx"]
    assert result.runtime == FLAVOUR and result.parity["checked"]
    assert result.ops["policy"] == POLICY and result.ops["violations"] == []

    runner = open_runner(result.primary, runtime=FLAVOUR)
    assert runner.runtime == FLAVOUR and runner.ops()["policy"] == POLICY
    # the same file judged by the mobile policy of the other runtime: its rules, not the flavour's
    assert violations("ort-mobile-operators", FLAVOUR, {"Gemm": 1}) == ["Gemm"]

    rng = np.random.default_rng(0)
    rows = [((rng.uniform(-1, 1, (1, 12)).astype(np.float32),), int(rng.integers(0, 2))) for _ in range(16)]
    evaluation = evaluate_artifact(result.primary, rows, runtime=FLAVOUR)
    assert evaluation["runtime"] == FLAVOUR and evaluation["n"] == 16

    bench = benchmark_artifact(result.primary, target)  # in a fresh worker process that never saw the flavour
    assert bench["runtime"] == FLAVOUR and bench["latency_ms"]["runs"] >= 3
    assert bench["ops"]["policy"] == POLICY and bench["ops"]["violations"] == []

    calibration = [(rng.uniform(-1, 1, (1, 12)).astype(np.float32),) for _ in range(32)]
    q = quantize_model(model, spec.example_inputs(), target, calibration, tmp_path / "int8", method="minmax")
    # Every candidate was built in the flavour's format; which ships depends on measured speed (the
    # flavour's strict op policy fails them all, and equal metrics go to the fastest), so not asserted.
    assert q.primary.suffix == ".onnx" and q.candidates["int8"][0].name == "model.int8.onnx"
    assert {c["name"] for c in q.report["selection"]["candidates"]} == {"fp32", "int8", "int8-dynamic"}
