"""Latency tables measured in each real runtime on a tiny CNN: ORT through its profiler, ExecuTorch and
LiteRT through per-layer micro-benchmarks; cached and reused."""
import pytest
import torch

from edge_kd.prune import latency
from edge_kd.prune.pruner import PruneConfig, resolve_protected
from edge_kd.targets import load_target
from edge_kd.testing.tiny_models import tiny_cnn

X = (torch.rand(1, 3, 32, 32),)


@pytest.mark.parametrize("target,method", [("ort-mobile", "ort-profiler"),
                                           ("android-arm64-xnnpack", "micro-benchmark"),
                                           ("tflite-int8", "micro-benchmark")])
def test_table_is_measured_in_the_runtime_and_reused(tmp_path, monkeypatch, target, method):
    model = tiny_cnn()
    cfg = PruneConfig(goal="latency", amount=0.5, latency_unit="fraction", round_to=4)
    protected = resolve_protected(model, X, cfg)
    measured = []
    real = latency.measure_table

    def two_levels(*args, **kwargs):  # two levels keep the test short; the fit still runs
        measured.append(1)
        return real(*args, **{**kwargs, "levels": (1.0, 0.5)})

    monkeypatch.setattr(latency, "measure_table", two_levels)
    table, where = latency.latency_table(model, X, load_target(target), cfg, protected, cache=tmp_path)
    assert where["cached"] is False and measured == [1] and table.method == method
    assert table.runtime == load_target(target).runtime.name and table.target == target
    assert [layer.name for layer in table.layers] == ["features.0", "features.3", "classifier"]
    conv2 = next(layer for layer in table.layers if layer.name == "features.3")
    assert conv2.in_group == "features.0" and conv2.out_group == "features.3"
    assert [p[:2] for p in conv2.points] == [[1.0, 1.0], [0.5, 0.5]]
    assert all(p[2] >= 0 for layer in table.layers for p in layer.points)
    assert table.whole and all(w["ms"] > 0 for w in table.whole)
    assert table.base_ms > 0 and table.predict({"features.0": 8, "features.3": 16}) <= table.base_ms + 1e-9
    # a second call reads the cache: nothing is measured again
    again, where2 = latency.latency_table(model, X, load_target(target), cfg, protected, cache=tmp_path)
    assert where2 == {"path": where["path"], "cached": True} and measured == [1]
    assert again.to_dict() == table.to_dict()
