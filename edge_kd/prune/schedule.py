"""Iterative pruning: several small steps, each followed by a short recovery fine-tune that distills
from the unpruned model, with params, MACs, runtime latency and accuracy recorded after every step.

A ``params``/``macs`` goal is split over the steps, evenly (step k keeps ``1 - amount * k / steps`` of the
ORIGINAL count) or geometrically (``PruneConfig.step_sizes``: each step removes the same share of what is
left): more, smaller steps hurt the network less per step and let a short recovery catch up.
Recovery has one path: edge_kd.distill's trainer against the unpruned model's logits (computed once),
``RecoveryConfig.epochs`` after each step and ``final_epochs`` after the last one, the best validation
epoch kept. The CPU time (``time.process_time``, all threads) of every step and of every recovery
epoch is recorded so users can plan a schedule on their own machine. A ``latency`` goal exports and benchmarks the model in the target runtime after each
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
from dataclasses import asdict, dataclass, field, fields
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

    Each step runs edge_kd.distill's trainer on :class:`RecoveryData` (AdamW, warm-up + cosine decay,
    validation every epoch, the best epoch's weights kept) for ``epochs`` epochs against the unpruned
    model's logits, computed once; the last step trains ``final_epochs`` epochs instead (None: ``epochs``),
    the usual progressive schedule: short recoveries between small steps, a long one at the end.
    ``max_batches`` caps the batches per epoch (a quick check on a CPU). ``loss`` is a name in
    edge_kd.distill.losses."""

    epochs: int = 1
    final_epochs: int | None = None
    max_batches: int | None = None
    lr: float = 1e-4
    weight_decay: float = 1e-4
    loss: str = "hinton"
    temperature: float = KD_TEMPERATURE
    #: The default of ``edge-kd prune`` and of Python callers; the build passes the recipe's alpha.
    alpha: float = 0.7
    batch_size: int = 32
    warmup_fraction: float = 0.05
    device: str = "auto"
    #: Training batches whose forward passes re-estimate every BatchNorm's statistics after a pruning step,
    #: before any training (0: off). Removing channels shifts the inputs of the next layers, so the stored
    #: statistics are stale: on the grocery EfficientNet-Lite0 one step to 0.82x MACs left 4.7% val top-1
    #: that 10 batches of re-estimation brought back to 55%, with no gradient step (EagleEye's adaptive BN;
    #: benchmarks/prune_bn_diagnosis.py).
    bn_batches: int = 10
    #: Train on random views of the rows (photos: the teacher fine-tune's crops, flips and jitter) with the
    #: unpruned model run on each view, instead of its logits of the unaugmented rows computed once (see
    #: edge_kd.distill.trainer: consistent teaching). A teacher that was trained on these rows is nearly
    #: one-hot on them; on new views its outputs carry what the student still has to learn. Each epoch costs
    #: the teacher's forward passes too. Needs rows that have views (RecoveryData.views; image data sets).
    augment: bool = False

    def __post_init__(self) -> None:
        if self.bn_batches < 0:
            raise InputError(f"recovery bn_batches must be >= 0, got {self.bn_batches}")
        if self.epochs < 0 or (self.final_epochs is not None and self.final_epochs < 0):
            raise InputError(f"recovery epochs must be >= 0, got {self.epochs} (final {self.final_epochs})")
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
    #: ``views(rows, generator) -> [tensors]``: random training views of ``rows`` (None: the data has none).
    views: Callable[[Any, Any], list] | None = None

    @classmethod
    def from_dataset(cls, ds: Any, train_idx: Any, val_idx: Any, metric: str = "accuracy", *,
                     val: Any = None) -> "RecoveryData":
        """Rows ``train_idx`` / ``val_idx`` of a data set (``edge_kd.data``; ``val`` instead: another data
        set), read batch by batch when the trainer asks for them: images are decoded once and kept as
        uint8 pixels, scaled per batch, never held as a float32 copy of the whole set."""
        import numpy as np

        train = ds if isinstance(train_idx, slice) and train_idx == slice(None) else ds.subset(train_idx)
        val = val if val is not None else ds.subset(val_idx)
        if hasattr(train, "preload"):
            train.preload()
            val.preload()
        n_inputs = len(train.inputs(slice(0, 1)))
        return cls(tuple(_Rows(train, k) for k in range(n_inputs)), train.labels,
                   tuple(_Rows(val, k) for k in range(n_inputs)), val.labels, metric,
                   views=_image_views(train) if hasattr(train, "pixels") else None)

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


def _image_views(ds: Any) -> Callable[[Any, Any], list]:
    """Random views of an image data set's rows: the teacher fine-tune's augmentation (random resized crop,
    flip, brightness/contrast), scaled as the data set scales its pixels."""
    import numpy as np

    from edge_kd.models.finetune import augment_images, scale_pixels_torch

    def views(rows: Any, gen: Any) -> list:
        return [scale_pixels_torch(augment_images(ds.pixels(np.asarray(rows)), gen), ds.preprocessing)]
    return views


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


def recalibrate_batchnorm(model: Any, batches: Iterable[tuple[tuple, Any]], max_batches: int) -> int:
    """Re-estimate the running mean/variance of every BatchNorm in ``model`` from the forward passes of at
    most ``max_batches`` of ``batches`` (``((inputs...), labels)``), weights untouched (torch's
    ``swa_utils.update_bn``: cumulative averages, not momentum). Returns the batches used (0 without BN)."""
    import torch
    from torch.optim.swa_utils import update_bn

    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return 0
    chosen = [[tuple(inputs)] for inputs, _ in itertools.islice(batches, max_batches)]
    was_training = model.training
    update_bn(chosen, _unpacking(model))
    model.train(was_training)
    return len(chosen)


def _unpacking(model: Any) -> Any:
    """``update_bn`` calls ``module(batch[0])``; here that first element is the tuple of the model's inputs."""
    import torch

    class Unpack(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, inputs: tuple) -> Any:
            return self.inner(*inputs)

    return Unpack(model)


def _kd_loss(config: RecoveryConfig) -> Any:
    """The distillation loss from edge_kd.distill's registry (shared with the distill stage)."""
    from edge_kd.distill.losses import build_loss

    return build_loss(config.loss, temperature=config.temperature, alpha=config.alpha)


def teacher_logits(teacher: Any, data: RecoveryData, batch_size: int = 64) -> Any:
    """The unpruned model's outputs on the training rows (eval mode): the soft targets of every step."""
    from edge_kd.distill.trainer import predict

    return predict(teacher, data.train_inputs, batch_size=batch_size)


def recover_with_trainer(student: Any, soft_targets: Any | None, data: RecoveryData, config: RecoveryConfig,
                         *, epochs: int | None = None, checkpoint_dir: str | Path | None = None,
                         seed: int = 0, teacher: Any | None = None) -> dict[str, Any]:
    """Fine-tune ``student`` in place with edge_kd.distill's trainer for ``epochs`` (default
    ``config.epochs``) epochs against ``soft_targets`` (hard labels only when None); the best validation
    epoch's weights are kept. The one recovery path of pruning (and of training a model from labels).
    With ``config.augment`` the student trains on random views of the rows and ``teacher`` (required
    then) scores each view instead of ``soft_targets``.
    Returns {epochs, best_epoch, batches, best_val_metric, seconds, cpu_seconds, history}; each history
    entry carries the epoch's CPU seconds."""
    from edge_kd.distill.losses import build_loss
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, train_student

    epochs = config.epochs if epochs is None else epochs
    if config.augment and (data.views is None or teacher is None):
        raise InputError("recovery augment needs rows with random views (image data) and the teacher model"
                         if data.views is None else "recovery augment needs the teacher model to score each view")
    start, cpu_start = time.perf_counter(), time.process_time()
    # With augment the teacher scores every view (soft_targets of the unaugmented rows are not used).
    loss = _kd_loss(config) if (soft_targets is not None or config.augment) else build_loss("ce")
    train_config = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr,
                               weight_decay=config.weight_decay, warmup_fraction=config.warmup_fraction,
                               patience=epochs + 1, metric=data.metric, device=config.device,
                               eval_batch_size=64, max_batches=config.max_batches, seed=seed)
    cpu_marks = [cpu_start]

    def on_epoch_end(_epoch: int, record: dict[str, float]) -> None:
        now = time.process_time()
        record["cpu_seconds"] = round(now - cpu_marks[-1], 2)
        cpu_marks.append(now)

    if config.augment:
        train = DistillData(tuple(data.train_inputs), data.train_labels, views=data.views,
                            teacher_model=teacher)
    else:
        train = DistillData(tuple(data.train_inputs), data.train_labels, soft_targets)
    result = train_student(student, loss, train,
                           EvalData(tuple(data.val_inputs), data.val_labels), train_config,
                           checkpoint_dir=checkpoint_dir, on_epoch_end=on_epoch_end)
    student.cpu().eval()
    if config.augment:
        teacher.cpu()  # the trainer moved it to the training device
    return {"epochs": result.epochs_run, "best_epoch": result.best_epoch, "batches": result.steps,
            "best_val_metric": round(float(result.best_metric), 6), "device": result.device,
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu_start, 2),
            "history": result.history}


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
    #: after the pruning step and its BatchNorm re-estimation, before any training
    accuracy_before_recovery: float | None = None
    recovery: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: latency-aware steps: what the selection chose and predicted (``edge_kd.prune.select``)
    selection: dict[str, Any] | None = None
    #: CPU time of the step (pruning + recovery + evaluation; the runtime benchmark runs in its own process).
    cpu_seconds: float = 0.0
    #: MACs/params goals: whether this step reached its target (the last step's: the goal); None for step 0
    #: and latency goals
    goal_met: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepReport":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ResumePoint:
    """A MACs/params schedule interrupted after ``steps[-1]``: the reports of the steps done and the model
    after the last of them (``edge_kd.prune.serialize.load_pruned`` of its checkpoint)."""

    steps: list[StepReport]
    model: Any


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
    #: The recovery settings and the CPU time of the teacher's logits (computed once for every step).
    recovery: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_seconds(self) -> float:
        return round(sum(s.cpu_seconds for s in self.steps) + float(self.recovery.get("teacher_logits_cpu_seconds", 0.0)), 2)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "goal_met": self.goal_met, "missed_by": self.missed_by,
                "protected": self.protected, "config": self.config, "latency_table": self.latency_table,
                "recovery": self.recovery, "cpu_seconds": self.cpu_seconds}


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
                 latency_table: Any | None = None,
                 soft_targets: Any | None = None, resume: ResumePoint | None = None) -> ScheduleResult:
    """Prune ``model`` (a copy; the input is untouched) in ``config.steps`` steps toward the goal.

    ``teacher``: distillation source for recovery (default: the unpruned model itself).
    ``train_batches()``: a fresh iterable of ``((inputs...), labels)`` per call, for Taylor importance and
    bias compensation (default: batches of ``recovery_data``).
    ``recovery_data``: arrays for recovery through the distillation trainer (the teacher's logits are
    computed once; each step trains ``recovery.epochs`` epochs, the last one ``recovery.final_epochs``,
    and keeps its best validation epoch); no recovery without it.
    ``evaluate(model) -> float``: the task metric (accuracy) after each step.
    ``latency(model) -> float``: p50 ms in the target runtime; required for a latency goal.
    ``on_step(report, model)``: called after each step (e.g. to write a checkpoint).
    ``latency_table``: with a latency goal, each step's channels are chosen by this measured table
    (``edge_kd.prune.select``: most latency saved per importance lost) instead of a uniform ratio; the
    step targets go evenly from the unpruned latency to the budget, then tighten by the measured miss.
    ``soft_targets``: ``teacher_logits(teacher, recovery_data)`` when the caller already has them.
    ``resume``: continue a MACs/params schedule after its last completed step (the reports and model an
    ``on_step`` checkpoint kept); the steps left run exactly as they would have.
    """
    recovery = recovery or RecoveryConfig()
    if train_batches is None and recovery_data is not None:
        train_batches = recovery_data.batches(recovery.batch_size)
    if config.goal == "latency" and latency is None:
        raise InputError("a latency goal needs a latency measurement (a target runtime to export to)")
    if _needs_grads(config) and train_batches is None:
        raise InputError(f"criterion {config.criterion!r} needs labelled batches (pass --data)")
    if recovery.augment and recovery_data is not None and recovery_data.views is None:
        raise InputError("recovery augment needs data with random views (photos); this data has none")
    teacher = teacher if teacher is not None else copy.deepcopy(model).eval()
    original = copy.deepcopy(model).eval()
    protected = resolve_protected(original, example_inputs, config)
    build_pruner(copy.deepcopy(original), example_inputs, config, 0.0, protected)  # fail fast
    reference = {"params": count_params(original), "macs": count_macs(original, example_inputs).total}
    final_epochs = recovery.epochs if recovery.final_epochs is None else recovery.final_epochs
    recovery_info: dict[str, Any] = {"epochs_per_step": recovery.epochs, "final_epochs": final_epochs,
                                     "max_batches": recovery.max_batches, "lr": recovery.lr,
                                     "batch_size": recovery.batch_size, "loss": recovery.loss,
                                     "temperature": recovery.temperature, "alpha": recovery.alpha,
                                     "augment": recovery.augment}
    if soft_targets is None and recovery_data is not None and (recovery.epochs > 0 or final_epochs > 0) \
            and not recovery.augment:
        cpu0 = time.process_time()
        soft_targets = teacher_logits(teacher, recovery_data)
        recovery_info["teacher_logits_cpu_seconds"] = round(time.process_time() - cpu0, 2)

    def measure_step(step: int, current: Any, fraction: float | None, ratio: float, t0: float, cpu0: float,
                     acc_before: float | None = None, rec: dict | None = None,
                     selection: dict[str, Any] | None = None, goal_met: bool | None = None) -> StepReport:
        macs = count_macs(current, example_inputs).total
        accuracy = evaluate(current) if evaluate else None
        cpu = time.process_time() - cpu0  # before the runtime benchmark, which runs in another process
        report = StepReport(step, fraction, round(ratio, 4), count_params(current), macs,
                            round(macs / reference["macs"], 4),
                            p50_ms=latency(current) if latency else None,
                            accuracy=accuracy,
                            accuracy_before_recovery=acc_before, recovery=rec or {},
                            seconds=round(time.perf_counter() - t0, 2), cpu_seconds=round(cpu, 2))
        report.selection = selection  # before on_step: the step is recorded there
        report.goal_met = goal_met
        if on_step:
            on_step(report, current)
        return report

    if resume is not None and resume.steps:
        if config.goal == "latency":
            raise InputError("a latency-goal schedule cannot resume: its steps depend on every measurement")
        steps, current = list(resume.steps), resume.model
        goal_met = bool(steps[-1].goal_met) if len(steps) > 1 else True
    else:
        steps = [measure_step(0, original, None, 0.0, time.perf_counter(), time.process_time())]
        current = original
        goal_met = config.goal != "latency"
    budget = _budget_ms(config, steps[0].p50_ms)
    if config.goal == "latency":
        goal_met = steps[0].p50_ms is not None and steps[0].p50_ms <= budget
    fraction = 1.0
    max_steps = config.steps if config.goal != "latency" else max(config.steps, 8)
    for k in range(len(steps), max_steps + 1):
        if config.goal == "latency" and goal_met:
            break
        t0, cpu0 = time.perf_counter(), time.process_time()
        selection = None
        if config.goal == "latency" and latency_table is not None:
            fraction = _latency_step_target(k, config, steps, budget, fraction)
        elif config.goal == "latency":
            last = steps[-1]
            # Assume latency ~ MACs for the next target, but move by 5%..25% of the original per step.
            wanted = last.macs_ratio * budget / max(last.p50_ms or budget, 1e-9)
            fraction = min(max(wanted, last.macs_ratio - 0.25), last.macs_ratio - 0.05)
        else:
            fraction = config.step_target(k)
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
        bn_batches = (recalibrate_batchnorm(pruned, train_batches(), recovery.bn_batches)
                      if train_batches is not None and recovery.bn_batches else 0)
        acc_before = evaluate(pruned) if (evaluate and train_batches is not None) else None
        rec = {}
        # A MACs/params schedule knows its last step; a latency goal learns it only from the measurement
        # (its final recovery runs after the loop).
        epochs = final_epochs if (k == max_steps and config.goal != "latency") else recovery.epochs
        if recovery_data is not None and epochs > 0:
            rec = recover_with_trainer(pruned, soft_targets, recovery_data, recovery, epochs=epochs, seed=k,
                                       teacher=teacher)
        if bn_batches:
            rec = {**rec, "bn_recalibration_batches": bn_batches}
        report = measure_step(k, pruned, round(fraction, 4), info.channel_ratio, t0, cpu0, acc_before, rec,
                              selection, goal_met=None if config.goal == "latency" else bool(info.goal_met))
        steps.append(report)
        progressed = report.macs < steps[-2].macs
        current = pruned
        if config.goal == "latency":
            goal_met = report.p50_ms is not None and report.p50_ms <= budget
            if not progressed or not info.goal_met:
                break  # the smallest allowed model is reached
        else:
            goal_met = info.goal_met
    if (config.goal == "latency" and len(steps) > 1 and recovery_data is not None and final_epochs > 0
            and final_epochs != recovery.epochs):
        last, t0, cpu0 = steps[-1], time.perf_counter(), time.process_time()
        last.recovery["final"] = recover_with_trainer(current, soft_targets, recovery_data, recovery,
                                                      epochs=final_epochs, seed=len(steps), teacher=teacher)
        last.accuracy = evaluate(current) if evaluate else None
        last.seconds = round(last.seconds + time.perf_counter() - t0, 2)
        last.cpu_seconds = round(last.cpu_seconds + time.process_time() - cpu0, 2)
    missed_by = None
    if not goal_met:
        last = steps[-1]
        if config.goal == "latency":
            missed_by = round((last.p50_ms or 0.0) - budget, 4)
        else:
            value = last.params if config.goal == "params" else last.macs
            missed_by = round(value / reference[config.goal] - (1.0 - config.amount), 4)
    return ScheduleResult(current, steps, goal_met, missed_by, list(protected), config.to_dict(),
                          latency_table.summary() if latency_table is not None else None, recovery_info)


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
