"""int8 only where it pays: quantize_model builds every candidate for the runtime, measures it and
ships per ``quantization.ship``; the gate's artifact.choice check reads the recorded decision."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_kd.bench.compare import ROUNDS
from edge_kd.errors import InputError
from edge_kd.gate import evaluate
from edge_kd.pipeline import Build
from edge_kd.quantize import quantize_model
from edge_kd.targets import load_target
from edge_kd.testing.tiny_models import tiny_mlp

pytestmark = pytest.mark.integration
torch.set_num_threads(1)


def mlp_samples(n=24):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((1, 12)).astype(np.float32),) for _ in range(n)]


def injected(p50: dict[str, float]):
    """A latency_fn reporting these p50s (the measured shape: per-round medians with the same jitter)."""
    pattern = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97]
    seen = {}

    def fn(paths, *, inputs, threads):
        seen.update(paths)
        assert all(Path(p).is_file() for p in paths.values()) and threads == 1 and inputs
        return {n: {"p50_ms": p50[n], "rounds_ms": [p50[n] * k for k in pattern]} for n in paths} | \
            {"_meta": {"method": "injected"}}
    fn.seen = seen
    return fn


def _gate(tmp_path: Path, result, target) -> Build:
    build = Build.create(tmp_path / "build", target=target.to_dict())
    shipped = build.root / result.primary.name  # a build records only files inside its folder
    shutil.copyfile(result.primary, shipped)
    with build.stage("quantize") as record:
        build.add_artifact(shipped, role="model", format=target.primary_format)
        record["details"] = result.report
    return build


def test_ships_fp32_when_int8_is_slower_and_the_gate_agrees(tmp_path: Path):
    target = load_target("ort-mobile")
    latency = injected({"fp32": 0.017, "int8": 0.090, "int8-dynamic": 0.030})
    result = quantize_model(tiny_mlp(), (torch.zeros(1, 12),), target, mlp_samples(), tmp_path / "q",
                            method="minmax", latency_fn=latency)
    assert set(latency.seen) == {"fp32", "int8", "int8-dynamic"}  # ORT's dynamic int8 was built and timed
    assert result.shipped == "fp32" and result.primary.name == "model.fp32.ort" and result.primary.is_file()
    selection = result.report["selection"]
    assert selection["shipped"] == "fp32" and selection["policy"] == "fastest-within-budget"
    by_name = {c["name"]: c for c in selection["candidates"]}
    assert by_name["int8"]["reason"].startswith("slower") and by_name["int8"]["within_budget"]
    assert by_name["int8-dynamic"]["bytes"] < by_name["fp32"]["bytes"]
    assert result.report["latency_ms"]["shipped_p50"] == 0.017
    # every candidate's files are kept beside the report; the int8 one is still described
    assert all(p.is_file() for files in result.candidates.values() for p in files)
    assert result.report["size"]["int8_bytes"] == by_name["int8"]["bytes"]
    assert evaluate(_gate(tmp_path, result, target)).check("artifact.choice").passed

    # The behaviour before: int8 shipped although slower. The gate fails it.
    for c in selection["candidates"]:
        c["shipped"] = c["name"] == "int8"
    check = evaluate(_gate(tmp_path / "old", result, target)).check("artifact.choice")
    assert not check.passed and "fp32 meets every budget and runs 5.29x faster" in check.reason


def test_ships_int8_when_it_pays_and_int8_policy_skips_other_schemes(tmp_path: Path):
    target = load_target("ort-mobile")
    result = quantize_model(tiny_mlp(), (torch.zeros(1, 12),), target, mlp_samples(), tmp_path / "a",
                            method="minmax", latency_fn=injected({"fp32": 0.05, "int8": 0.02, "int8-dynamic": 0.04}))
    assert result.shipped == "int8" and result.primary.name == "model.int8.ort"
    latency = injected({"fp32": 0.017, "int8": 0.090})
    result = quantize_model(tiny_mlp(), (torch.zeros(1, 12),), target, mlp_samples(), tmp_path / "b",
                            method="minmax", latency_fn=latency, ship="int8")
    assert set(latency.seen) == {"fp32", "int8"}
    assert result.shipped == "int8" and "ship = 'int8' in the profile" in result.report["selection"]["reason"]


@pytest.mark.parametrize("target_name", ["tflite-int8", "android-arm64-xnnpack"])
def test_measured_candidates_per_runtime(tmp_path: Path, target_name: str):
    """No injection: each runtime's other scheme builds, runs within tolerance and is timed interleaved."""
    target = load_target(target_name)
    result = quantize_model(tiny_mlp(), (torch.zeros(1, 12),), target, mlp_samples(), tmp_path, method="minmax")
    selection = result.report["selection"]
    assert not selection["skipped"], selection["skipped"]
    cands = {c["name"]: c for c in selection["candidates"]}
    assert len(cands) == 3 and {"fp32", "int8"} <= set(cands)
    for c in cands.values():
        assert len(c["rounds_ms"]) == ROUNDS and c["p50_ms"] > 0 and c["violations"] == 0
        assert c["metric"] == 1.0  # top-1 agreement with the fp32 artifact on the calibration rows
    assert sum(c["shipped"] for c in cands.values()) == 1
    assert result.primary.name == cands[result.shipped]["file"]


def _emulating(target_name: str, ship_latency: str = "auto"):
    target = load_target(target_name)
    return dataclasses.replace(target, bench=dataclasses.replace(target.bench, emulate="cortex-a76"),
                               quantization=dataclasses.replace(target.quantization, ship_latency=ship_latency))


def injected_arm(estimates: dict[str, float | str]):
    """An emulate_fn reporting these ARM estimates (a string: the aarch64 runtime could not run it)."""
    def fn(path, inputs):
        assert Path(path).is_file() and inputs
        name = next(n for n in estimates if Path(path).name.startswith(f"model.{n}."))
        got = estimates[name]
        if isinstance(got, str):
            raise InputError(got)
        return {"estimate_ms": got, "instructions": int(got * 2.4e6)}
    return fn


def test_an_emulating_profile_ships_what_is_fastest_on_the_arm_core(tmp_path: Path):
    # On the host int8 is 5x slower (the online-shoppers student on x86); on the emulated Cortex-A76 it is
    # 2x faster. The phone's figure decides; the host's stays in the record and in the report.
    target = _emulating("ort-mobile")
    host = injected({"fp32": 0.017, "int8": 0.090, "int8-dynamic": 0.030})
    arm = injected_arm({"fp32": 0.040, "int8": 0.020, "int8-dynamic": "the aarch64 onnxruntime cannot run it"})
    result = quantize_model(tiny_mlp(), (torch.zeros(1, 12),), target, mlp_samples(), tmp_path / "q",
                            method="minmax", latency_fn=host, emulate_fn=arm)
    selection = result.report["selection"]
    assert result.shipped == "int8" and selection["latency"]["source"] == "emulated"
    assert selection["latency"]["core"] == "cortex-a76" and "cortex-a76 estimate 0.02 ms" in selection["reason"]
    by_name = {c["name"]: c for c in selection["candidates"]}
    assert by_name["int8"]["host_p50_ms"] == 0.090 and by_name["int8"]["arm"]["estimate_ms"] == 0.020
    assert by_name["int8"]["arm"]["instructions"] == 48000 and by_name["int8"]["p50_ms"] == 0.020
    assert by_name["fp32"]["reason"].startswith("slower: cortex-a76 estimate 0.04 ms")
    assert by_name["int8-dynamic"]["p50_ms"] is None
    assert by_name["int8-dynamic"]["reason"] == "not measured on cortex-a76: the aarch64 onnxruntime cannot run it"
    build = _gate(tmp_path, result, target)
    assert evaluate(build).check("artifact.choice").passed

    # Shipping fp32 (what the host's timings would have chosen) fails the gate, in the ARM estimate's terms.
    for c in selection["candidates"]:
        c["shipped"] = c["name"] == "fp32"
    check = evaluate(_gate(tmp_path / "host", result, target)).check("artifact.choice")
    assert not check.passed and "int8 meets every budget and runs 2.00x faster" in check.reason
    assert "cortex-a76 estimate 0.02 ms, ARM cost-model estimates" in check.reason


def test_ship_latency_host_keeps_the_host_deciding_on_an_emulating_profile(tmp_path: Path):
    def never(path, inputs):
        raise AssertionError("ship_latency = 'host' must not emulate candidates")
    result = quantize_model(tiny_mlp(), (torch.zeros(1, 12),), _emulating("ort-mobile", "host"), mlp_samples(),
                            tmp_path, method="minmax", emulate_fn=never,
                            latency_fn=injected({"fp32": 0.017, "int8": 0.090, "int8-dynamic": 0.030}))
    assert result.shipped == "fp32" and result.report["selection"]["latency"]["source"] == "host"
    assert all("arm" not in c for c in result.report["selection"]["candidates"])


def test_a_missing_emulation_environment_is_one_line_saying_how_to_build_it(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EDGE_KD_ARM_EMU", str(tmp_path / "nothing-here"))
    with pytest.raises(InputError, match="edge-kd arm-emu"):
        quantize_model(tiny_mlp(), (torch.zeros(1, 12),), _emulating("ort-mobile"), mlp_samples(), tmp_path / "q",
                       method="minmax", latency_fn=injected({"fp32": 0.017, "int8": 0.090, "int8-dynamic": 0.03}))
