"""Iterative pruning: several small steps, each followed by a short recovery fine-tune that distills
from the unpruned model, with params, MACs, runtime latency and accuracy recorded after every step.

A ``params``/``macs`` goal is split evenly over the steps (step k keeps ``1 - amount * k / steps`` of the
ORIGINAL count). A ``latency`` goal exports and benchmarks the model in the target runtime after each
step and stops as soon as the measured p50 meets the budget; when the smallest allowed model
(``max_layer_ratio``) still misses it, the best candidate is returned with ``goal_met=False`` and the
miss in milliseconds.

    >>> result = run_schedule(model, inputs, PruneConfig(goal="macs", amount=0.5, steps=2),
    ...                       teacher=model, train_batches=lambda: loader, evaluate=accuracy)   # doctest: +SKIP
    >>> [s.macs for s in result.steps]                                                          # doctest: +SKIP
"""
from __future__ import annotations

import copy
import itertools
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from edge_kd.distill import KD_TEMPERATURE
from edge_kd.errors import InputError
from edge_kd.prune.macs import count_macs, count_params
from edge_kd.prune.pruner import PruneConfig, build_pruner, prune_to_goal, resolve_protected

Batches = Callable[[], Iterable[tuple[tuple, Any]]]


@dataclass(frozen=True)
class RecoveryConfig:
    """The fine-tune after each pruning step: distillation from the unpruned model.

    With :class:`RecoveryData` the step runs edge_kd.distill's trainer (AdamW, warm-up + cosine decay,
    validation every epoch, the best epoch's weights kept) for ``epochs`` epochs against the unpruned
    model's logits, computed once. Without it, a plain loop over ``train_batches`` runs, bounded by
    ``max_batches`` (quick CPU checks; it also caps the trainer's batches per epoch). ``loss`` is a name in
    edge_kd.distill.losses."""

    epochs: int = 1
    max_batches: int | None = None
    lr: float = 3e-4
    weight_decay: float = 1e-4
    loss: str = "hinton"
    temperature: float = KD_TEMPERATURE
    #: The default of ``edge-kd prune`` and of Python callers; the build passes the recipe's alpha.
    alpha: float = 0.7
    batch_size: int = 32
    warmup_fraction: float = 0.05
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise InputError(f"recovery epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise InputError(f"recovery lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise InputError(f"recovery batch_size must be >= 1, got {self.batch_size}")


@dataclass
class RecoveryData:
    """Arrays for recovery through the distillation trainer: training inputs and labels, and a
    validation split that picks the best epoch (``metric``: accuracy or roc_auc)."""

    train_inputs: tuple[Any, ...]
    train_labels: Any
    val_inputs: tuple[Any, ...]
    val_labels: Any
    metric: str = "accuracy"

    @classmethod
    def from_dataset(cls, ds: Any, train_idx: Any, val_idx: Any, metric: str = "accuracy") -> "RecoveryData":
        """Rows ``train_idx`` / ``val_idx`` of a data set (``edge_kd.data``), decoded batch by batch when the
        trainer reads them (a folder of images is never held in memory whole)."""
        train, val = ds.subset(train_idx), ds.subset(val_idx)
        n_inputs = len(train.inputs(slice(0, 1)))
        return cls(tuple(_Rows(train, k) for k in range(n_inputs)), train.labels,
                   tuple(_Rows(val, k) for k in range(n_inputs)), val.labels, metric)

    def batches(self, batch_size: int, seed: int = 0) -> Batches:
        """``train_batches`` over these arrays (for Taylor importance), shuffled by ``seed``."""
        import numpy as np
        import torch

        def gen():
            order = np.random.default_rng(seed).permutation(len(self.train_labels))
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                yield (tuple(torch.from_numpy(np.ascontiguousarray(a[idx])) for a in self.train_inputs),
                       torch.from_numpy(np.asarray(self.train_labels)[idx]))
        return gen

    def evaluate(self, model: Any) -> float:
        from edge_kd.distill.trainer import metric_value, predict

        return metric_value(predict(model, self.val_inputs, batch_size=64), self.val_labels, self.metric)


class _Rows:
    """Input ``k`` of a data set as an array-like the trainer indexes by rows or slices."""

    def __init__(self, ds: Any, k: int):
        self.ds, self.k = ds, k

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, rows: Any) -> Any:
        import numpy as np

        if isinstance(rows, slice):
            rows = np.arange(len(self.ds))[rows]
        return self.ds.inputs(np.asarray(rows))[self.k]


def _kd_loss(config: RecoveryConfig) -> Any:
    """The distillation loss from edge_kd.distill's registry (shared with the distill stage)."""
    from edge_kd.distill.losses import build_loss

    return build_loss(config.loss, temperature=config.temperature, alpha=config.alpha)


def teacher_logits(teacher: Any, data: RecoveryData, batch_size: int = 64) -> Any:
    """The unpruned model's outputs on the training rows (eval mode): the soft targets of every step."""
    from edge_kd.distill.trainer import predict

    return predict(teacher, data.train_inputs, batch_size=batch_size)


def recover_with_trainer(student: Any, soft_targets: Any | None, data: RecoveryData, config: RecoveryConfig,
                         *, checkpoint_dir: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune ``student`` in place with edge_kd.distill's trainer for ``config.epochs`` epochs against
    ``soft_targets`` (hard labels only when None); the best validation epoch's weights are kept.
    Returns {epochs, best_epoch, best_metric, seconds, history}."""
    from edge_kd.distill.losses import build_loss
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, train_student

    start = time.perf_counter()
    loss = _kd_loss(config) if soft_targets is not None else build_loss("ce")
    train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                               weight_decay=config.weight_decay, warmup_fraction=config.warmup_fraction,
                               patience=config.epochs + 1, metric=data.metric, device=config.device,
                               eval_batch_size=64, max_batches=config.max_batches)
    result = train_student(student, loss, DistillData(tuple(data.train_inputs), data.train_labels, soft_targets),
                           EvalData(tuple(data.val_inputs), data.val_labels), train_config,
                           checkpoint_dir=checkpoint_dir)
    student.cpu().eval()
    return {"epochs": result.epochs_run, "best_epoch": result.best_epoch, "batches": result.steps,
            "best_val_metric": round(float(result.best_metric), 6), "device": result.device,
            "seconds": round(time.perf_counter() - start, 2),
            "history": result.history}


def recover(student: Any, teacher: Any | None, train_batches: Batches, config: RecoveryConfig) -> dict[str, Any]:
    """Fine-tune ``student`` in place on ``train_batches`` with KD from ``teacher`` (hard labels only
    when ``teacher`` is None). Returns {batches, seconds, last_loss}.

    A small self-contained loop (AdamW, BN in train mode); when edge_kd.distill grows a reusable
    single-epoch trainer this is the one function to swap."""
    import torch
    import torch.nn.functional as F

    start = time.perf_counter()
    loss_fn = _kd_loss(config) if teacher is not None else None
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if teacher is not None:
        teacher.eval()
    student.train()
    used, last = 0, float("nan")
    for _ in range(config.epochs):
        for inputs, labels in train_batches():
            inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
            out = student(*inputs)
            if loss_fn is not None:
                with torch.no_grad():
                    t_out = teacher(*inputs)
                loss = loss_fn(out, t_out, labels)
            else:
                loss = F.cross_entropy(out, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            used += 1
            last = float(loss.detach())
            if config.max_batches is not None and used >= config.max_batches:
                break
        if config.max_batches is not None and used >= config.max_batches:
            break
    student.eval()
    return {"batches": used, "seconds": round(time.perf_counter() - start, 2), "last_loss": last}


def runtime_latency(model: Any, example_inputs: tuple, target: Any, work_dir: str | Path | None = None) -> dict[str, Any]:
    """Export ``model`` for ``target`` and benchmark it in the target runtime (emulated phone core).
    Returns the benchmark dict (``latency_ms`` with ``p50``...) plus ``artifact`` and ``bytes``."""
    from edge_kd.bench import benchmark_artifact
    from edge_kd.export import export_model

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        result = export_model(copy.deepcopy(model).eval(), example_inputs, target, Path(tmp) / "export")
        bench = dict(benchmark_artifact(result.primary, target, emulate=False))  # per-step: host only
        bench["bytes"] = result.primary.stat().st_size
        bench["artifact"] = result.primary.name
    return bench


@dataclass
class StepReport:
    """Measured after one step (step 0 is the unpruned model)."""

    step: int
    target_fraction: float | None
    channel_ratio: float
    params: int
    macs: int
    macs_ratio: float
    p50_ms: float | None = None
    accuracy: float | None = None
    accuracy_before_recovery: float | None = None
    recovery: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: latency-aware steps: what the selection chose and predicted (``edge_kd.prune.select``)
    selection: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScheduleResult:
    """The pruned model and what every step measured."""

    model: Any
    steps: list[StepReport]
    goal_met: bool
    missed_by: float | None
    protected: list[str]
    config: dict[str, Any]
    #: the latency table's summary when the channels were chosen by it (``edge_kd.prune.latency``)
    latency_table: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "goal_met": self.goal_met, "missed_by": self.missed_by,
                "protected": self.protected, "config": self.config, "latency_table": self.latency_table}


def _taylor_batches(train_batches: Batches | None, n: int) -> list | None:
    if train_batches is None:
        return None
    return list(itertools.islice(train_batches(), n))


def run_schedule(model: Any, example_inputs: tuple, config: PruneConfig, *, teacher: Any | None = None,
                 train_batches: Batches | None = None, recovery: RecoveryConfig | None = None,
                 recovery_data: RecoveryData | None = None,
                 evaluate: Callable[[Any], float] | None = None,
                 latency: Callable[[Any], float] | None = None,
                 on_step: Callable[[StepReport, Any], None] | None = None,
                 latency_table: Any | None = None) -> ScheduleResult:
    """Prune ``model`` (a copy; the input is untouched) in ``config.steps`` steps toward the goal.

    ``teacher``: distillation source for recovery (default: the unpruned model itself).
    ``train_batches()``: a fresh iterable of ``((inputs...), labels)`` per call (Taylor importance, and the
    quick recovery loop when there is no ``recovery_data``); recovery is skipped without either.
    ``recovery_data``: arrays for recovery through the distillation trainer (the teacher's logits are
    computed once; each step trains ``recovery.epochs`` epochs and keeps its best validation epoch).
    ``evaluate(model) -> float``: the task metric (accuracy) after each step.
    ``latency(model) -> float``: p50 ms in the target runtime; required for a latency goal.
    ``on_step(report, model)``: called after each step (e.g. to write a checkpoint).
    ``latency_table``: with a latency goal, each step's channels are chosen by this measured table
    (``edge_kd.prune.select``: most latency saved per importance lost) instead of a uniform ratio; the
    step targets go evenly from the unpruned latency to the budget, then tighten by the measured miss.
    """
    recovery = recovery or RecoveryConfig()
    if train_batches is None and recovery_data is not None:
        train_batches = recovery_data.batches(recovery.batch_size)
    if config.goal == "latency" and latency is None:
        raise InputError("a latency goal needs a latency measurement (a target runtime to export to)")
    if _needs_grads(config) and train_batches is None:
        raise InputError(f"criterion {config.criterion!r} needs labelled batches (pass --data)")
    teacher = teacher if teacher is not None else copy.deepcopy(model).eval()
    original = copy.deepcopy(model).eval()
    protected = resolve_protected(original, example_inputs, config)
    build_pruner(copy.deepcopy(original), example_inputs, config, 0.0, protected)  # fail fast
    reference = {"params": count_params(original), "macs": count_macs(original, example_inputs).total}
    soft_targets = None
    if recovery_data is not None and recovery.epochs > 0:
        soft_targets = teacher_logits(teacher, recovery_data)

    def measure_step(step: int, current: Any, fraction: float | None, ratio: float, t0: float,
                     acc_before: float | None = None, rec: dict | None = None,
                     selection: dict[str, Any] | None = None) -> StepReport:
        macs = count_macs(current, example_inputs).total
        report = StepReport(step, fraction, round(ratio, 4), count_params(current), macs,
                            round(macs / reference["macs"], 4),
                            p50_ms=latency(current) if latency else None,
                            accuracy=evaluate(current) if evaluate else None,
                            accuracy_before_recovery=acc_before, recovery=rec or {},
                            seconds=round(time.perf_counter() - t0, 2))
        report.selection = selection  # before on_step: the step is recorded there
        if on_step:
            on_step(report, current)
        return report

    steps = [measure_step(0, original, None, 0.0, time.perf_counter())]
    current = original
    budget = _budget_ms(config, steps[0].p50_ms)
    goal_met = config.goal != "latency" or (steps[0].p50_ms is not None and steps[0].p50_ms <= budget)
    fraction = 1.0
    max_steps = config.steps if config.goal != "latency" else max(config.steps, 8)
    for k in range(1, max_steps + 1):
        if config.goal == "latency" and goal_met:
            break
        t0 = time.perf_counter()
        selection = None
        if config.goal == "latency" and latency_table is not None:
            fraction = _latency_step_target(k, config, steps, budget, fraction)
        elif config.goal == "latency":
            last = steps[-1]
            # Assume latency ~ MACs for the next target, but move by 5%..25% of the original per step.
            wanted = last.macs_ratio * budget / max(last.p50_ms or budget, 1e-9)
            fraction = min(max(wanted, last.macs_ratio - 0.25), last.macs_ratio - 0.05)
        else:
            fraction = 1.0 - config.amount * k / config.steps
        grads = _taylor_batches(train_batches, config.taylor_batches) if _needs_grads(config) else None
        stats_inputs = ([inputs for inputs, _ in itertools.islice(train_batches(), 2)]
                        if (train_batches is not None and config.compensate) else None)
        if config.goal == "latency" and latency_table is not None:
            from edge_kd.prune.select import prune_latency_aware

            pruned, info, chosen = prune_latency_aware(current, example_inputs, config, latency_table,
                                                       target_ms=fraction * latency_table.base_ms,
                                                       grad_batches=grads, stats_inputs=stats_inputs)
            selection = chosen.to_dict()
        else:
            pruned, info = prune_to_goal(current, example_inputs, config, grad_batches=grads, fraction=fraction,
                                         reference=reference, stats_inputs=stats_inputs)
        acc_before = evaluate(pruned) if (evaluate and train_batches is not None) else None
        rec = {}
        if recovery_data is not None and recovery.epochs > 0:
            rec = recover_with_trainer(pruned, soft_targets, recovery_data, recovery)
        elif train_batches is not None and recovery.epochs > 0:
            rec = recover(pruned, teacher, train_batches, recovery)
        report = measure_step(k, pruned, round(fraction, 4), info.channel_ratio, t0, acc_before, rec, selection)
        steps.append(report)
        progressed = report.macs < steps[-2].macs
        current = pruned
        if config.goal == "latency":
            goal_met = report.p50_ms is not None and report.p50_ms <= budget
            if not progressed or not info.goal_met:
                break  # the smallest allowed model is reached
        else:
            goal_met = info.goal_met
    missed_by = None
    if not goal_met:
        last = steps[-1]
        if config.goal == "latency":
            missed_by = round((last.p50_ms or 0.0) - budget, 4)
        else:
            value = last.params if config.goal == "params" else last.macs
            missed_by = round(value / reference[config.goal] - (1.0 - config.amount), 4)
    return ScheduleResult(current, steps, goal_met, missed_by, list(protected), config.to_dict(),
                          latency_table.summary() if latency_table is not None else None)


def _budget_ms(config: PruneConfig, p50_unpruned: float | None) -> float:
    """The latency budget in ms: as given, or the fraction of the unpruned model's measured p50."""
    if config.goal != "latency" or config.latency_unit == "ms":
        return config.amount
    return config.amount * (p50_unpruned or 0.0)


def _latency_step_target(k: int, config: PruneConfig, steps: list[StepReport], budget: float,
                         previous: float) -> float:
    """Step k's target as a fraction of the table's unpruned latency: evenly from 1 to the budget over
    ``config.steps`` steps; past them, the last target tightened by the measured miss."""
    goal = budget / steps[0].p50_ms if steps[0].p50_ms else config.amount
    if k <= config.steps:
        return 1.0 - (1.0 - goal) * k / config.steps
    last = steps[-1].p50_ms or budget
    return previous * min(budget / last, 0.97)


def _needs_grads(config: PruneConfig) -> bool:
    from edge_kd.prune.criteria import CRITERIA

    return CRITERIA.get(config.criterion).needs_gradients
