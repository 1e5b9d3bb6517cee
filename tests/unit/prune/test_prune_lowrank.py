"""SVD factorization math, and the measured keep/reject decisions."""
import pytest
import torch
from torch import nn

from edge_kd.errors import InputError
from edge_kd.prune.lowrank import candidates, factorize, lowrank_search, rank_for_energy


def test_full_rank_factorization_is_exact():
    torch.manual_seed(0)
    layer = nn.Linear(6, 5)
    x = torch.randn(3, 6)
    torch.testing.assert_close(factorize(layer, 5)(x), layer(x), atol=1e-5, rtol=1e-5)


def test_low_rank_is_best_approximation():
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(8, 8))
    v, _ = torch.linalg.qr(torch.randn(8, 8))
    s = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    layer = nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        layer.weight.copy_(u @ torch.diag(s) @ v.T)
    pair = factorize(layer, 2)
    approx = pair[1].weight @ pair[0].weight
    # Eckart-Young: the spectral error of the best rank-2 approximation is the 3rd singular value
    assert torch.linalg.matrix_norm(layer.weight - approx, ord=2).item() == pytest.approx(2.0, abs=1e-4)
    # energy: s^2 = 64, 16, 4, 1 (sum 85): 64/85 = 0.753, 80/85 = 0.941, 84/85 = 0.988
    assert rank_for_energy(layer, 0.75) == 1
    assert rank_for_energy(layer, 0.9) == 2
    assert rank_for_energy(layer, 0.95) == 3
    assert rank_for_energy(layer, 0.9, round_to=4) == 4


def test_pointwise_conv_factorized():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 12, 1, stride=2)
    x = torch.randn(1, 16, 8, 8)
    pair = factorize(conv, 12)
    torch.testing.assert_close(pair(x), conv(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError, match="only nn.Linear and 1x1"):
        factorize(nn.Conv2d(4, 4, 3), 2)


def _low_rank_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    with torch.no_grad():  # layer 2 is (nearly) rank 4: worth factorizing
        model[2].weight.copy_(torch.randn(64, 4) @ torch.randn(4, 64) / 8)
    return model.eval()


def test_candidates_only_where_macs_drop():
    names = dict(candidates(_low_rank_mlp(), energy=0.99))
    assert "2" in names and names["2"] <= 4


def test_search_keeps_faster_and_rejects_slower():
    model = _low_rank_mlp()
    x = (torch.randn(1, 16),)

    def fake_latency(m):  # pretend the runtime is faster exactly when layer 2 is factorized
        return 1.0 if isinstance(m[2], nn.Linear) else 0.8

    new, rewrites, decisions = lowrank_search(model, x, latency_fn=fake_latency, energy=0.99)
    kept = [d for d in decisions if d.kept]
    assert [r["module"] for r in rewrites] == ["2"] and len(kept) == 1
    assert isinstance(new[2], nn.Sequential) and isinstance(model[2], nn.Linear)

    _, rewrites2, decisions2 = lowrank_search(model, x, latency_fn=lambda m: 1.0, energy=0.99)
    assert rewrites2 == [] and all("rejected: latency" in d.reason for d in decisions2)


def test_search_rejects_when_accuracy_drops():
    model = _low_rank_mlp()
    x = (torch.randn(1, 16),)
    _, rewrites, decisions = lowrank_search(
        model, x, latency_fn=lambda m: 1.0 if isinstance(m[2], nn.Linear) else 0.5,
        metric_fn=lambda m: 0.9 if isinstance(m[2], nn.Linear) else 0.8, max_metric_drop=0.01, energy=0.99)
    assert rewrites == [] and "rejected: metric" in decisions[0].reason
