"""Per-layer sensitivity, the PT2E observer, and quantize_model's input checks (no exports here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.errors import InputError
from edge_kd.quantize import quantize_model
from edge_kd.quantize.calibration import RangeStats, qparams
from edge_kd.quantize.ranges import RangeObserver, module_filter
from edge_kd.quantize.sensitivity import layer_sensitivity
from edge_kd.targets import load_target
from edge_kd.testing.tiny_models import tiny_cnn, tiny_mlp

torch.set_num_threads(1)


def mlp_samples(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (1, 12)).astype(np.float32),) for _ in range(n)]


def test_sensitivity_ranks_all_layers_lowest_sqnr_first():
    ranking = layer_sensitivity(tiny_mlp(), mlp_samples())
    assert [r["layer"] for r in sorted(ranking, key=lambda r: r["order"])] == ["net.0", "net.2", "net.4"]
    sqnr = [r["sqnr_db"] for r in ranking]
    assert sqnr == sorted(sqnr)
    assert all(20.0 < s < 80.0 for s in sqnr)  # int8 on a healthy layer: tens of dB


def test_sensitivity_finds_the_layer_with_an_outlier_channel():
    model = tiny_mlp()
    with torch.no_grad():
        model.net[2].weight[0] *= 200.0  # one huge output channel in the middle layer
    per_tensor = {r["layer"]: r["sqnr_db"] for r in layer_sensitivity(model, mlp_samples(), per_channel=False)}
    per_channel = {r["layer"]: r["sqnr_db"] for r in layer_sensitivity(model, mlp_samples(), per_channel=True)}
    # per-tensor weight scales are ruined by the outlier channel; per-channel scales are not
    assert per_tensor["net.2"] < per_channel["net.2"] - 10.0
    assert min(per_tensor, key=per_tensor.get) == "net.2"


def test_sensitivity_rejects_a_model_without_quantizable_layers():
    with pytest.raises(InputError, match="no quantizable layers"):
        layer_sensitivity(nn.Sequential(nn.ReLU()), mlp_samples())


def test_range_observer_uses_the_chosen_method():
    obs = RangeObserver(dtype=torch.int8, quant_min=-128, quant_max=127, method="percentile", percentile=99.0)
    stats = RangeStats()
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = torch.from_numpy(rng.normal(size=(1, 1000)).astype(np.float32))
        obs(x)
        stats.update(x.numpy())
    scale, zp = obs.calculate_qparams()
    lo, hi = stats.compute("percentile", percentile=99.0)
    want_scale, _ = qparams(lo, hi)
    assert float(scale) == pytest.approx(want_scale, rel=1e-5)
    assert obs.chosen == pytest.approx((lo, hi))
    obs.method = "minmax"
    scale_mm, _ = obs.calculate_qparams()
    assert float(scale_mm) > float(scale)  # min/max keeps the tails: a coarser scale


def test_module_filter_matches_module_and_children_only_and_skips_mask_arithmetic():
    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self._blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(11)])
            self.after = nn.Linear(4, 4)

        def forward(self, x, mask):
            for b in self._blocks:
                x = b(x)
            x = x + (1 - mask) * -1e4  # float arithmetic on an integer mask input
            return self.after(x)  # downstream of the mask add: an ordinary activation again

    example = (torch.rand(1, 4), torch.ones(1, 4, dtype=torch.int64))
    graph = torch.export.export(Blocks(), example, strict=False).module().graph
    keep = module_filter(["_blocks.1"])
    linear = [n for n in graph.nodes if n.op == "call_function" and "linear" in str(n.target)]
    kept = {list(n.meta["nn_module_stack"].values())[-1][0]: keep(n) for n in linear}
    assert kept["_blocks.1"] is False
    assert kept["_blocks.10"] is True and kept["_blocks.0"] is True and kept["after"] is True
    mask_ops = [n for n in graph.nodes if n.op == "call_function" and any(k in str(n.target) for k in
                                                                           ("rsub", "sub", "mul", "add."))]
    assert mask_ops and not any(keep(n) for n in mask_ops)  # the mask math and the scores + mask add


# ---- quantize_model rejects bad input before any export ------------------------------------------------
def cnn_samples(n, shape=(1, 3, 32, 32), dtype=np.float32):
    return [(np.random.default_rng(i).random(shape).astype(dtype),) for i in range(n)]


@pytest.mark.parametrize("calib, message", [
    ([], "empty"),
    (cnn_samples(2), "too few"),
    (cnn_samples(16, shape=(1, 3, 16, 16)), "shape"),
    (cnn_samples(16, dtype=np.int64), "dtype"),
    ([(np.full((1, 3, 32, 32), np.inf, np.float32),)] + cnn_samples(15), "NaN or inf"),
])
def test_quantize_model_bad_calibration(tmp_path: Path, calib, message):
    with pytest.raises(InputError, match=message):
        quantize_model(tiny_cnn(), (torch.rand(1, 3, 32, 32),), load_target("ort-mobile"), calib, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_quantize_model_no_quantizable_layers(tmp_path: Path):
    with pytest.raises(InputError, match="no quantizable layers"):
        quantize_model(nn.Sequential(nn.ReLU()), (torch.rand(1, 3, 32, 32),), load_target("tflite-int8"),
                       cnn_samples(16), tmp_path)


def test_quantize_model_unknown_method(tmp_path: Path):
    with pytest.raises(InputError, match="unknown calibration method"):
        quantize_model(tiny_cnn(), (torch.rand(1, 3, 32, 32),), load_target("tflite-int8"), cnn_samples(16),
                       tmp_path, method="kl")


@pytest.mark.parametrize("target_name", ["android-arm64-xnnpack", "tflite-int8"])
def test_pt2e_exclusion_keeps_the_layer_float(target_name):
    from edge_kd.quantize import backend_for

    backend = backend_for(load_target(target_name))
    example = (torch.rand(1, 3, 32, 32),)

    def quantized_weights(exclude):
        cal = backend.calibrate(tiny_cnn(), example, cnn_samples(8), exclude)
        graph, ranges = cal.convert("minmax", fold_quantize=False)
        return sum(1 for n in graph.graph.nodes if "quantize_per_channel" in str(n.target)
                   and not "dequantize" in str(n.target)), ranges

    all_q, ranges = quantized_weights([])
    one_float, _ = quantized_weights(["classifier"])
    assert all_q == 3 and one_float == 2
    assert ranges and all(r["method"] == "minmax" for r in ranges)


def test_integer_arithmetic_survives_quantizer_transform():
    """The stock XNNPACK/litert transforms turn ``int + 1`` into a float add (calibration then crashes on
    an index op, as in transformers' attention masks); ours converts float scalars only."""
    from edge_kd.quantize.ranges import float_scalars_to_attrs

    class IndexByOffset(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.arange(10.0))
            self.fc = nn.Linear(3, 2)

        def forward(self, ids, x):
            return self.fc(x * 2.0) + self.table[ids + 1].sum()

    example = (torch.tensor([[1, 2, 3]]), torch.rand(1, 3))
    graph = torch.export.export(IndexByOffset(), example, strict=False).module()
    out = float_scalars_to_attrs(graph)(*example)
    assert out.shape == (1, 2)
    consts = [n for n in graph.graph.nodes if n.op == "get_attr" and "_tensor_constant_" in str(n.target)]
    assert len(consts) == 1  # only the float multiply's scalar became a tensor
