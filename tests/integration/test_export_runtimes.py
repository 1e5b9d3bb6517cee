"""Real exports of the tiny models to every target, run in the real runtimes, checked against PyTorch;
the benchmark harness on real artifacts; unsupported operators fail cleanly."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_kd.bench import benchmark_artifact
from edge_kd.errors import InputError
from edge_kd.export import export_model
from edge_kd.export.executorch import export_pte
from edge_kd.export.litert import export_tflite
from edge_kd.export.onnx import export_onnx
from edge_kd.runtimes import open_runner
from edge_kd.targets import BenchSettings, load_target
from edge_kd.testing.tiny_models import TINY_SPECS

pytestmark = pytest.mark.integration
TARGETS = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]
PRIMARY = {"android-arm64-xnnpack": "pte", "ort-mobile": "ort", "tflite-int8": "tflite"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("exports")
    results = {}
    for key, spec in TINY_SPECS.items():
        for target in TARGETS:
            results[key, target] = export_model(spec.build(), spec.example_inputs(), load_target(target),
                                                root / f"{key}-{target}", input_names=[i.name for i in spec.inputs])
    return results


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("key", sorted(TINY_SPECS))
def test_export_parity_in_real_runtime(exported, key, target):
    res = exported[key, target]
    assert res.primary.suffix == "." + PRIMARY[target] and res.primary.is_file()
    assert res.parity["checked"] and res.parity["n"] == 4
    assert res.parity["max_abs_error"] < 1e-4 and res.parity["top1_agreement"] == 1.0
    assert not [p for p in res.primary.parent.iterdir() if p.name.startswith(".tmp")]
    # Independently of export_model's own check: fresh runner, a new input, compare with PyTorch.
    spec = TINY_SPECS[key]
    x = spec.example_inputs(seed=123)
    with torch.no_grad():
        expected = spec.build()(*x).numpy()
    runner = open_runner(res.primary)
    got = runner.run([t.numpy() for t in x])[0]
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-4)
    assert res.tensors and res.tensors[0]["bytes"] == max(t["bytes"] for t in res.tensors)


@pytest.mark.parametrize("key", sorted(TINY_SPECS))
def test_op_policies_on_tiny_models(exported, key):
    ort_ops = exported[key, "ort-mobile"].ops
    tfl_ops = exported[key, "tflite-int8"].ops
    assert ort_ops["policy"] == "ort-mobile-operators" and ort_ops["violations"] == []
    assert tfl_ops["policy"] == "tflite-builtin-only" and tfl_ops["violations"] == []
    et_ops = exported[key, "android-arm64-xnnpack"].ops
    assert et_ops["policy"] == "xnnpack-full-delegation" and et_ops["delegated"] > 0
    if key in ("cnn", "mlp"):
        assert et_ops["violations"] == [] and et_ops["not_delegated"] == 0
    else:
        # The embedding lookup stays on portable kernels (allowed: no arithmetic, no XNNPACK kernel);
        # nn.TransformerEncoderLayer's eval fast-path checks (any/where/logical_not) are real violations.
        assert et_ops["operators"]["aten::embedding.out"] == 1
        assert "aten::embedding.out" not in et_ops["violations"] and "aten::any.out" in et_ops["violations"]
        assert et_ops["not_delegated"] > 0


def test_benchmark_artifact_each_runtime(exported):
    quick = BenchSettings(warmup_runs=2, min_runs=5, min_seconds=0.0, max_runs=20)
    for target_name in TARGETS:
        target = dataclasses.replace(load_target(target_name), bench=quick)
        path = exported["cnn", target_name].primary
        m = benchmark_artifact(path, target)
        lat = m["latency_ms"]
        assert 5 <= lat["runs"] <= 20 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert m["load_ms"] > 0 and m["peak_rss_mb"] >= 0
        assert m["artifact"]["bytes"] == path.stat().st_size and len(m["artifact"]["sha256"]) == 64
        assert m["artifact"]["format"] == PRIMARY[target_name]
        assert m["threads"] == 1 and m["pinned_core"] is not None
        assert m["runtime"] == target.runtime.name and m["ops"]["policy"] == target.ops.policy
    with pytest.raises(InputError, match="runs in litert, but target 'ort-mobile' uses onnxruntime"):
        benchmark_artifact(exported["cnn", "tflite-int8"].primary, load_target("ort-mobile"))


def test_benchmark_with_given_inputs_and_bad_inputs(exported, tmp_path):
    target = dataclasses.replace(load_target("ort-mobile"),
                                 bench=BenchSettings(warmup_runs=0, min_runs=3, min_seconds=0.0, max_runs=3))
    path = exported["text", "ort-mobile"].primary
    m = benchmark_artifact(path, target, inputs=(np.zeros((1, 16), np.int64),))
    assert m["latency_ms"]["runs"] == 3
    with pytest.raises(InputError, match=r"input 'input_ids' expects shape \[1, 16\]"):
        benchmark_artifact(path, target, inputs=(np.zeros((1, 8), np.int64),))
    bad = tmp_path / "bad.ort"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="bad.ort"):
        benchmark_artifact(bad, target)


class Unsupported(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.eigvals(x).real


@pytest.mark.parametrize("fn,ext", [(export_pte, "pte"), (export_onnx, "onnx"), (export_tflite, "tflite")])
def test_unsupported_operator_is_one_line_naming_it(tmp_path, fn, ext):
    with pytest.raises(InputError) as info:
        fn(Unsupported(), (torch.rand(4, 4),), tmp_path / f"m.{ext}")
    message = str(info.value)
    assert "linalg_eig" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_int8_style_inputs_exported_program_and_flatbuffer_bytes(tmp_path):
    spec = TINY_SPECS["mlp"]
    model, example = spec.build(), spec.example_inputs()
    program = torch.export.export(model, example)
    pte = export_pte(program, example, tmp_path / "p.pte")
    tfl = export_tflite(model, example, tmp_path / "a.tflite")
    copy = export_tflite(tfl.read_bytes(), None, tmp_path / "b.tflite")
    assert copy.read_bytes() == tfl.read_bytes()
    with pytest.raises(InputError, match="not a LiteRT .tflite flatbuffer"):
        export_tflite(b"not a flatbuffer at all", None, tmp_path / "c.tflite")
    assert not (tmp_path / "c.tflite").exists()
    for path in (pte, copy):
        out = open_runner(path).run([example[0].numpy()])[0]
        np.testing.assert_allclose(out, model(*example).detach().numpy(), atol=1e-5)
