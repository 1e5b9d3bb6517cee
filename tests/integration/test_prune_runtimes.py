"""Pruned tiny CNN / MLP / transformer export to all three runtimes, run there, and the exported
graphs really carry fewer channels / neurons / embedding dims (ONNX initializer shapes)."""
import json

import numpy as np
import pytest
import torch

from edge_kd.prune.pruner import PruneConfig, prune_to_goal
from edge_kd.testing.tiny_models import TINY_SPECS

pytestmark = pytest.mark.integration

TARGETS = ("ort-mobile", "android-arm64-xnnpack", "tflite-int8")


def _pruned(kind):
    torch.set_num_threads(1)
    spec = TINY_SPECS[kind]
    model = spec.build()
    cfg = PruneConfig(goal="macs", amount=0.5, round_to=4, protect_embeddings=(kind != "text"))
    pruned, info = prune_to_goal(model, spec.example_inputs(), cfg)
    assert info.goal_met
    return spec, model, pruned


def _initializer_shapes(onnx_path):
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    return sorted(tuple(int(d) for d in init.dims) for init in graph.initializer)


@pytest.mark.parametrize("kind", ["cnn", "mlp", "text"])
def test_pruned_model_exports_and_runs_everywhere(kind, tmp_path):
    from edge_kd.export import export_model
    from edge_kd.runtimes import open_runner
    from edge_kd.targets import load_target

    spec, original, pruned = _pruned(kind)
    x = spec.example_inputs()
    expected = pruned(*x).detach().numpy()
    for name in TARGETS:
        result = export_model(pruned, x, load_target(name), tmp_path / name)
        assert result.parity["max_abs_error"] < 1e-3
        runner = open_runner(result.primary)
        out = runner.run([t.numpy() for t in x])
        out = out[0] if isinstance(out, (list, tuple)) else out
        np.testing.assert_allclose(np.asarray(out).reshape(expected.shape), expected, atol=1e-3, rtol=1e-3)

    # The exported graph is smaller: compare ONNX weights of the original and the pruned model.
    orig = export_model(original, x, load_target("ort-mobile"), tmp_path / "orig")
    onnx_pruned = next((tmp_path / "ort-mobile").glob("*.onnx"))
    onnx_orig = next((tmp_path / "orig").glob("*.onnx"))
    before, after = _initializer_shapes(onnx_orig), _initializer_shapes(onnx_pruned)
    assert sum(int(np.prod(s)) for s in after) < 0.75 * sum(int(np.prod(s)) for s in before)
    if kind == "cnn":
        widths_before = {s[0] for s in before if len(s) == 4}
        widths_after = {s[0] for s in after if len(s) == 4}
        assert widths_before == {16, 32} and max(widths_after) < 32 and all(w % 4 == 0 for w in widths_after)
    if kind == "mlp":
        assert (32, 12) in before and not any(s[1:] == (12,) and s[0] >= 32 for s in after if len(s) == 2)
    if kind == "text":
        dim = pruned.embed.embedding_dim
        assert dim < 32
        assert (100, 32) in before and (100, dim) in after          # embedding table
        assert any(s == (3 * dim, dim) or s == (dim, 3 * dim) for s in after)  # attention in_proj
    del orig


def test_cli_latency_budget_met_or_missed(tmp_path, capsys):
    from edge_kd.cli import main

    base = ["prune", "edge_kd.testing.tiny_models:tiny_cnn", "--input", "image:1x3x32x32:float32",
            "--target", "tflite-int8", "--round-to", "4"]
    # an impossible budget: best effort written, exit 1, the miss recorded
    out = tmp_path / "miss"
    assert main([*base, "--latency-budget", "0.0001ms", "--out", str(out)]) == 1
    assert "goal missed by" in capsys.readouterr().err
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["prune"]["goal_met"] is False and manifest["prune"]["missed_by"] > 0
    steps = manifest["stages"][-1]["details"]["steps"]
    assert all(s["p50_ms"] > 0 for s in steps) and steps[-1]["macs"] < steps[0]["macs"]
    assert (out / "model.json").is_file() and (out / "model.safetensors").is_file()
    # a budget the unpruned model already meets: nothing to do, exit 0
    out2 = tmp_path / "met"
    assert main([*base, "--latency-budget", "10s", "--out", str(out2)]) == 0
    steps = json.loads((out2 / "build.json").read_text())["stages"][-1]["details"]["steps"]
    assert len(steps) == 1


def test_cli_lowrank_decisions_are_measured_and_reload(tmp_path, capsys):
    from edge_kd.cli import main
    from edge_kd.models.spec import ModelSpec

    out = tmp_path / "lr"
    code = main(["prune", "edge_kd.testing.tiny_models:tiny_mlp", "--kwargs", '{"hidden": 256}',
                 "--input", "features:1x12:float32", "--target", "tflite-int8", "--ratio", "0.2",
                 "--lowrank", "0.5", "--lowrank-max", "1", "--lowrank-group", "layer", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    stage = json.loads((out / "build.json").read_text())["stages"][-1]
    decisions = stage["details"]["lowrank"]
    assert len(decisions) == 1
    d = decisions[0]
    assert d["latency_before_ms"] > 0 and d["latency_after_ms"] > 0 and d["macs_after"] < d["macs_before"]
    assert d["kept"] == (d["latency_after_ms"] < d["latency_before_ms"] * 0.97)
    model = ModelSpec.load(out / "model.json").build()
    rewritten = isinstance(model.net[2], torch.nn.Sequential)
    assert rewritten == d["kept"]
