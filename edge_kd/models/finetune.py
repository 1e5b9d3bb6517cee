"""Turn a pretrained backbone into a task teacher when the user has no fine-tuned teacher.

Backbone features are computed ONCE per (weights, data) pair and cached on disk as ``.npy``
(keyed by a hash of the trunk weights and the data set's fingerprint); the linear head is then
trained on the cached features with AdamW, which takes seconds on two CPU cores. Optionally the
last ``unfreeze_last`` trunk blocks are trained end to end afterwards (full forward passes: slow
on CPU; off by default).

A backbone is any ``nn.Module`` with ``forward_features(*inputs) -> [N, D]``, a ``head``
(``nn.Linear``) and ``replace_head(num_classes)`` (the zoo's models have them); ``tail_blocks()``
is needed only for ``unfreeze_last``. Data sets must yield the model's inputs (tokenize text
with ``ds.tokenized(model.tokenize)``; scale images the way the backbone was trained).

    model, metrics = finetune_head(efficientnet_lite0(81), train, val=val, test=test)
    metrics["test_accuracy"]
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from edge_kd.data.base import Dataset
from edge_kd.errors import InputError


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGE_KD_CACHE", Path.home() / ".cache" / "edge_kd"))


@dataclass(frozen=True)
class FinetuneSettings:
    """Head training: AdamW over cached features, best epoch chosen on validation accuracy."""

    epochs: int = 100
    lr: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 256
    seed: int = 0
    val_fraction: float = 0.1
    feature_batch_size: int = 64
    unfreeze_last: int = 0
    unfreeze_epochs: int = 2
    unfreeze_lr: float = 1e-4

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.feature_batch_size < 1:
            raise ValueError("finetune: epochs, batch_size and feature_batch_size must be >= 1")
        if not (0 < self.val_fraction < 1):
            raise ValueError(f"finetune.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr <= 0 or self.unfreeze_lr <= 0 or self.weight_decay < 0:
            raise ValueError("finetune: learning rates must be > 0 and weight_decay >= 0")
        if self.unfreeze_last < 0 or self.unfreeze_epochs < 0:
            raise ValueError("finetune: unfreeze_last and unfreeze_epochs must be >= 0")


def _check_backbone(model: nn.Module) -> None:
    for attr in ("forward_features", "head", "replace_head"):
        if not hasattr(model, attr):
            raise InputError(f"{type(model).__name__} cannot be fine-tuned: it has no {attr!r} "
                             "(needs forward_features(*inputs), head and replace_head(num_classes))")


def trunk_hash(model: nn.Module) -> str:
    """Hash of every parameter and buffer except the head's (what the features depend on)."""
    head_ids = {id(p) for p in model.head.parameters()}
    h = hashlib.sha256(type(model).__name__.encode())
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if id(t) in head_ids:
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for attr in ("normalize", "image_size"):
        if hasattr(model, attr):
            h.update(f"{attr}={getattr(model, attr)}".encode())
    return h.hexdigest()[:16]


def _trim_padding(inputs: list[torch.Tensor], names: tuple[str, ...]) -> list[torch.Tensor]:
    """Cut token arrays to the longest real sequence in the batch (masked pooling makes the
    result identical, and short support tickets then cost a fraction of the fixed length)."""
    if "attention_mask" not in names:
        return inputs
    mask = inputs[names.index("attention_mask")]
    length = int(mask.sum(1).max().item()) if mask.numel() else 1
    length = max(length, 1)
    return [t[:, :length] if t.dim() == 2 and t.shape[1] == mask.shape[1] and t.dtype == torch.int64 else t
            for t in inputs]


@torch.no_grad()
def compute_features(model: nn.Module, ds: Dataset, *, batch_size: int = 64, cache_dir: str | os.PathLike[str] | None = None,
                     cache: bool = True) -> tuple[np.ndarray, bool]:
    """``forward_features`` over every row, float32 [N, D]; returns (features, cache_hit).

    >>> feats, hit = compute_features(teacher, train_ds, cache_dir="~/.cache/edge_kd")
    """
    _check_backbone(model)
    path = None
    if cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        path = root / "features" / f"{type(model).__name__}-{trunk_hash(model)}-{ds.fingerprint()}.npy"
        if path.is_file():
            feats = np.load(path, allow_pickle=False)
            if feats.shape[0] == len(ds):
                return feats, True
    model.eval()
    order = np.arange(len(ds))
    names = tuple(ds.input_names)
    if "attention_mask" in names:
        # Batch texts of similar length together so padding trims well.
        lengths = ds.inputs()[names.index("attention_mask")].sum(1)
        order = np.argsort(lengths, kind="stable")
    out: np.ndarray | None = None
    from edge_kd.console import progress

    with progress(f"teacher features ({type(model).__name__})", total=len(order), unit=" rows") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            inputs = _trim_padding([torch.from_numpy(np.ascontiguousarray(a)) for a in ds.inputs(idx)], names)
            f = model.forward_features(*inputs).float().numpy()
            if out is None:
                out = np.zeros((len(ds), f.shape[1]), dtype=np.float32)
            out[idx] = f
            bar.update(len(idx))
    if out is None:
        raise InputError(f"{ds.source}: no rows to compute features for")
    if path is not None:
        from edge_kd.pipeline.atomic import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, out)
    return out, False


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and ask for deterministic kernels while fitting, then restore the caller's setting
    (the data order comes from ``np.random.default_rng(seed)`` in the loops themselves)."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def _accuracy(head: nn.Linear, feats: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return math.nan
    with torch.no_grad():
        pred = head(torch.from_numpy(feats)).argmax(1).numpy()
    return float((pred == labels).mean())


def train_linear_head(head: nn.Linear, train_feats: np.ndarray, train_labels: np.ndarray, val_feats: np.ndarray,
                      val_labels: np.ndarray, settings: FinetuneSettings) -> dict[str, Any]:
    """AdamW with a cosine schedule on fixed features; keeps the epoch with the best val accuracy."""
    torch.manual_seed(settings.seed)
    gen = np.random.default_rng(settings.seed)
    x = torch.from_numpy(train_feats)
    y = torch.from_numpy(train_labels)
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(x) / settings.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs * steps_per_epoch)
    best, best_epoch, best_state = -1.0, 0, None
    for epoch in range(settings.epochs):
        perm = torch.from_numpy(gen.permutation(len(x)))
        for start in range(0, len(x), settings.batch_size):
            idx = perm[start:start + settings.batch_size]
            loss = nn.functional.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = _accuracy(head, val_feats, val_labels)
        if acc > best:
            best, best_epoch = acc, epoch + 1
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    if best_state is not None:
        head.load_state_dict(best_state)
    return {"val_accuracy": best, "best_epoch": best_epoch, "train_accuracy": _accuracy(head, train_feats, train_labels)}


def _unfreeze_and_train(model: nn.Module, train: Dataset, settings: FinetuneSettings) -> None:
    if not hasattr(model, "tail_blocks"):
        raise InputError(f"{type(model).__name__} has no tail_blocks(); cannot unfreeze trunk blocks")
    blocks = list(model.tail_blocks())[: settings.unfreeze_last]
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for m in (*blocks, model.head) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=settings.unfreeze_lr, weight_decay=settings.weight_decay)
    gen = np.random.default_rng(settings.seed + 1)
    names = tuple(train.input_names)
    # Eval mode: BatchNorm statistics and dropout stay as pretrained; only weights move.
    model.eval()
    for _ in range(settings.unfreeze_epochs):
        perm = gen.permutation(len(train))
        for start in range(0, len(perm), settings.feature_batch_size):
            idx = perm[start:start + settings.feature_batch_size]
            inputs = _trim_padding([torch.from_numpy(np.ascontiguousarray(a)) for a in train.inputs(idx)], names)
            loss = nn.functional.cross_entropy(model(*inputs), torch.from_numpy(train.labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    for p in model.parameters():
        p.requires_grad_(True)


def finetune_head(backbone_model: nn.Module, dataset: Dataset, *, val: Dataset | None = None,
                  test: Dataset | None = None, settings: FinetuneSettings | None = None,
                  cache_dir: str | os.PathLike[str] | None = None, cache: bool = True
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """Fit a new linear head (and optionally the last trunk blocks) on ``dataset``.

    Without ``val`` a stratified ``settings.val_fraction`` of ``dataset`` is held out. Returns the
    model (backbone + trained head, eval mode) and metrics: ``val_accuracy``, ``test_accuracy``
    (when ``test`` is given), ``train_accuracy``, ``best_epoch``, timings and cache hits.

    >>> ds = load_text_csv("support.csv", "instruction", "intent")
    >>> s = train_val_test_split(ds, val=0.1, test=0.2, seed=0)
    >>> teacher = minilm_classifier(ds.num_classes)
    >>> tok = lambda d: d.tokenized(teacher.tokenize, name="minilm-64")
    >>> model, m = finetune_head(teacher, tok(s.train), val=tok(s.val), test=tok(s.test))
    """
    from edge_kd.data.splits import split_off

    settings = settings or FinetuneSettings()
    _check_backbone(backbone_model)
    train = dataset
    if len(train) == 0:
        raise InputError(f"{dataset.source}: the training split is empty")
    if val is None:
        train, val = split_off(dataset, settings.val_fraction, seed=settings.seed)
    num_classes = dataset.num_classes
    model = backbone_model
    # Always a new head drawn from the seed: a head the builder made with the process's global RNG
    # would make two fits of the same teacher differ (one teacher per build, identical across processes).
    torch.manual_seed(settings.seed)
    model.replace_head(num_classes)
    metrics: dict[str, Any] = {"num_classes": num_classes, "train_rows": len(train), "val_rows": len(val)}
    t0 = time.perf_counter()
    hits = []
    feats = {}
    for name, ds in (("train", train), ("val", val), ("test", test)):
        if ds is None:
            continue
        feats[name], hit = compute_features(model, ds, batch_size=settings.feature_batch_size,
                                            cache_dir=cache_dir, cache=cache)
        hits.append(hit)
    metrics["feature_seconds"] = round(time.perf_counter() - t0, 2)
    metrics["feature_cache_hits"] = sum(hits)
    t0 = time.perf_counter()
    with deterministic(settings.seed):
        metrics.update(train_linear_head(model.head, feats["train"], train.labels, feats["val"], val.labels,
                                         settings))
    metrics["head_seconds"] = round(time.perf_counter() - t0, 2)
    if test is not None:
        metrics["test_accuracy"] = _accuracy(model.head, feats["test"], test.labels)
        metrics["test_rows"] = len(test)
    if settings.unfreeze_last:
        t0 = time.perf_counter()
        with deterministic(settings.seed + 1):
            _unfreeze_and_train(model, train, settings)
        metrics["unfreeze_seconds"] = round(time.perf_counter() - t0, 2)
        for name, ds in (("val", val), ("test", test)):
            if ds is not None:
                f, _ = compute_features(model, ds, batch_size=settings.feature_batch_size, cache=False)
                metrics[f"{name}_accuracy"] = _accuracy(model.head, f, ds.labels)
    return model.eval(), metrics
