"""ARM64 emulation end to end (edge_kd.emulate): build the environment from the registries, check the
plugin's decoder on known instructions, count tiny fp32 and int8 models in ONNX Runtime and LiteRT on an
emulated Cortex-A76 (and ExecuTorch .pte through the cross-compiled runner): int8 runs dot-product instructions, fp32 runs fp multiply-adds, and the kernel work
repeats exactly across runs and processes. Skips where the host lacks qemu-user/mmdebstrap/gcc (CI
installs them in .ci/run)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_kd.cli import main
from edge_kd.emulate import emulate_artifact, ensure_environment
from edge_kd.emulate.env import missing_host_tools
from edge_kd.errors import InputError
from edge_kd.quantize import quantize_model
from edge_kd.targets import load_target
from edge_kd.testing.tiny_models import tiny_cnn

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(bool(missing_host_tools()), reason="needs qemu-user, mmdebstrap, gcc")]
CORE = "cortex-a76"


@pytest.fixture(scope="module")
def env():
    return ensure_environment(log=lambda *_: None)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """fp32 and int8 artifacts of the tiny CNN for ExecuTorch (.pte), ONNX Runtime (.ort) and LiteRT (.tflite)."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("emu")
    rng = np.random.default_rng(0)
    samples = [(rng.random((1, 3, 32, 32), dtype=np.float32),) for _ in range(16)]
    model = tiny_cnn()
    files = {}
    for target, fp32, int8 in (("android-arm64-xnnpack", "model.fp32.pte", "model.int8.pte"),
                               ("ort-mobile", "model.fp32.ort", "model.int8.ort"),
                               ("tflite-int8", "model.fp32.tflite", "model.int8.tflite")):
        quantize_model(model, (torch.rand(1, 3, 32, 32),), load_target(target), samples, out / target,
                       method="minmax")
        files[target] = (out / target / fp32, out / target / int8)
        assert all(p.is_file() for p in files[target])
    return files


def test_environment_build_is_idempotent(env):
    logged: list[str] = []
    again = ensure_environment(log=logged.append)
    # A second call builds nothing (it may repeat the note that .pte files need the cross compiler).
    assert all("will not run under emulation" in line for line in logged), logged
    assert again.plugin == env.plugin and again.versions == env.versions
    assert env.versions["pins"]["onnxruntime"] and env.versions["pins"]["ai-edge-litert"]


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None, reason="needs gcc-aarch64-linux-gnu")
def test_plugin_decodes_each_kind_from_the_encoding(env, tmp_path: Path):
    # Capstone 4 prints dot-product and i8mm instructions as ".byte": the plugin decodes encodings itself.
    body = ("sdot v0.4s, v1.16b, v2.16b\\n udot v0.4s, v1.16b, v2.4b[1]\\n usdot v0.4s, v1.16b, v2.16b\\n"
            " smmla v0.4s, v1.16b, v2.16b\\n ummla v0.4s, v1.16b, v2.16b\\n usmmla v0.4s, v1.16b, v2.16b\\n"
            " fmla v3.4s, v4.4s, v5.4s\\n fmla v3.4s, v4.4s, v5.s[2]\\n fmadd s0, s1, s2, s3\\n"
            " smlal v0.4s, v1.4h, v2.4h\\n smull2 v0.8h, v1.16b, v2.16b\\n sadalp v0.4s, v1.8h\\n"
            " mla v0.4s, v1.4s, v2.4s\\n ld1 {v0.16b}, [sp]\\n st1 {v0.16b}, [sp]\\n fadd v0.4s, v1.4s, v2.4s\\n"
            " sdot v0.4s, v1.16b, v2.4b[3]\\n fmla v3.8h, v4.8h, v5.8h\\n")
    (tmp_path / "k.c").write_text(
        "#include <unistd.h>\n#include <sys/syscall.h>\nint main(void){ for (int r = 0; r < 3; r++) {"
        " syscall(0x4544, 0x65646765, 1); for (int i = 0; i < 100; i++) __asm__ volatile(\"" + body +
        "\" ::: \"v0\", \"v3\", \"memory\"); syscall(0x4544, 0x65646765, 0); } return 0; }\n")
    subprocess.run(["aarch64-linux-gnu-gcc", "-O1", "-march=armv8.6-a+i8mm+dotprod+fp16", "-static", "-o",
                    str(tmp_path / "k"), str(tmp_path / "k.c")], check=True)
    out = tmp_path / "counts.json"
    subprocess.run(["qemu-aarch64", "-cpu", "max", "-plugin", f"{env.plugin},out={out}", str(tmp_path / "k")],
                   check=True)
    counts = json.loads(out.read_text())
    assert len(counts["regions"]) == 3 and counts["regions"][0] == counts["regions"][2]
    got = dict(zip(counts["kinds"], counts["regions"][0]))
    expected = {"sdot": 200, "udot": 100, "usdot": 100, "smmla": 100, "ummla": 100, "usmmla": 100, "fmla": 200,
                "fmla_idx": 100, "fmadd": 100, "int_mlal": 100, "int_mull": 100, "adalp": 100, "int_mla": 100,
                "vload": 100, "vstore": 100, "simd_other": 100}
    assert {k: got[k] for k in expected} == expected
    assert got["sve"] == got["sme"] == got["unallocated"] == 0


@pytest.mark.parametrize("target", ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"])
def test_int8_runs_dot_products_fp32_runs_fma_deterministically(env, artifacts, target):
    if target == "android-arm64-xnnpack" and env.et_runner is None:
        pytest.skip("the ExecuTorch runner needs g++-aarch64-linux-gnu")
    fp32_path, int8_path = artifacts[target]
    fp32 = emulate_artifact(fp32_path, CORE, env=env)
    int8 = emulate_artifact(int8_path, CORE, env=env)
    again = emulate_artifact(int8_path, CORE, env=env)        # a second process
    assert fp32["core"] == int8["core"] == CORE and fp32["emulation_seconds"] < 60
    # The tiny CNN: 3x3 convs 3->16->16 at 32x32 plus a linear layer ~ 1.6M multiply-adds; fp32 NEON does 4 per fmla.
    assert fp32["classes"]["fp_fma"] > 200_000 and fp32["classes"]["int8_dot"] == 0
    assert int8["classes"]["int8_dot"] > 50_000 and int8["classes"]["fp_fma"] < 1_000
    assert int8["kinds"].get("sdot", 0) + int8["kinds"].get("udot", 0) == int8["classes"]["int8_dot"]
    for m in (fp32, int8, again):
        assert m["compute_deterministic"] and m["spread"] < 0.02 and m["other_thread_instructions"] == 0
        assert m["instructions"] == sum(m["classes"].values()) and m["estimate_ms"] > 0
    assert again["classes"]["int8_dot"] == int8["classes"]["int8_dot"]
    assert abs(again["instructions"] - int8["instructions"]) <= 0.02 * int8["instructions"]
    assert int8["estimate_ms"] < fp32["estimate_ms"]
    if target == "android-arm64-xnnpack":
        # The C++ runner has no interpreter around the call: every run and process executes the same instructions.
        assert fp32["deterministic"] and int8["deterministic"] and again["instructions"] == int8["instructions"]
        assert int8["runtime_version"] == env.versions["pins"]["executorch"]


def test_bench_cli_emulate_records_arm_figures(env, artifacts, tmp_path: Path, capsys):
    fp32_path, int8_path = artifacts["tflite-int8"]
    out = tmp_path / "bench.json"
    assert main(["bench", str(fp32_path), str(int8_path), "--target", "tflite-int8", "--emulate",
                 "--json", str(out)]) == 0
    assert "cortex-a76 est ms" in capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    emu = results[1]["emulated"]
    assert emu["core"] == CORE and emu["runtime"] == "litert" and emu["classes"]["int8_dot"] > 0
    assert emu["environment"]["pins"]["ai-edge-litert"] == results[1]["runtime_version"]
    assert results[1]["vs_first"]["arm_speedup"] > 1.0


def test_an_artifact_the_aarch64_runtime_cannot_load_is_named(env, tmp_path: Path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"\0\0\0\0TFL3" + b"\x01" * 200)
    with pytest.raises(InputError, match="broken.tflite"):
        emulate_artifact(bad, CORE, env=env)


def test_cortex_a75_runs_the_a76_isa_under_its_own_part_number_and_cost(env, artifacts, tmp_path: Path, capsys):
    from edge_kd.emulate.cost import core_model

    a75_model = core_model("cortex-a75")
    assert "CPU part\t: 0xd0a" in (env.core_root(a75_model) / "proc" / "cpuinfo").read_text()
    _, int8_path = artifacts["tflite-int8"]
    out = tmp_path / "bench.json"
    assert main(["bench", str(int8_path), "--target", "tflite-int8", "--emulate", "cortex-a75",
                 "--json", str(out)]) == 0
    assert "cortex-a75 est ms" in capsys.readouterr().out
    a75 = json.loads(out.read_text())["results"][0]["emulated"]
    a76 = emulate_artifact(int8_path, CORE, env=env)
    # Same ISA (dot product): the int8 kernels still run sdot; narrower vector pipes make it slower.
    assert a75["core"] == "cortex-a75" and a75["classes"]["int8_dot"] > 50_000 and a75["compute_deterministic"]
    assert a75["estimate_ms"] > a76["estimate_ms"]


def test_an_emulating_profile_ships_by_the_arm_estimates(env, tmp_path: Path):
    # [bench] emulate set (ship_latency auto): the quantize stage counts every candidate on the core and the
    # estimates decide; the tiny CNN's static int8 runs sdot and beats fp32 there.
    import dataclasses

    target = load_target("tflite-int8")
    target = dataclasses.replace(target, bench=dataclasses.replace(target.bench, emulate=CORE))
    rng = np.random.default_rng(0)
    samples = [(rng.random((1, 3, 32, 32), dtype=np.float32),) for _ in range(16)]
    torch.manual_seed(0)
    result = quantize_model(tiny_cnn(), (torch.rand(1, 3, 32, 32),), target, samples, tmp_path, method="minmax")
    selection = result.report["selection"]
    assert selection["latency"] == {**selection["latency"], "source": "emulated", "core": CORE}
    by_name = {c["name"]: c for c in selection["candidates"]}
    assert {"fp32", "int8"} <= set(by_name)
    for c in by_name.values():
        assert c["arm"]["core"] == CORE and c["arm"]["instructions"] > 0
        assert c["p50_ms"] == c["arm"]["estimate_ms"] > 0 and c["host_p50_ms"] > 0
    assert by_name["int8"]["arm"]["estimate_ms"] < by_name["fp32"]["arm"]["estimate_ms"]
    assert result.shipped != "fp32" and f"{CORE} estimate" in selection["reason"]
