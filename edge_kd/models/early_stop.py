"""Keep the best validation epoch's weights and stop after ``patience`` epochs without improvement: the
loop of the small in-process fits (tabular MLP, sequence recommender, a teacher's linear head). The
distillation trainer and the end-to-end teacher fine-tune keep theirs in a resumable checkpoint instead
(edge_kd.distill.trainer, edge_kd.models.finetune)."""
from __future__ import annotations

import math
from typing import Any


class BestWeights:
    """``update(score)`` after each epoch (higher is better) returns True when training should stop;
    ``restore()`` loads the best epoch's weights back into the model; ``best_epoch`` counts from 1
    (0 before any improvement)."""

    def __init__(self, model: Any, patience: int, start: float = -math.inf):
        self.model, self.patience = model, patience
        self.best, self.stale, self._state = start, 0, None
        self.epochs = self.best_epoch = 0

    def update(self, score: float) -> bool:
        self.epochs += 1
        if score > self.best:
            self.best, self.stale, self.best_epoch = score, 0, self.epochs
            self._state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore(self) -> None:
        if self._state is not None:
            self.model.load_state_dict(self._state)
