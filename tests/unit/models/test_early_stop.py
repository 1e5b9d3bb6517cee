"""BestWeights (edge_kd.models.early_stop): the best epoch's weights come back, patience stops the loop,
and best_epoch counts from 1."""
from __future__ import annotations

import torch
from torch import nn

from edge_kd.models.early_stop import BestWeights


def test_best_epoch_weights_restored_and_patience_stops():
    model = nn.Linear(2, 1)
    keeper = BestWeights(model, patience=2)
    stops = []
    for epoch, score in enumerate([0.1, 0.5, 0.4, 0.3, 0.9]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        stops.append(keeper.update(score))
    # Two epochs without improvement after epoch 2 (score 0.5): stop at the fourth; the fifth is not run
    # by a loop that breaks, but a loop that goes on may still improve.
    assert stops == [False, False, False, True, False]
    assert keeper.best == 0.9 and keeper.best_epoch == 5
    keeper = BestWeights(model, patience=10)
    for epoch, score in enumerate([0.2, 0.7, 0.6]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        keeper.update(score)
    keeper.restore()
    assert keeper.best_epoch == 2 and torch.all(model.weight == 1.0)


def test_nothing_better_than_start_keeps_the_model():
    model = nn.Linear(2, 1)
    before = model.weight.detach().clone()
    keeper = BestWeights(model, patience=3, start=1.0)
    assert keeper.update(0.5) is False
    with torch.no_grad():
        model.weight.add_(1.0)
    keeper.restore()
    assert keeper.best_epoch == 0 and torch.equal(model.weight, before + 1.0)
