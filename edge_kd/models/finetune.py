"""Turn a pretrained backbone into a task teacher when the user has no fine-tuned teacher.

Backbone features are computed ONCE per (weights, data) pair and cached on disk as ``.npy``
(keyed by a hash of the trunk weights and the data set's fingerprint); the linear head is then
trained on the cached features with AdamW, which takes seconds on two CPU cores. Optionally the
last ``unfreeze_last`` trunk blocks are trained end to end afterwards (full forward passes: slow
on CPU; off by default), or, with ``unfreeze_last = "all"``, the whole network (BatchNorm and dropout
in training mode, augmentation for images, warm-up + cosine AdamW, optional label smoothing; the
epoch with the best validation accuracy is kept). A whole-network fine-tune is cached on disk
(``<cache>/teachers/``, keyed by the pretrained weights, the data fingerprints and the settings that
change the result) and checkpointed after every epoch, so an interrupted fit resumes and a second
build, or a second process, reuses it.

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
from edge_kd.models.early_stop import BestWeights


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
    #: trunk blocks trained end to end after the head (0: none), or "all": the whole network.
    unfreeze_last: int | str = 0
    unfreeze_epochs: int = 2
    unfreeze_lr: float = 1e-4
    #: batch size of the end-to-end epochs (0: ``feature_batch_size``).
    unfreeze_batch_size: int = 0
    #: "all" only: label smoothing of the cross-entropy, warm-up epochs of the learning rate,
    #: and image augmentation (random resized crop, horizontal flip, brightness/contrast jitter).
    label_smoothing: float = 0.0
    warmup_epochs: float = 1.0
    augment: bool = True

    @property
    def full(self) -> bool:
        return self.unfreeze_last == "all"

    def __post_init__(self) -> None:
        if isinstance(self.unfreeze_last, str) and self.unfreeze_last != "all":
            raise ValueError(f"finetune.unfreeze_last must be a number of blocks or \"all\", got {self.unfreeze_last!r}")
        if not (0 <= self.label_smoothing < 1) or self.warmup_epochs < 0 or self.unfreeze_batch_size < 0:
            raise ValueError("finetune: label_smoothing must be in [0, 1), warmup_epochs and unfreeze_batch_size >= 0")
        if self.epochs < 1 or self.batch_size < 1 or self.feature_batch_size < 1:
            raise ValueError("finetune: epochs, batch_size and feature_batch_size must be >= 1")
        if not (0 < self.val_fraction < 1):
            raise ValueError(f"finetune.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr <= 0 or self.unfreeze_lr <= 0 or self.weight_decay < 0:
            raise ValueError("finetune: learning rates must be > 0 and weight_decay >= 0")
        if (not self.full and int(self.unfreeze_last) < 0) or self.unfreeze_epochs < 0:
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
    keeper = BestWeights(head, patience=settings.epochs, start=-1.0)   # every epoch runs: the schedule decays to 0
    for epoch in range(settings.epochs):
        perm = torch.from_numpy(gen.permutation(len(x)))
        for start in range(0, len(x), settings.batch_size):
            idx = perm[start:start + settings.batch_size]
            loss = nn.functional.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        keeper.update(_accuracy(head, val_feats, val_labels))
    keeper.restore()
    return {"val_accuracy": keeper.best, "best_epoch": keeper.best_epoch,
            "train_accuracy": _accuracy(head, train_feats, train_labels)}


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



#: Bumped when the end-to-end fit changes what it computes (old cached teachers are then refitted).
FULL_FINETUNE_VERSION = "full-v1"


def evaluate_accuracy(model: nn.Module, ds: Dataset, batch_size: int = 64) -> float:
    """Top-1 accuracy of ``model`` (eval mode) over every row of ``ds``."""
    if len(ds) == 0:
        return math.nan
    model.eval()
    names = tuple(ds.input_names)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(ds), batch_size):
            idx = np.arange(start, min(start + batch_size, len(ds)))
            inputs = _trim_padding([torch.from_numpy(np.ascontiguousarray(a)) for a in ds.inputs(idx)], names)
            correct += int((model(*inputs).argmax(1).numpy() == ds.labels[idx]).sum())
    return correct / len(ds)


def augment_images(pixels: np.ndarray, gen: np.random.Generator, *, min_area: float = 0.25) -> torch.Tensor:
    """Training augmentation for a handful of photos per class: random resized crop (area
    ``min_area``..1, aspect 3/4..4/3, resized back to the input size), horizontal flip, brightness
    and contrast jitter (+-20%). uint8 NHWC in, float32 NCHW in pixel units (0..255) out."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float()
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        for _ in range(10):
            area = gen.uniform(min_area, 1.0) * h * w
            ratio = math.exp(gen.uniform(math.log(3 / 4), math.log(4 / 3)))
            ch, cw = int(round(math.sqrt(area / ratio))), int(round(math.sqrt(area * ratio)))
            if 0 < ch <= h and 0 < cw <= w:
                break
        else:
            ch, cw = h, w
        top, left = int(gen.integers(0, h - ch + 1)), int(gen.integers(0, w - cw + 1))
        crop = x[i:i + 1, :, top:top + ch, left:left + cw]
        if (ch, cw) != (h, w):
            crop = nn.functional.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
        if gen.random() < 0.5:
            crop = crop.flip(3)
        brightness, contrast = gen.uniform(0.8, 1.2), gen.uniform(0.8, 1.2)
        mean = crop.mean()
        out[i] = ((crop - mean) * contrast + mean) * brightness
    return out.clamp_(0, 255)


def scale_pixels_torch(x: torch.Tensor, preprocessing: str) -> torch.Tensor:
    """``edge_kd.data.images.scale_pixels`` on a float NCHW tensor in pixel units."""
    from edge_kd.data.images import IMAGENET_MEAN, IMAGENET_STD

    if preprocessing == "tf":
        return (x - 127.0) / 128.0
    mean = torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def full_finetune_key(model: nn.Module, train: Dataset, val: Dataset, settings: FinetuneSettings) -> str:
    """What an end-to-end fit depends on: the pretrained trunk, both data sets and the settings that
    change the result (not the code around it: a cached teacher survives unrelated edits)."""
    s = settings
    fields = (FULL_FINETUNE_VERSION, trunk_hash(model), train.fingerprint(), val.fingerprint(), s.epochs, s.lr,
              s.weight_decay, s.batch_size, s.seed, s.unfreeze_epochs, s.unfreeze_lr,
              s.unfreeze_batch_size or s.feature_batch_size, s.label_smoothing, s.warmup_epochs, s.augment)
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:20]


def train_end_to_end(model: nn.Module, train: Dataset, val: Dataset, settings: FinetuneSettings, *,
                     cache_dir: str | os.PathLike[str] | None = None, cache: bool = True) -> dict[str, Any]:
    """Train every parameter for ``settings.unfreeze_epochs`` epochs (AdamW, linear warm-up then cosine
    to zero, per step) and keep the epoch with the best validation accuracy.

    With ``cache`` the result is ``<cache>/teachers/<Model>-<key>.pt`` (a state dict) and a checkpoint
    is written after every epoch (``.ckpt.pt`` beside it): a killed fit resumes from its last epoch.
    Per-epoch figures (loss, val accuracy, CPU and wall seconds) are returned under ``history``."""
    from edge_kd.console import info
    from edge_kd.data.images import ImageDataset
    from edge_kd.pipeline.atomic import atomic_path

    key = full_finetune_key(model, train, val, settings)
    path = ckpt_path = None
    if cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        path = root / "teachers" / f"{type(model).__name__}-{key}.pt"
        ckpt_path = path.with_suffix(".ckpt.pt")
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["model"])
            info(f"teacher fine-tune: reusing the end-to-end fit {path}")
            return {**dict(saved["metrics"]), "full_finetune_cache": str(path), "full_finetune_cache_hit": True}
    batch = settings.unfreeze_batch_size or settings.feature_batch_size
    names = tuple(train.input_names)
    images = isinstance(train, ImageDataset) and settings.augment
    steps_per_epoch = math.ceil(len(train) / batch)
    total = settings.unfreeze_epochs * steps_per_epoch
    warmup = settings.warmup_epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=settings.unfreeze_lr, weight_decay=settings.weight_decay)
    state: dict[str, Any] = {"epoch": 0, "best_accuracy": -1.0, "best_epoch": 0, "history": [],
                             "cpu_seconds": 0.0, "wall_seconds": 0.0}
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if ckpt_path is not None and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        best_state = ckpt["best"]
        state = dict(ckpt["state"])
        info(f"teacher fine-tune: resuming after epoch {state['epoch']} from {ckpt_path}")

    def lr_at(step: int) -> float:
        if step < warmup:
            return settings.unfreeze_lr * (step + 1) / warmup
        progress_ = (step - warmup) / max(total - warmup, 1)
        return settings.unfreeze_lr * 0.5 * (1 + math.cos(math.pi * min(progress_, 1.0)))

    for epoch in range(int(state["epoch"]), settings.unfreeze_epochs):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # The data order and augmentation of epoch e depend only on (seed, e): a resumed fit sees
        # the same batches as an uninterrupted one.
        gen = np.random.default_rng([settings.seed, 7, epoch])
        torch.manual_seed(settings.seed * 1000 + epoch)
        model.train()
        perm = gen.permutation(len(train))
        loss_sum, seen = 0.0, 0
        for b, start in enumerate(range(0, len(perm), batch)):
            idx = np.sort(perm[start:start + batch])
            if images:
                inputs = [scale_pixels_torch(augment_images(train.pixels(idx), gen), train.preprocessing)]
            else:
                inputs = _trim_padding([torch.from_numpy(np.ascontiguousarray(a)) for a in train.inputs(idx)], names)
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch * steps_per_epoch + b)
            loss = nn.functional.cross_entropy(model(*inputs), torch.from_numpy(train.labels[idx]),
                                               label_smoothing=settings.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            seen += len(idx)
        acc = evaluate_accuracy(model, val, settings.feature_batch_size)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        state["epoch"] = epoch + 1
        state["cpu_seconds"] = round(float(state["cpu_seconds"]) + cpu, 1)
        state["wall_seconds"] = round(float(state["wall_seconds"]) + wall, 1)
        state["history"] = [*state["history"], {"epoch": epoch + 1, "train_loss": round(loss_sum / max(seen, 1), 4),
                                                 "val_accuracy": round(acc, 4), "cpu_seconds": round(cpu, 1),
                                                 "wall_seconds": round(wall, 1)}]
        if acc > float(state["best_accuracy"]):
            state["best_accuracy"], state["best_epoch"] = acc, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        info(f"teacher fine-tune epoch {epoch + 1}/{settings.unfreeze_epochs}: loss {loss_sum / max(seen, 1):.4f} "
             f"val accuracy {acc:.4f} (best {float(state['best_accuracy']):.4f} at epoch {state['best_epoch']}) "
             f"CPU {cpu:.0f} s, wall {wall:.0f} s")
        if ckpt_path is not None:
            with atomic_path(ckpt_path) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "best": best_state,
                            "state": state}, tmp)
    model.load_state_dict(best_state)
    model.eval()
    metrics = {"full_finetune_epochs": settings.unfreeze_epochs, "full_finetune_best_epoch": int(state["best_epoch"]),
               "full_finetune_val_accuracy": float(state["best_accuracy"]),
               "full_finetune_cpu_seconds": float(state["cpu_seconds"]),
               "full_finetune_wall_seconds": float(state["wall_seconds"]), "full_finetune_history": state["history"]}
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save({"model": model.state_dict(), "metrics": metrics}, tmp)
        ckpt_path.unlink(missing_ok=True)
    return {**metrics, "full_finetune_cache": str(path) if path else None, "full_finetune_cache_hit": False}


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
    if settings.full:
        metrics.update(train_end_to_end(model, train, val, settings, cache_dir=cache_dir, cache=cache))
        for name, ds in (("val", val), ("test", test)):
            if ds is not None:
                metrics[f"{name}_accuracy"] = evaluate_accuracy(model, ds, settings.feature_batch_size)
    elif settings.unfreeze_last:
        t0 = time.perf_counter()
        with deterministic(settings.seed + 1):
            _unfreeze_and_train(model, train, settings)
        metrics["unfreeze_seconds"] = round(time.perf_counter() - t0, 2)
        for name, ds in (("val", val), ("test", test)):
            if ds is not None:
                f, _ = compute_features(model, ds, batch_size=settings.feature_batch_size, cache=False)
                metrics[f"{name}_accuracy"] = _accuracy(model.head, f, ds.labels)
    return model.eval(), metrics
