"""The next-purchase teacher fit (edge_kd.models.recsys.train_sequence_teacher) is a function of its seed:
the same seed gives the same weights whatever the process's global RNG did before, and the caller's
random stream is left as it was."""
from __future__ import annotations

from pathlib import Path

import torch

from edge_kd.data.transactions import NextPurchaseOptions, load_next_purchase
from edge_kd.models.recsys import sequence_recommender, train_sequence_teacher

SLICE = Path(__file__).resolve().parents[3] / "examples" / "data" / "online-retail" / "next_purchase_slice.csv"


def _data():
    opts = NextPurchaseOptions(history=12)
    return load_next_purchase(SLICE, "train", opts), load_next_purchase(SLICE, "val", opts)


def _fit(seed: int, rng_draws: int):
    train, val = _data()
    torch.randn(rng_draws)   # whatever ran before in this process (other stages, other targets)
    model = sequence_recommender(train.num_classes, history=12, dim=16, layers=1, heads=2)
    model, metrics = train_sequence_teacher(model, train, val, epochs=2, batch_size=16, seed=seed)
    return model.state_dict(), metrics


def test_same_seed_same_teacher_whatever_ran_before():
    a, ma = _fit(0, 1)
    b, mb = _fit(0, 1000)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ma["val_recall@10"] == mb["val_recall@10"]
    c, _ = _fit(1, 1)
    assert not torch.equal(a["item.weight"], c["item.weight"])


def test_fit_leaves_the_callers_random_stream_alone():
    train, val = _data()
    model = sequence_recommender(train.num_classes, history=12, dim=16, layers=1, heads=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_sequence_teacher(model, train, val, epochs=1, batch_size=16, seed=0)
    assert torch.equal(torch.rand(3), expected)
