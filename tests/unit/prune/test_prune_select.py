"""Latency-aware selection with an injected latency table: deterministic, no runtime needed."""
import json

import pytest
import torch

from edge_kd.errors import InputError
from edge_kd.prune.latency import GroupInfo, LatencyTable, LayerCost, structure
from edge_kd.prune.macs import count_macs
from edge_kd.prune.pruner import PruneConfig, prune_to_goal, resolve_protected
from edge_kd.prune.select import prune_latency_aware, select_channels
from edge_kd.testing.tiny_models import tiny_depthwise

X = (torch.rand(1, 3, 32, 32),)


def _table(model, config, *, expensive: str, target: str = "ort-mobile", runtime: str = "onnxruntime") -> LatencyTable:
    """A table of tiny_depthwise in which layer ``expensive`` costs 10x per channel what the others do
    (MACs are the real ones, so a MACs target means what it says)."""
    from edge_kd.prune.latency import _layer_macs, layers_in_order

    protected = resolve_protected(model, X, config)
    groups, out_group, in_group, key = structure(model, X, config, protected)
    layers = []
    for layer in layers_in_order(model, X):
        m = layer.module
        depthwise = isinstance(m, torch.nn.Conv2d) and m.groups > 1
        og = out_group.get(layer.name)
        ig = og if depthwise else in_group.get(layer.name)
        kind = "depthwise" if depthwise else "linear" if isinstance(m, torch.nn.Linear) else "conv"
        layers.append(LayerCost(layer.name, kind, m.weight.shape[1], m.weight.shape[0], ig, og,
                                macs=_layer_macs(layer), coef=[0.0, 1.0 if layer.name == expensive else 0.1, 0.0]))
    total = count_macs(model, X).total
    return LatencyTable(target=target, runtime=runtime, runtime_version="test", threads=1, model_key=key,
                        model="TinyDepthwiseNet", inputs=[[1, 3, 32, 32]], round_to=config.round_to,
                        method="injected", levels=[1.0], groups=groups, layers=layers,
                        macs_other=total - sum(c.macs for c in layers))


def _widths(model):
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


@pytest.mark.parametrize("expensive,cheap", [("depthwise.0", "head.0"), ("head.0", "depthwise.0")])
def test_costlier_group_loses_more_channels(expensive, cheap):
    model = tiny_depthwise()
    cfg = PruneConfig(goal="latency", amount=0.6, latency_unit="fraction", round_to=8)
    table = _table(model, cfg, expensive=expensive)
    pruned, info, sel = prune_latency_aware(model, X, cfg, table, target_ms=0.6 * table.base_ms)
    full, now = _widths(model), _widths(pruned)
    lost = {g: 1 - now[g] / full[g] for g in (expensive, cheap)}
    assert sel.reached and sel.predicted_ms <= 0.6 * table.base_ms
    assert lost[expensive] > lost[cheap]
    assert all(now[g] % 8 == 0 for g in now if now[g] != full[g])
    assert info.macs_after < info.macs_before
    # the pruned model still runs and the groups stay consistent (depthwise in == out == expand out)
    assert pruned(*X).shape == (1, 10)
    assert pruned.expand[0].out_channels == pruned.depthwise[0].in_channels == pruned.project[0].in_channels


def test_latency_aware_prunes_the_expensive_group_more_than_uniform_macs():
    model = tiny_depthwise()
    cfg = PruneConfig(goal="macs", amount=0.5, round_to=8)
    table = _table(model, cfg, expensive="depthwise.0")
    macs_target = 0.5 * count_macs(model, X).total
    uniform, _ = prune_to_goal(model, X, cfg)
    aware, _, sel = prune_latency_aware(model, X, cfg, table, target_macs=macs_target)
    assert _widths(aware)["depthwise.0"] < _widths(uniform)["depthwise.0"]
    uniform_keep = {g.id: _widths(uniform)[g.id] for g in table.groups}
    assert table.predict(sel.keep) < table.predict(uniform_keep)
    assert count_macs(aware, X).total <= macs_target * 1.05


def test_selection_respects_max_layer_ratio_and_reports_unreachable():
    model = tiny_depthwise()
    cfg = PruneConfig(goal="latency", amount=0.01, latency_unit="fraction", round_to=8, max_layer_ratio=0.5)
    table = _table(model, cfg, expensive="depthwise.0")
    importance = {g.id: [1.0] * g.channels for g in table.groups}
    sel = select_channels(table, importance, target_ms=0.01 * table.base_ms, round_to=8, max_layer_ratio=0.5)
    assert not sel.reached
    assert all(sel.keep[g.id] >= g.channels * 0.5 for g in table.groups)


def test_table_roundtrip_and_mismatch_is_input_error(tmp_path):
    from edge_kd.targets import load_target

    model = tiny_depthwise()
    cfg = PruneConfig(goal="latency", amount=0.5, latency_unit="fraction", round_to=8)
    table = _table(model, cfg, expensive="head.0")
    path = table.save(tmp_path / "t.json")
    again = LatencyTable.load(path)
    assert again.predict({"head.0": 32}) == pytest.approx(table.predict({"head.0": 32}))
    again.check_matches(load_target("ort-mobile"), table.model_key, 8)
    with pytest.raises(InputError, match="target 'ort-mobile', not 'tflite-int8'"):
        again.check_matches(load_target("tflite-int8"), table.model_key, 8)
    with pytest.raises(InputError, match="another model structure"):
        again.check_matches(load_target("ort-mobile"), "0" * 64, 8)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not an edge_kd latency table"):
        LatencyTable.load(tmp_path / "bad.json")


def test_group_info_and_prediction_are_additive():
    g = [GroupInfo("a", 16), GroupInfo("b", 8)]
    layers = [LayerCost("l1", "conv", 3, 16, None, "a", macs=100, coef=[1.0, 2.0, 4.0]),
              LayerCost("l2", "conv", 16, 8, "a", "b", macs=50, coef=[0.0, 0.0, 8.0])]
    t = LatencyTable("x", "onnxruntime", "v", 1, "k", "M", [[1]], 8, "injected", [1.0], g, layers,
                     scale=1.0, other_ms=0.5)
    assert t.base_ms == pytest.approx(1 + 2 + 4 + 8 + 0.5)
    # a at half: l1 ri=1, ro=.5 -> 1 + 2*.75 + 4*.5 = 4.5 ; l2 ri=.5, ro=1 -> 8*.5 = 4
    assert t.predict({"a": 8}) == pytest.approx(4.5 + 4 + 0.5)
    assert t.predict_macs({"a": 8}) == pytest.approx(50 + 25)


def test_schedule_with_a_table_steps_toward_a_fraction_budget():
    from edge_kd.prune.schedule import run_schedule

    model = tiny_depthwise()
    cfg = PruneConfig(goal="latency", amount=0.6, latency_unit="fraction", steps=2, round_to=8)
    table = _table(model, cfg, expensive="depthwise.0")

    def fake_latency(m):  # the "runtime" is the table itself: deterministic
        widths = _widths(m)
        return table.predict({g.id: widths[g.id] for g in table.groups if g.id in widths})

    result = run_schedule(model, X, cfg, latency=fake_latency, latency_table=table)
    assert result.goal_met and result.latency_table["method"] == "injected"
    assert [s.step for s in result.steps] == [0, 1, 2]
    assert result.steps[1].target_fraction == pytest.approx(0.8) and result.steps[2].target_fraction == pytest.approx(0.6)
    assert result.steps[1].selection["removed"] and result.steps[2].p50_ms <= 0.6 * result.steps[0].p50_ms
    assert result.steps[2].macs < result.steps[1].macs < result.steps[0].macs


def test_importance_scale_of_one_group_does_not_decide_the_selection():
    """Channel norms are not comparable between layers (fan-in, BatchNorm scale): a group whose channels
    merely have small norms must not be emptied first. Each group's importance counts as the share of the
    group's own total, so scaling one group's importance changes nothing."""
    model = tiny_depthwise()
    cfg = PruneConfig(goal="macs", amount=0.5, round_to=8)
    table = _table(model, cfg, expensive="depthwise.0")
    gen = torch.Generator().manual_seed(0)
    importance = {g.id: (torch.rand(g.channels, generator=gen) + 0.5).tolist() for g in table.groups}
    macs_target = 0.6 * table.predict_macs({g.id: g.channels for g in table.groups})
    base = select_channels(table, importance, target_macs=macs_target, round_to=8)
    for gid in importance:
        scaled = {**importance, gid: [v * 1e-3 for v in importance[gid]]}
        assert select_channels(table, scaled, target_macs=macs_target, round_to=8).keep == base.keep, gid
