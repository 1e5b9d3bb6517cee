"""Next-purchase recommendation models over a padded history of item ids (``edge_kd.data.transactions``).

* ``sequence_recommender``: the teacher, SASRec-style (Kang & McAuley 2018): item + position
  embeddings, pre-LayerNorm self-attention blocks over the history (padding masked out), the newest
  position's state scored against every item's embedding (tied output table) plus a per-item bias.
  Attention is written with Linear/matmul/softmax so it exports to .pte, .onnx and .tflite alike.
* ``item_bag_student``: the student, a recency-weighted bag of item embeddings and a residual MLP,
  one output per item, or with ``tied=True`` each item scored by its own embedding row (as the
  teacher). Its masked mean is the hashed text student's (see ``edge_kd.models.students.text``), so
  XNNPACK delegates every op; the embedding table is stored int8 on every runtime (``[quantization]
  embeddings``).

Both read ``history`` int64 ``[B, L]``: input id = 1 + the item's output index, 0 = padding, newest
last (left-padded). ``train_sequence_teacher`` fits the teacher with the multi-target softmax loss
(``edge_kd.distill.losses.next_items_loss``) and keeps the epoch with the best validation recall@10;
the fit depends on its seed only (initial weights included), not on what ran before in the process.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edge_kd.models.early_stop import BestWeights


def _token_mask(num_items: int) -> torch.Tensor:
    mask = torch.ones(num_items + 1, 1)
    mask[0] = 0.0
    return mask


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dh = heads, dim // heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dh)) + key_bias
        att = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, n, d)
        x = x + self.drop(self.proj(att))
        return x + self.drop(self.ff(self.ln2(x)))


class SequenceRecommender(nn.Module):
    """SASRec-style teacher (see the module doc)."""

    def __init__(self, num_items: int, history: int = 50, dim: int = 128, layers: int = 2, heads: int = 4,
                 dropout: float = 0.2):
        super().__init__()
        self.num_items, self.history = int(num_items), int(history)
        self.item = nn.Embedding(self.num_items + 1, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, self.history, dim))
        # Padding keys get -1e4 added to their attention scores: a lookup, no id arithmetic.
        pad = torch.zeros(self.num_items + 1, 1)
        pad[0] = -1e4
        self.register_buffer("pad_bias", pad, persistent=False)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(self.num_items))
        self.scale = math.sqrt(dim)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every weight afresh, from ``generator`` when given. ``train_sequence_teacher`` calls it
        with a generator seeded by the fit's seed: the weights the builder drew came from the process's
        global RNG, whose state depends on everything that ran before, so the same recipe fitted
        different teachers in different processes (test recall@10 0.1470-0.1517 over four builds)."""
        dim = self.item.embedding_dim
        with torch.no_grad():
            self.item.weight.normal_(0.0, dim ** -0.5, generator=generator)
            self.item.weight[0].zero_()
            self.pos.normal_(0.0, 0.02, generator=generator)
            self.bias.zero_()
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    # nn.Linear's own init (kaiming-uniform weight, fan-in bias), with the generator.
                    bound = 1.0 / math.sqrt(module.in_features)
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.uniform_(-bound, bound, generator=generator)
                elif isinstance(module, nn.LayerNorm):
                    module.reset_parameters()

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.item(history) * self.scale + self.pos)
        key_bias = F.embedding(history, self.pad_bias).transpose(1, 2).unsqueeze(1)   # [B, 1, 1, L]
        for block in self.blocks:
            x = block(x, key_bias)
        h = self.norm(x[:, -1])
        return torch.matmul(h, self.item.weight[1:].t()) + self.bias


def sequence_recommender(num_items: int, history: int = 50, dim: int = 128, layers: int = 2, heads: int = 4,
                         dropout: float = 0.2) -> SequenceRecommender:
    """Factory used by ModelSpec (``edge_kd.models.recsys:sequence_recommender``)."""
    return SequenceRecommender(num_items, history, dim, layers, heads, dropout).eval()


class ItemBagStudent(nn.Module):
    """Recency-weighted bag of item embeddings + residual MLP (see the module doc)."""

    def __init__(self, num_items: int, dim: int = 64, history: int = 50, dropout: float = 0.1, tied: bool = False):
        super().__init__()
        self.num_items, self.dim, self.history, self.tied = int(num_items), int(dim), int(history), bool(tied)
        self.embed = nn.Embedding(self.num_items + 1, self.dim, padding_idx=0)
        nn.init.normal_(self.embed.weight, std=0.1)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.register_buffer("token_mask", _token_mask(self.num_items), persistent=False)
        # One weight per position: the newest products say more about the next basket than old ones.
        self.recency = nn.Parameter(torch.linspace(0.5, 1.5, self.history).reshape(1, self.history, 1))
        self.fc1 = nn.Linear(self.dim, self.dim)
        self.fc2 = nn.Linear(self.dim, self.dim)
        self.drop = nn.Dropout(dropout)
        if self.tied:
            # Tied output layer (as the teacher's, and SASRec's): an item's score is its own embedding
            # row dotted with the pooled history, so every training signal for an item also shapes how
            # it reads as history. One output per table row; row 0 (padding) is sliced off the scores.
            # Exporters see a Linear that shares its weight with the Embedding: each int8 backend stores
            # it once per use, int8, as it stores the untied pair.
            self.out = nn.Linear(self.dim, self.num_items + 1)
            self.out.weight = self.embed.weight
        else:
            self.out = nn.Linear(self.dim, self.num_items)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        mask = F.embedding(history, self.token_mask)                            # [B, L, 1]: 1 = item
        weighted = self.embed(history) * (mask * self.recency)                  # [B, L, D]
        # [B, D, L, 1] averaged over (L, 1): the token reduction XNNPACK delegates (global average pooling).
        mean_e = weighted.transpose(1, 2).unsqueeze(-1).mean(dim=(2, 3), keepdim=True).flatten(1)
        mean_m = mask.transpose(1, 2).unsqueeze(-1).mean(dim=(2, 3), keepdim=True).flatten(1)
        pooled = mean_e / mean_m.clamp(min=1.0 / history.shape[1])
        h = pooled + self.fc2(self.drop(F.relu(self.fc1(pooled))))
        scores = self.out(self.drop(h))
        return scores[:, 1:] if self.tied else scores


def item_bag_student(num_items: int, dim: int = 64, history: int = 50, dropout: float = 0.1,
                     tied: bool = False) -> ItemBagStudent:
    """Factory used by ModelSpec (``edge_kd.models.recsys:item_bag_student``)."""
    return ItemBagStudent(num_items, dim, history, dropout, tied)


def _scores(model: nn.Module, history: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, len(history), batch_size):
            outs.append(model(torch.from_numpy(history[s:s + batch_size])).float().numpy())
    return np.concatenate(outs)


def train_sequence_teacher(model: SequenceRecommender, train: Any, val: Any, *, epochs: int = 30, lr: float = 1e-3,
                           batch_size: int = 128, weight_decay: float = 1e-4, seed: int = 0, patience: int = 4,
                           log: Any = None) -> tuple[SequenceRecommender, dict[str, Any]]:
    """Fit the teacher on next-purchase data sets (``NextPurchaseDataset``): AdamW, multi-target softmax
    loss, best validation recall@10 kept. Returns the model and its metrics, with the training CPU time.

    >>> model, metrics = train_sequence_teacher(sequence_recommender(4053), splits.train, splits.val)  # doctest: +SKIP
    """
    # Same seed, same teacher, in any process: the initial weights from the seed too, and dropout
    # from the seeded global RNG (restored afterwards, so the caller's random stream is untouched).
    model.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _fit_sequence_teacher(model, train, val, epochs=epochs, lr=lr, batch_size=batch_size,
                                     weight_decay=weight_decay, seed=seed, patience=patience, log=log)


def _fit_sequence_teacher(model: SequenceRecommender, train: Any, val: Any, *, epochs: int, lr: float,
                          batch_size: int, weight_decay: float, seed: int, patience: int,
                          log: Any) -> tuple[SequenceRecommender, dict[str, Any]]:
    from edge_kd.distill.losses import next_items_loss
    from edge_kd.metrics import ndcg_at_k, recall_at_k

    rng = np.random.default_rng(seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = torch.from_numpy(train.history)
    labels = torch.from_numpy(train.labels)
    steps = epochs * math.ceil(len(train) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    keeper, log_rows = BestWeights(model, patience, start=-1.0), []
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(train)))
        total = 0.0
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size]
            loss = next_items_loss(model(history[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        scores = _scores(model, val.history)
        rec = recall_at_k(val.labels, scores, 10)
        log_rows.append({"epoch": epoch + 1, "train_loss": total / len(train), "val_recall@10": rec})
        if log is not None:
            log(f"teacher sasrec: epoch {epoch + 1}/{epochs} loss {total / len(train):.4f} val recall@10 {rec:.4f}")
        if keeper.update(rec):
            break
    keeper.restore()
    model.eval()
    val_scores = _scores(model, val.history)
    metrics = {"val_recall@10": keeper.best, "val_ndcg@10": ndcg_at_k(val.labels, val_scores, 10),
               "epochs": len(log_rows),
               "train_cpu_seconds": round(time.process_time() - cpu0, 1),
               "train_wall_seconds": round(time.perf_counter() - wall0, 1), "history": log_rows}
    return model, metrics
