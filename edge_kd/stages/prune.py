"""The prune stage and its entry function ``prune_entry``, shared with ``edge-kd prune``: structured
pruning in steps, each recovered by the distillation trainer, with the latency measured in the runtime.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from edge_kd.pipeline import Artifact, content_hash
from edge_kd.stages.context import PRUNED_DIR, BuildStage, _recipe_part, _student_identity, _target_part


class PruneStage(BuildStage):
    name = "prune"
    requires = ("student_spec", "student_value", "target")
    provides = ("student_spec",)

    def cache_key(self, ctx):
        # The runtime matters only to a latency goal: targets sharing round_to share the pruned model.
        prune = ctx["recipe"].prune
        return content_hash("build-prune-v3", *_student_identity(ctx["student_spec"].path),
                            _recipe_part(ctx["recipe"], "prune"), prune.round_to or ctx["target"].pruning.round_to,
                            _target_part(ctx["target"], "runtime") if prune.goal == "latency" else None)

    def load_cached(self, ctx, build, record):
        spec = build.root / PRUNED_DIR / "student.json"
        return {"student_spec": Artifact(spec, "json", "student-spec")} if spec.is_file() else None

    def run(self, ctx, build, record):
        from edge_kd.models.spec import ModelSpec
        from edge_kd.prune.pruner import PruneConfig
        from edge_kd.prune.schedule import RecoveryConfig, RecoveryData
        from edge_kd.prune.serialize import save_pruned

        if self.shared.adopt(self.name, record["cache_key"], build, record, Path(PRUNED_DIR)):
            return {"student_spec": Artifact(build.root / PRUNED_DIR / "student.json", "json", "student-spec")}
        cfg, target, value = ctx["recipe"].prune, ctx["target"], ctx["student_value"]
        spec = ModelSpec.load(ctx["student_spec"].path)
        model = spec.build()
        example = spec.example_inputs()
        splits = self.shared.load_data()
        metric = {"binary": "roc_auc", "ranking": "recall@10"}.get(self.shared.task, "accuracy")
        family, sdata = self.shared.student_data(ctx.get("student_family"))
        if family is None and sdata.prepare is not None:
            # The teacher's own network pruned: rows are read through the teacher's view of the data,
            # batch by batch (photos are decoded once and kept as uint8, not as a float32 copy of the set).
            prepared = sdata.prepare(splits.train)
            data = RecoveryData.from_dataset(prepared, slice(None), None, metric,
                                             val=sdata.prepare(splits.val))
        else:
            chosen = ctx.get("student_family")
            data = RecoveryData(self.shared.student_arrays("train", value, family=chosen), splits.train.labels,
                                self.shared.student_arrays("val", value, family=chosen), splits.val.labels, metric)
        distill_cfg = ctx["recipe"].distill
        recovery = RecoveryConfig(epochs=cfg.finetune_epochs, final_epochs=cfg.final_epochs, lr=cfg.finetune_lr,
                                  augment=cfg.augment,
                                  batch_size=int(distill_cfg.batch_size),
                                  temperature=distill_cfg.temperature, alpha=distill_cfg.alpha,
                                  device=self.shared.device)
        amount, unit = cfg.latency_budget() if cfg.goal == "latency" else (cfg.amount, "ms")
        config = PruneConfig(goal=cfg.goal, amount=amount, latency_unit=unit, criterion=cfg.criterion,
                             round_to=cfg.round_to or target.pruning.round_to, protect=tuple(cfg.protect),
                             protect_residual=cfg.protect_residual, steps=cfg.steps,
                             step_sizes=cfg.step_sizes)
        # A MACs/params schedule keeps the model after every step (a grocery build prunes for an hour or
        # more): with --resume an interrupted stage continues after its last completed step.
        checkpoints = StepCheckpoints(build.root / PRUNE_CHECKPOINTS, record["cache_key"], spec)
        resume = checkpoints.load() if (self.shared.resume and cfg.goal != "latency") else None
        if resume is not None:
            self.shared.log(f"prune: resuming after step {resume.steps[-1].step} of {cfg.steps} "
                            f"({checkpoints.folder})")

        def on_step(r: Any, m: Any) -> None:
            self.shared.log(f"prune step {r.step}: MACs x{1 / r.macs_ratio:.2f}, {metric} "
                            f"{r.accuracy_before_recovery if r.accuracy_before_recovery is not None else r.accuracy}"
                            f" -> {r.accuracy} ({r.seconds:.0f} s, CPU {r.cpu_seconds:.0f} s)")
            if cfg.goal != "latency":
                checkpoints.save(r, m)

        result = prune_entry(model, example, config, target, recovery=recovery, recovery_data=data,
                             measure_latency=cfg.goal == "latency",
                             latency_cache=self.shared.cache_root / "latency", log=self.shared.log,
                             on_step=on_step, resume=resume)
        path = save_pruned(result.model, spec, build.root / PRUNED_DIR, name="student")
        checkpoints.clear()
        record["details"] = result.to_dict()
        if not result.goal_met:
            self.shared.log(f"prune: goal not met (missed by {result.missed_by}); continuing with the best model")
        return {"student_spec": Artifact(path, "json", "student-spec")}


PRUNE_CHECKPOINTS = Path("checkpoints") / "prune"


class StepCheckpoints:
    """The model after the last completed pruning step (a ModelSpec + safetensors pair, no pickle) and the
    reports of the steps so far, in ``folder``; ``steps.json`` is written last and names the stage's
    cache key, so a checkpoint of other inputs or a half-written step is never resumed."""

    def __init__(self, folder: Path, cache_key: str, base_spec: Any):
        self.folder, self.cache_key, self.base_spec = Path(folder), cache_key, base_spec
        self.reports: list[dict[str, Any]] = []

    def save(self, report: Any, model: Any) -> None:
        from edge_kd.pipeline import atomic_write_json
        from edge_kd.prune.serialize import save_pruned

        save_pruned(model, self.base_spec, self.folder, name=f"step-{report.step}")
        self.reports.append(report.to_dict())
        atomic_write_json(self.folder / "steps.json", {"cache_key": self.cache_key, "steps": self.reports})
        for old in self.folder.glob("step-*.*"):  # only the last step's model is needed to resume
            if old.stem != f"step-{report.step}":
                old.unlink(missing_ok=True)

    def load(self) -> Any:
        """A ``ResumePoint`` after the last saved step, or None (nothing saved, other inputs, unreadable)."""
        import json

        from edge_kd.prune.schedule import ResumePoint, StepReport
        from edge_kd.prune.serialize import load_pruned

        try:
            saved = json.loads((self.folder / "steps.json").read_text())
            if saved.get("cache_key") != self.cache_key or not saved.get("steps"):
                return None
            steps = [StepReport.from_dict(d) for d in saved["steps"]]
            model = load_pruned(self.folder / f"step-{steps[-1].step}.json")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self.reports = list(saved["steps"])
        return ResumePoint(steps, model)

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def latency_probe(example: tuple, target: Any) -> Callable[[Any], float]:
    """``fn(model) -> p50 ms``: the model exported for ``target`` and benchmarked in its runtime."""
    def latency(model: Any) -> float:
        from edge_kd.prune.schedule import runtime_latency

        return float(runtime_latency(model, example, target)["latency_ms"]["p50"])

    return latency


def prune_entry(model: Any, example: tuple, config: Any, target: Any, *, recovery: Any, recovery_data: Any,
                measure_latency: bool = True, on_step: Callable | None = None,
                latency_table_path: str | None = None, latency_cache: Any = None,
                log: Callable[[str], None] | None = None, resume: Any = None) -> Any:
    """The prune step, shared by ``edge-kd prune`` and the build's prune stage: ``run_schedule`` toward
    ``config``'s goal, each step recovered by the distillation trainer from the unpruned model on
    ``recovery_data`` (None: no recovery) and judged on its validation rows; with ``measure_latency``
    every step is exported and benchmarked in ``target``'s runtime. A latency goal chooses channels by
    the target runtime's latency table (``latency_table_path``, else the one cached in ``latency_cache``
    or ``~/.cache/edge_kd/latency``, else measured now). ``resume``: a ``ResumePoint`` to continue from.
    Returns the ``ScheduleResult``."""
    from edge_kd.prune.schedule import run_schedule

    table = None
    if config.goal == "latency":
        from edge_kd.prune.latency import latency_table
        from edge_kd.prune.pruner import resolve_protected

        protected = resolve_protected(model, example, config)
        table, where = latency_table(model, example, target, config, protected, table_path=latency_table_path,
                                     cache=latency_cache, log=log)
        if log:
            log(f"latency table ({table.method}, {len(table.layers)} layers, predicted {table.base_ms:.3f} ms "
                f"unpruned): {'reused' if where['cached'] else 'measured'} {where['path']}")
    result = run_schedule(model, example, config, teacher=model, recovery=recovery, recovery_data=recovery_data,
                          evaluate=recovery_data.evaluate if recovery_data is not None else None,
                          latency=latency_probe(example, target) if measure_latency else None, on_step=on_step,
                          latency_table=table, resume=resume)
    if table is not None and result.latency_table is not None:
        result.latency_table.update(path=where["path"], reused=where["cached"])
    return result


# ---- quantize + export ----------------------------------------------------------------------------
