"""Pruning tiny CNN / MLP / transformer models to a goal; protection and bad-input errors."""
import pytest
import torch
from torch import nn

from edge_kd.errors import InputError
from edge_kd.prune.macs import count_macs
from edge_kd.prune.pruner import PruneConfig, find_classifier, prune_to_goal
from edge_kd.testing.tiny_models import TINY_SPECS, tiny_cnn, tiny_mlp, tiny_text


def _run(kind, **cfg):
    spec = TINY_SPECS[kind]
    model = spec.build()
    inputs = spec.example_inputs()
    pruned, info = prune_to_goal(model, inputs, PruneConfig(**cfg))
    return model, pruned, info, inputs


def test_cnn_macs_goal_met_and_channels_rounded():
    model, pruned, info, x = _run("cnn", goal="macs", amount=0.5, round_to=4)
    assert info.goal_met and info.macs_after <= 0.5 * info.macs_before
    assert info.macs_after == count_macs(pruned, x).total
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 4 == 0 for c in convs)
    assert convs[0].out_channels < 16 or convs[1].out_channels < 32
    assert pruned.classifier.out_features == 4  # classifier protected
    assert pruned(*x).shape == model(*x).shape
    # the input model is untouched
    assert model.features[0].out_channels == 16


def test_mlp_params_goal():
    model, pruned, info, x = _run("mlp", goal="params", amount=0.4, round_to=1)
    assert info.goal_met and info.params_after <= 0.6 * info.params_before + 1
    assert pruned.net[0].in_features == 12 and pruned.net[4].out_features == 2


def test_text_ffn_pruned_embeddings_kept_by_default():
    model, pruned, info, x = _run("text", goal="macs", amount=0.2, round_to=1)
    assert pruned.embed.embedding_dim == 32
    assert pruned.encoder.linear1.out_features < 64
    assert pruned(*x).shape == (1, 5)


def test_text_embedding_dims_pruned_when_unprotected():
    model, pruned, info, x = _run("text", goal="macs", amount=0.5, round_to=4, protect_embeddings=False)
    attn = pruned.encoder.self_attn
    assert pruned.embed.embedding_dim < 32 and pruned.embed.embedding_dim % 4 == 0
    assert attn.embed_dim == pruned.embed.embedding_dim and attn.head_dim * attn.num_heads == attn.embed_dim
    assert pruned.pos.shape[-1] == attn.embed_dim
    assert info.goal_met
    assert torch.isfinite(pruned(*x)).all()


def test_user_protected_layer_keeps_channels():
    _, pruned, _, _ = _run("cnn", goal="macs", amount=0.3, round_to=1, protect=("features.0",))
    assert pruned.features[0].out_channels == 16


def test_find_classifier():
    assert find_classifier(tiny_cnn(), TINY_SPECS["cnn"].example_inputs()) == "classifier"
    assert find_classifier(tiny_mlp(), TINY_SPECS["mlp"].example_inputs()) == "net.4"


def test_unknown_protect_name():
    with pytest.raises(InputError, match="no module of that name"):
        _run("cnn", goal="macs", amount=0.5, protect=("features.9",))


def test_protecting_everything_is_an_error():
    with pytest.raises(InputError, match="every prunable layer is protected"):
        _run("cnn", goal="macs", amount=0.5, protect=("features",))


@pytest.mark.parametrize("amount", [0.0, 1.0, -0.5, 1.5])
def test_ratio_outside_open_interval(amount):
    with pytest.raises(InputError, match=r"outside \(0, 1\)"):
        PruneConfig(goal="macs", amount=amount)


def test_unknown_criterion_lists_known():
    with pytest.raises(InputError, match="known: bn, l1, l2, taylor"):
        PruneConfig(criterion="l3")


def test_bn_criterion_needs_batchnorm():
    with pytest.raises(InputError, match="no BatchNorm"):
        _run("mlp", goal="macs", amount=0.5, criterion="bn")


def test_bn_criterion_on_cnn():
    _, pruned, info, _ = _run("cnn", goal="macs", amount=0.5, criterion="bn", round_to=1)
    assert info.goal_met


def test_taylor_needs_batches_then_works():
    spec = TINY_SPECS["cnn"]
    model, x = spec.build(), spec.example_inputs()
    cfg = PruneConfig(goal="macs", amount=0.5, criterion="taylor", round_to=1)
    with pytest.raises(InputError, match="needs labelled batches"):
        prune_to_goal(model, x, cfg)
    batches = [((torch.rand(4, 3, 32, 32),), torch.tensor([0, 1, 2, 3]))] * 2
    pruned, info = prune_to_goal(model, x, cfg, grad_batches=batches)
    assert info.goal_met
    assert all(p.grad is None for p in pruned.parameters())


def test_taylor_ranks_by_gradient_not_magnitude():
    """A channel with large weights but no effect on the loss is removed by Taylor, kept by L2."""
    from edge_kd.prune.pruner import prune_channels, resolve_protected

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].weight.abs_()            # positive inputs and weights: every ReLU is active,
        model[0].bias.fill_(1.0)          # so only channel 3 has a zero gradient
        model[0].weight[3] *= 50.0        # big weights ...
        model[2].weight[:, 3] = 0.0       # ... whose output is ignored: zero gradient
    x = (torch.rand(1, 4),)
    batches = [((torch.rand(16, 4),), torch.randint(0, 2, (16,)))]
    kept = {}
    for crit in ("l2", "taylor"):
        m = nn.Sequential(*[type(l)(*(() if isinstance(l, nn.ReLU) else (l.in_features, l.out_features)))
                            for l in model])
        m.load_state_dict(model.state_dict())
        cfg = PruneConfig(goal="macs", amount=0.5, criterion=crit, round_to=1)
        prune_channels(m, x, cfg, 0.125, protected=resolve_protected(m, x, cfg), grad_batches=batches)
        assert m[0].out_features == 7
        # find whether the big row survived
        kept[crit] = bool((m[0].weight.abs().max(dim=1).values > 5).any())
    assert kept["l2"] is True and kept["taylor"] is False


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:  # data-dependent Python control flow: not traceable
            h = h * 2
        return self.out(h)


def test_untraceable_model_is_one_line_input_error():
    with pytest.raises(InputError) as err:
        prune_to_goal(DataDependent(), (torch.rand(1, 4),), PruneConfig(goal="macs", amount=0.5))
    assert "\n" not in str(err.value) and "cannot trace" in str(err.value)


def test_best_effort_when_goal_unreachable():
    # embeddings + classifier protected: only the FFN of tiny_text can shrink, so 90% fewer MACs is impossible
    _, pruned, info, _ = _run("text", goal="macs", amount=0.9, round_to=1)
    assert not info.goal_met and info.macs_after < info.macs_before


def _constant_channel_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    with torch.no_grad():
        model[0].weight.abs_()     # positive weights and inputs: every ReLU is active
        model[0].weight[3] = 0.0   # lowest-magnitude channel: removed first ...
        model[0].bias[3] = 5.0     # ... but it always outputs 5, a constant the next layer relies on
        model[2].weight[:, 3] = 0.05
    return model


def test_bias_compensation_keeps_constant_channel_contribution():
    from edge_kd.prune.pruner import input_stats, prune_channels, resolve_protected

    x = torch.rand(16, 4)
    cfg = PruneConfig(goal="macs", amount=0.5, round_to=1)
    outputs = {}
    for compensate in (False, True):
        model = _constant_channel_mlp()
        ref = model(x)
        stats = input_stats(model, [(x,)]) if compensate else None
        prune_channels(model, (x[:1],), cfg, 0.125, protected=resolve_protected(model, (x[:1],), cfg), stats=stats)
        assert model[0].out_features == 7
        outputs[compensate] = (model(x) - ref).abs().max().item()
    assert outputs[False] > 0.1          # plain removal shifts the output by W2[:, 3] * 5
    assert outputs[True] < 1e-5          # compensation folds it into the next layer's bias


def test_bias_compensation_into_following_batchnorm():
    from edge_kd.prune.pruner import input_stats, prune_channels, resolve_protected

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[0].weight.abs_()
        model[0].bias.abs_()
        model[0].weight[2] = 0.0   # constant channel with the smallest group norm
        model[0].bias[2] = 3.0
        model[2].weight[:, 2] = 0.05
        model[3].running_var.fill_(1.0)
    x = torch.rand(4, 3, 8, 8)
    ref = model(x)
    cfg = PruneConfig(goal="macs", amount=0.5, round_to=1, protect=("2",))  # only conv 0 loses channels
    stats = input_stats(model, [(x,)])
    assert stats.bn_after == {"2": "3"}
    prune_channels(model, (x[:1],), cfg, 0.125, protected=resolve_protected(model, (x[:1],), cfg), stats=stats)
    assert model[0].out_channels == 7 and float(model[0].bias.max()) < 3.0  # the constant channel went
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


class InvertedResidual(nn.Module):
    """A stem, two inverted-residual blocks joined by adds (the residual width: 8), and a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(8, 32, 1), nn.ReLU6(),
                                                  nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU6(),
                                                  nn.Conv2d(32, 8, 1)) for _ in range(2))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean((2, 3)))


def test_protect_residual_keeps_the_stream_width_and_prunes_inside_blocks():
    example = (torch.rand(1, 3, 16, 16),)
    base = dict(goal="macs", amount=0.4, criterion="l2", round_to=1)
    plain, _ = prune_to_goal(InvertedResidual(), example, PruneConfig(**base))
    kept, info = prune_to_goal(InvertedResidual(), example, PruneConfig(**base, protect_residual=True))
    assert plain.stem.out_channels < 8  # without the option the residual stream loses channels ...
    assert kept.stem.out_channels == 8 and all(b[4].out_channels == 8 for b in kept.blocks)  # ... with it, none
    assert all(b[0].out_channels < 32 for b in kept.blocks)  # the expansion width carries the whole goal
    assert info.macs_after <= 0.62 * info.macs_before


def test_protect_residual_on_a_model_that_is_all_residual_is_an_error():
    class AllResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            x = self.a(x)
            return self.head(x + self.b(x))

    with pytest.raises(InputError, match="residual widths kept"):
        prune_to_goal(AllResidual(), (torch.rand(1, 4),), PruneConfig(goal="params", amount=0.3, round_to=1,
                                                                      protect_residual=True))
