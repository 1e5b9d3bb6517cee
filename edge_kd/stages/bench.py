"""The bench stage: latency on the emulated phone core and the task metric through the runtime, for
the student and for the fp32 teacher exported to the same runtime.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_kd.pipeline import content_hash
from edge_kd.stages.context import BuildStage, _recipe_part, _rows, _target_part


class BenchStage(BuildStage):
    """Latency (emulated phone core) and the task metric through the runtime, for the student and
    for the fp32 teacher exported to the same runtime (cached per runtime in the shared folder)."""

    name = "bench"
    requires = ("artifact", "student_value", "target")
    provides = ("metrics",)

    def cache_key(self, ctx):
        return content_hash("build-bench-v1", ctx["artifact"].path, _recipe_part(ctx["recipe"], "bench"),
                            _target_part(ctx["target"], "runtime", "bench", "ops"))

    def load_cached(self, ctx, build, record):
        metrics = build.manifest.get("metrics") or {}
        return {"metrics": metrics} if metrics.get("task_metric") and build.manifest.get("teacher") else None

    def run(self, ctx, build, record):
        from edge_kd.bench import benchmark_artifact, evaluate_artifact

        recipe, target, value = ctx["recipe"], ctx["target"], ctx["student_value"]
        splits = self.shared.load_data()
        task = self.shared.task
        metric = recipe.bench.metric if task == "regression" and recipe.bench.metric in ("wape", "mae") else None
        idx = self.shared.eval_indices("test", recipe.bench.eval_samples, recipe.seed)
        labels = splits.test.labels[idx]
        log = self.shared.log
        log(f"bench: {ctx['artifact'].path.name} in {target.runtime.name} ({len(idx)} test rows, pinned core)")
        arrays = self.shared.student_arrays("test", value, idx, family=ctx.get("student_family"))
        student_eval = evaluate_artifact(ctx["artifact"].path, _rows(arrays, labels), task=task,
                                         threads=target.runtime.threads, metric=metric)
        student_bench = benchmark_artifact(ctx["artifact"].path, target)
        teacher = self.shared.teacher()
        metrics = {**_bench_fields(student_bench), **_eval_fields(student_eval)}
        if getattr(teacher, "no_runtime_artifact", None):
            # Trees: nothing runs in the phone runtime; the teacher's metric is measured in Python on the
            # same rows, and it has no latency to compare with (reports show n/a).
            teacher_eval = _python_eval(teacher, splits.test, idx, labels, metric or "wape")
            teacher_metrics = {**_eval_fields(teacher_eval), "artifact": None, "name": teacher.name,
                               "measured_in": teacher_eval["measured_in"],
                               "no_runtime_artifact": teacher.no_runtime_artifact}
        else:
            teacher_path = self._teacher_artifact(target)
            prepared = teacher.prepare(splits.test)
            teacher_eval = evaluate_artifact(teacher_path, _rows(prepared.inputs(idx), labels), task=task,
                                             threads=target.runtime.threads, metric=metric)
            teacher_bench = benchmark_artifact(teacher_path, target)
            teacher_metrics = {**_bench_fields(teacher_bench), **_eval_fields(teacher_eval),
                               "artifact": teacher_bench.get("artifact"), "name": teacher.name}
        if hasattr(splits.test, "baselines"):
            metrics["baselines"] = _baselines(splits.test, idx, labels)
        if task == "ranking":
            metrics["baseline"] = _popularity_baseline(splits, labels)
            log(f"bench: recall@10 student {metrics['task_metric']['value']:.4f}, teacher "
                f"{teacher_metrics['task_metric']['value']:.4f}, popularity {metrics['baseline']['recall@10']:.4f}")
        build.manifest["metrics"] = metrics
        build.manifest["teacher"] = teacher_metrics
        build.save()
        record["details"] = {"eval_rows": int(len(idx)), "student": student_eval, "teacher": teacher_eval}
        return {"metrics": metrics}

    def _teacher_artifact(self, target: Any) -> Path:
        """The fp32 teacher exported for this runtime, built once per teacher and runtime."""
        from edge_kd.export import export_model
        from edge_kd.pipeline import atomic_write_json

        teacher = self.shared.teacher()
        fp = self.shared.teacher_fingerprint[:16]
        folder = self.shared.shared_dir / f"teacher-{target.runtime.name}-{fp}"
        stamp = folder / "export.json"
        if stamp.is_file():
            import json

            primary = folder / json.loads(stamp.read_text())["primary"]
            if primary.is_file():
                return primary
        self.shared.log(f"bench: exporting the fp32 teacher to {target.runtime.name} (once per runtime)")
        # A copy: exporters trace (and some rewrite) the module they get; the build's teacher stays as fitted.
        import copy

        result = export_model(copy.deepcopy(teacher.model), teacher.example_inputs(), target, folder, name="teacher")
        atomic_write_json(stamp, {"primary": result.primary.name, "teacher": teacher.name, "weights": fp})
        return result.primary


def _bench_fields(bench: dict[str, Any]) -> dict[str, Any]:
    keys = ("latency_ms", "load_ms", "peak_rss_mb", "runtime", "runtime_version", "threads", "pinned_core", "ops")
    return {k: bench[k] for k in keys if k in bench}


def _python_eval(teacher: Any, test: Any, idx: Any, labels: Any, metric: str) -> dict[str, Any]:
    import importlib.metadata

    from edge_kd.metrics import regression_metrics

    figures = regression_metrics(teacher.predict(test, idx), labels)
    try:
        version = importlib.metadata.version(teacher.name)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return {"task_metric": {"name": metric, "value": figures[metric]}, **figures, "n": int(len(idx)),
            "measured_in": f"python ({teacher.name} {version})"}


def _baselines(test: Any, idx: Any, labels: Any) -> dict[str, Any]:
    """The data set's naive forecasts scored on the same rows as the models (e.g. seasonal naive)."""
    from edge_kd.metrics import regression_metrics

    out = {}
    for name, pred in test.baselines().items():
        out[name] = {**regression_metrics(pred[idx], labels),
                     "definition": test.weekly_facts.get(name, name) if hasattr(test, "weekly_facts") else name}
    return out
def _popularity_baseline(splits: Any, labels: Any) -> dict[str, Any]:
    """Recall@10 / NDCG@10 of the most-bought training products, on the rows the models were judged on."""
    import numpy as np

    from edge_kd.data.transactions import popularity_scores
    from edge_kd.metrics import ndcg_at_k, recall_at_k

    scores = np.broadcast_to(popularity_scores(splits.train), (len(labels), splits.train.num_classes))
    return {"name": "popularity", "recall@10": recall_at_k(labels, scores, 10),
            "ndcg@10": ndcg_at_k(labels, scores, 10)}


def _eval_fields(ev: dict[str, Any]) -> dict[str, Any]:
    out = {"task_metric": ev["task_metric"], "eval_rows": ev.get("n")}
    for k in ("accuracy", "roc_auc", "wape", "mae", "recall@10", "ndcg@10"):
        if ev.get(k) is not None:
            out[k] = ev[k]
    return out


# ---- gate ------------------------------------------------------------------------------------------
