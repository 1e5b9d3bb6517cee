"""Golden MAC counts on the export graph, including functional convolutions that module hooks miss."""
import torch
import torch.nn.functional as F
from torch import nn

from edge_kd.prune.macs import count_macs, count_params
from edge_kd.testing.tiny_models import TINY_SPECS, tiny_cnn, tiny_mlp, tiny_text


def test_tiny_cnn_golden():
    report = count_macs(tiny_cnn(), TINY_SPECS["cnn"].example_inputs())
    # conv1: 16x32x32 outputs x 3*3*3; conv2: 32x16x16 outputs x 16*3*3; classifier 32*4
    assert report.by_op["conv2d"] == 16 * 32 * 32 * 27 + 32 * 16 * 16 * 144
    assert report.by_op["linear"] == 32 * 4
    assert report.total == 1622144


def test_tiny_mlp_golden():
    assert count_macs(tiny_mlp(), TINY_SPECS["mlp"].example_inputs()).total == 12 * 32 + 32 * 32 + 32 * 2


def test_attention_counted():
    report = count_macs(tiny_text(), TINY_SPECS["text"].example_inputs())
    # QK^T and attn@V: 2 * heads(4) * L(16) * S(16) * head_dim(8)
    assert report.by_op["scaled_dot_product_attention"] == 2 * 4 * 16 * 16 * 8
    # in_proj 16x32x96 + out_proj 16x32x32 + ffn 16x32x64 + 16x64x32 + classifier 32x5
    assert report.by_op["linear"] == 16 * 32 * 96 + 16 * 32 * 32 + 16 * 32 * 64 + 16 * 64 * 32 + 32 * 5


class FunctionalConv(nn.Module):
    """Weights as bare parameters and F.conv2d in forward: invisible to module-hook counters."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        y = F.conv2d(x, self.w, padding=1)
        y = F.conv2d(y, self.w.new_ones(8, 1, 3, 3), padding=1, groups=8)  # depthwise
        return self.fc(y.mean((2, 3)))


def test_functional_conv_is_counted_where_torch_pruning_is_not():
    import torch_pruning as tp

    x = torch.rand(1, 3, 16, 16)
    report = count_macs(FunctionalConv(), (x,))
    expected_conv = 8 * 16 * 16 * 27 + 8 * 16 * 16 * 9
    assert report.by_op["conv2d"] == expected_conv
    ops, _ = tp.utils.count_ops_and_params(FunctionalConv(), x)
    assert ops < expected_conv  # the under-report this counter exists to fix


def test_batch_scales_linearly():
    one = count_macs(tiny_cnn(), (torch.rand(1, 3, 32, 32),)).total
    four = count_macs(tiny_cnn(), (torch.rand(4, 3, 32, 32),)).total
    assert four == 4 * one


def test_count_params_counts_shared_once():
    model = tiny_mlp()
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    model.net[2].weight = model.net[2].weight  # same object: no double count
    shared = nn.Sequential(model.net[2], model.net[2])
    assert count_params(shared) == model.net[2].weight.numel() + model.net[2].bias.numel()
