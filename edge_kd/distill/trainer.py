"""The student trainer: AdamW with warm-up + cosine decay, validation every epoch with early
stopping on the task metric, an atomic checkpoint every epoch, resume after interruption, and DDP
under torchrun.

Teacher outputs are precomputed (see :mod:`edge_kd.distill.cache`), so a training step runs only
the student. With random training views (``DistillData.views``, e.g. crops and flips of photos) the
teacher runs instead on the very view the student sees (``DistillData.teacher_model``): consistent
teaching, "function matching" (Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and
consistent"); cached logits of the unaugmented rows would teach the student the wrong targets.

A checkpoint (``last.pt``) holds model + loss parameters, optimizer, scheduler, RNG state, the epoch
and the early-stopping state as tensors and plain containers; it is written atomically and read with
``torch.load(weights_only=True)``. Ctrl-C therefore leaves the last complete epoch's checkpoint, never a
half-written one, and ``resume=True`` continues from it with the same result as an uninterrupted run
(shuffling and random views are functions of seed and epoch, and the RNG state is restored).

    data = DistillData(inputs=(ids,), labels=y, teacher=logits)
    result = train_student(student, build_loss("hinton"), data, EvalData((val_ids,), val_y),
                           TrainConfig(epochs=20), checkpoint_dir="out/ckpt")
    result.best_metric
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from edge_kd.distill.ddp import DistEnv, barrier, init_distributed, resolve_device
from edge_kd.distill.losses import FeatureCapture, HintLoss
from edge_kd.errors import InputError
from edge_kd.metrics import METRICS, metric_value  # noqa: F401  (metric_value: part of this API)
from edge_kd.pipeline.atomic import atomic_path

CHECKPOINT_FORMAT = "edge_kd.distill.checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the recipe's ``[distill]`` table supplies them)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    patience: int = 4
    min_delta: float = 0.0
    metric: str = "accuracy"
    seed: int = 0
    device: str = "auto"
    grad_clip: float = 0.0
    eval_batch_size: int = 512
    progress: bool | None = None
    #: At most this many batches per epoch (a short fine-tune, e.g. recovery after a pruning step).
    max_batches: int | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InputError(f"training metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("epochs and batch_size must be >= 1")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise InputError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.lr <= 0:
            raise InputError(f"lr must be > 0, got {self.lr}")
        if self.max_batches is not None and self.max_batches < 1:
            raise InputError(f"max_batches must be >= 1, got {self.max_batches}")


@dataclass
class DistillData:
    """Training rows: model inputs, hard labels, the teacher's cached outputs (``[N, C]`` logits,
    possibly a memory map) and, for hints, cached teacher features by name."""

    inputs: tuple[Any, ...]
    labels: np.ndarray
    teacher: np.ndarray | None = None
    teacher_features: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``views(rows, generator) -> [tensors]``: a random training view of the inputs of ``rows`` (replaces
    #: reading ``inputs``); drawn from a generator seeded by (seed, epoch), so a resumed run sees the same views.
    views: Callable[[np.ndarray, np.random.Generator], list[torch.Tensor]] | None = None
    #: The teacher itself, run (eval mode, no gradient) on every batch the student sees; needed with ``views``.
    teacher_model: nn.Module | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if n == 0:
            raise InputError("the training split is empty")
        if self.views is not None and self.teacher is not None and self.teacher_model is None:
            raise InputError("random training views need the teacher model (teacher_model): cached teacher outputs "
                             "were computed on the unaugmented rows, not on the views the student sees")
        if self.views is not None and self.teacher_features:
            raise InputError("hints read cached teacher features of the unaugmented rows: they cannot be combined "
                             "with random training views")
        for i, a in enumerate(self.inputs):
            if len(a) != n:
                raise InputError(f"training input {i} has {len(a)} rows but there are {n} labels")
        if self.teacher is not None and len(self.teacher) != n:
            raise InputError(f"teacher outputs have {len(self.teacher)} rows but the training split has {n}")
        for name, a in self.teacher_features.items():
            if len(a) != n:
                raise InputError(f"teacher feature {name!r} has {len(a)} rows but the training split has {n}")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class EvalData:
    inputs: tuple[Any, ...]
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.labels) == 0:
            raise InputError("the validation split is empty")


@dataclass(frozen=True)
class Hint:
    """A FitNets hint: the student module named ``student_layer`` regresses (through a learned
    projector) onto the cached teacher feature ``teacher_feature``, weighted by ``weight``."""

    student_layer: str
    teacher_feature: str
    weight: float = 1.0


@dataclass
class TrainResult:
    best_metric: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int
    history: list[dict[str, float]]
    metric: str
    device: str
    world_size: int
    #: Optimizer steps taken by this call (not counting epochs resumed from a checkpoint).
    steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(model: nn.Module, inputs: Sequence[Any], *, batch_size: int = 512, device: str = "cpu") -> np.ndarray:
    """Model outputs over array inputs, in eval mode, without gradients."""
    model.eval()
    n = len(inputs[0])
    outs = []
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            batch = [torch.as_tensor(np.asarray(a[s:s + batch_size])).to(device) for a in inputs]
            outs.append(model(*batch).float().cpu().numpy())
    return np.concatenate(outs)


def evaluate(model: nn.Module, data: EvalData, metric: str = "accuracy", *, batch_size: int = 512,
             device: str = "cpu") -> float:
    return metric_value(predict(model, data.inputs, batch_size=batch_size, device=device), data.labels, metric)


# ---- the objective -----------------------------------------------------------------------------
class _Objective(nn.Module):
    """Student + KD loss (+ hint projectors) as one module, so DDP syncs every learned parameter."""

    def __init__(self, student: nn.Module, loss: nn.Module, hints: Sequence[Hint], hint_losses: nn.ModuleDict):
        super().__init__()
        self.student = student
        self.loss = loss
        self.hint_losses = hint_losses
        self._hints = list(hints)
        self._capture = FeatureCapture(student, [h.student_layer for h in hints]) if hints else None

    def forward(self, inputs: list[torch.Tensor], teacher: torch.Tensor | None, labels: torch.Tensor,
                teacher_feats: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.student(*inputs)
        loss = self.loss(out, teacher, labels)
        if self._capture is not None:
            for i, hint in enumerate(self._hints):
                feat = self._capture.features[hint.student_layer]
                loss = loss + hint.weight * self.hint_losses[str(i)](feat, teacher_feats[hint.teacher_feature])
        return loss


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def _to_tensor(a: Any, idx: np.ndarray) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(idx)]
    return torch.as_tensor(np.asarray(a[idx]))


def _gather(a: Any, idx: np.ndarray) -> torch.Tensor:
    # memmaps read fastest in ascending order; put the rows back in batch order afterwards.
    if isinstance(a, np.memmap):
        order = np.argsort(idx, kind="stable")
        rows = np.asarray(a[idx[order]])
        out = np.empty_like(rows)
        out[order] = rows
        return torch.as_tensor(out)
    return _to_tensor(a, idx)


def _use_progress(config: TrainConfig, env: DistEnv) -> bool:
    if not env.is_main:
        return False
    if config.progress is not None:
        return config.progress
    return sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ


def train_student(student: nn.Module, loss: nn.Module, train: DistillData, val: EvalData,
                  config: TrainConfig = TrainConfig(), *, checkpoint_dir: str | os.PathLike[str] | None = None,
                  resume: bool = False, hints: Sequence[Hint] = (),
                  on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
                  env: DistEnv | None = None) -> TrainResult:
    """Train ``student`` in place to minimise ``loss(student(x), teacher, y)``; on return it holds
    the weights of the best validation epoch.

    ``checkpoint_dir`` receives ``last.pt`` (every epoch) and ``best.safetensors``; with
    ``resume=True`` training continues from ``last.pt`` when it exists. Under torchrun the process
    group is joined automatically and only rank 0 writes.

    >>> result = train_student(student, build_loss("ce"), data, val, TrainConfig(epochs=3))  # doctest: +SKIP
    """
    from torch.utils.data.distributed import DistributedSampler

    env = env or init_distributed(config.device)
    device = resolve_device(config.device, env)
    torch.manual_seed(config.seed)
    if train.teacher is None and train.teacher_model is None and not _is_hard_label(loss):
        raise InputError("this KD loss needs teacher outputs, but none were given")
    if train.teacher is not None and train.teacher.ndim == 2 and train.teacher.shape[1] > 1:
        n_classes = int(train.teacher.shape[1])
        bad = np.asarray(train.labels) >= n_classes
        if bad.any():
            raise InputError(f"the data has label ids up to {int(np.max(train.labels))} but the teacher predicts "
                             f"only {n_classes} classes: labels the teacher does not know")

    student.to(device)
    teacher_model = train.teacher_model.to(device).eval() if train.teacher_model is not None else None
    hint_losses = nn.ModuleDict()
    if hints:
        missing = [h.teacher_feature for h in hints if h.teacher_feature not in train.teacher_features]
        if missing:
            raise InputError(f"hint teacher feature(s) {missing} were not cached; have: "
                             f"{sorted(train.teacher_features) or 'none'}")
        probe_idx = np.arange(min(2, len(train)))
        with FeatureCapture(student, [h.student_layer for h in hints]) as feats:
            student.eval()
            with torch.no_grad():
                student(*[_gather(a, probe_idx).to(device) for a in train.inputs])
        for i, h in enumerate(hints):
            hint_losses[str(i)] = HintLoss.for_features(feats[h.student_layer],
                                                        torch.as_tensor(np.asarray(train.teacher_features[h.teacher_feature][:2])))
    objective = _Objective(student, loss, hints, hint_losses).to(device)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    sampler = DistributedSampler(range(len(train)), num_replicas=env.world_size, rank=env.rank, shuffle=True,
                                 seed=config.seed, drop_last=False)
    steps_per_epoch = math.ceil(len(sampler) / config.batch_size)
    if config.max_batches is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_batches)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, max(1, int(total * config.warmup_fraction))))
    model: nn.Module = objective
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(objective, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    from edge_kd.metrics import better, higher_is_better

    state = {"epoch": 0, "best_metric": -math.inf if higher_is_better(config.metric) else math.inf, "best_epoch": 0, "bad_epochs": 0, "history": []}
    best_state: dict[str, torch.Tensor] | None = None
    if resume and ckpt_dir is not None and (ckpt_dir / "last.pt").is_file():
        state = _load_checkpoint(ckpt_dir / "last.pt", objective, optimizer, scheduler, config)
        if (ckpt_dir / "best.safetensors").is_file():
            from edge_kd.models.spec import load_state_dict

            best_state = load_state_dict(ckpt_dir / "best.safetensors")
    resumed_from = state["epoch"]
    stopped_early = state["bad_epochs"] >= config.patience

    use_bar = _use_progress(config, env)
    steps_taken = 0
    started, first_epoch = time.perf_counter(), state["epoch"]
    try:
        while state["epoch"] < config.epochs and not stopped_early:
            epoch = state["epoch"]
            sampler.set_epoch(epoch)
            order = np.fromiter(iter(sampler), dtype=np.int64)
            objective.train()
            batches = range(0, len(order), config.batch_size)[:steps_per_epoch]
            bar = None
            if use_bar:
                from tqdm.auto import tqdm

                from edge_kd.console import bar_stream

                # bar_stream: the terminal itself, not the log that third-party output goes to.
                bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                           file=bar_stream())
            running, seen = 0.0, 0
            view_gen = np.random.default_rng([config.seed, 11, epoch])
            for start in (bar if bar is not None else batches):
                idx = order[start:start + config.batch_size]
                if train.views is not None:
                    inputs = [t.to(device) for t in train.views(idx, view_gen)]
                else:
                    inputs = [_gather(a, idx).to(device) for a in train.inputs]
                labels = torch.as_tensor(np.asarray(train.labels)[idx]).to(device)
                if teacher_model is not None:
                    with torch.no_grad():
                        teacher = teacher_model(*inputs).float()
                else:
                    teacher = _gather(train.teacher, idx).to(device) if train.teacher is not None else None
                feats = {h.teacher_feature: _gather(train.teacher_features[h.teacher_feature], idx).to(device)
                         for h in hints}
                value = model(inputs, teacher, labels, feats)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                steps_taken += 1
                running += value.item() * len(idx)
                seen += len(idx)
                if bar is not None:
                    bar.set_postfix(loss=f"{running / seen:.4f}", best=f"{state['best_metric']:.4f}")
            if bar is not None:
                bar.close()
            metric = evaluate(student, val, config.metric, batch_size=config.eval_batch_size, device=device)
            record = {"epoch": epoch + 1, "train_loss": running / max(seen, 1), f"val_{config.metric}": metric,
                      "lr": optimizer.param_groups[0]["lr"]}
            state["history"].append(record)
            state["epoch"] = epoch + 1
            if better(metric, state["best_metric"], config.metric, config.min_delta):
                state.update(best_metric=metric, best_epoch=epoch + 1, bad_epochs=0)
                best_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
                if ckpt_dir is not None and env.is_main:
                    from edge_kd.models.spec import save_state_dict

                    save_state_dict(best_state, ckpt_dir / "best.safetensors")
            else:
                state["bad_epochs"] += 1
            stopped_early = state["bad_epochs"] >= config.patience
            if ckpt_dir is not None and env.is_main:
                _save_checkpoint(ckpt_dir / "last.pt", objective, optimizer, scheduler, state, config, device)
            barrier(env)
            if use_bar:
                per_epoch = (time.perf_counter() - started) / max(1, state["epoch"] - first_epoch)
                eta = per_epoch * (config.epochs - state["epoch"])
                print(f"epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.4f} "
                      f"val {config.metric} {metric:.4f} (best {state['best_metric']:.4f} @ {state['best_epoch']}) "
                      f"ETA {eta:.0f}s at most", file=sys.stderr)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, record)
    except KeyboardInterrupt:
        # The checkpoint of the last complete epoch was written atomically: it is intact and resumable.
        if env.is_main and ckpt_dir is not None:
            print(f"interrupted during epoch {state['epoch'] + 1}; {ckpt_dir / 'last.pt'} holds epoch "
                  f"{state['epoch']} (resume to continue)", file=sys.stderr)
        raise
    if best_state is not None:
        student.load_state_dict({k: v.to(device) for k, v in best_state.items()})
    student.eval()
    return TrainResult(float(state["best_metric"]), int(state["best_epoch"]), int(state["epoch"]), bool(stopped_early),
                       int(resumed_from), list(state["history"]), config.metric, device, env.world_size,
                       steps_taken)


def _is_hard_label(loss: nn.Module) -> bool:
    from edge_kd.distill.losses import HardLabelLoss

    return isinstance(loss, HardLabelLoss) or getattr(loss, "alpha", 1.0) == 0.0


def _save_checkpoint(path: Path, objective: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     state: dict[str, Any], config: TrainConfig, device: str) -> None:
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.startswith("cuda"):
        rng["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "objective": objective.state_dict(),
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng,
               "state": {k: v for k, v in state.items()}, "config": _plain(asdict(config))}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _load_checkpoint(path: Path, objective: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     config: TrainConfig) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot resume, the checkpoint does not load safely ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); delete it to start over") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an edge_kd training checkpoint")
    saved = payload.get("config", {})
    for key in ("batch_size", "seed", "lr", "metric"):
        if key in saved and saved[key] != getattr(config, key):
            raise InputError(f"{path}: cannot resume: the checkpoint was trained with {key}={saved[key]!r}, "
                             f"now {key}={getattr(config, key)!r} (use a new --out or the same settings)")
    try:
        objective.load_state_dict(payload["objective"])
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot resume: the checkpoint does not fit this student "
                         f"({str(exc).splitlines()[0]})") from None
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng"]["torch"])
    if "cuda" in payload["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(payload["rng"]["cuda"])
    return dict(payload["state"])
