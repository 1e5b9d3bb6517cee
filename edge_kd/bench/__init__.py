"""Measure an artifact the way a phone app would see it, in the real runtime.

``benchmark_artifact`` runs the artifact in a fresh subprocess pinned to one CPU core with the
profile's thread count: load time (first inference included), warm-up, then timed runs until both
``bench.min_runs`` and ``bench.min_seconds`` are reached (at most ``max_runs``), and the peak memory
above the process's baseline. ``evaluate_artifact`` measures accuracy through the runtime (not
PyTorch), optionally with agreement against a reference model or artifact.

    metrics = benchmark_artifact(Path("build/model.pte"), load_target("android-arm64-xnnpack"))
    metrics["latency_ms"]["p90"], metrics["peak_rss_mb"], metrics["ops"]["violations"]

Importing this package is light; runtimes are imported by the worker or when evaluating.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from edge_kd.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from edge_kd.targets import TargetProfile

#: Environment for the worker: thread pools of every library sized to the profile's thread count.
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
WORKER_TIMEOUT_S = 1800


def pick_core() -> int | None:
    """The last core this process may run on (core 0 takes most interrupts and system work)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return allowed[-1] if allowed else None


def latency_stats(times_ms: Sequence[float]) -> dict[str, float | int]:
    """p50/p90/p99/mean/std/min of per-run latencies (ms), linear-interpolated percentiles."""
    import numpy as np

    t = np.asarray(times_ms, dtype=np.float64)
    return {"p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "p99": float(np.percentile(t, 99)), "mean": float(t.mean()), "std": float(t.std()),
            "min": float(t.min()), "runs": int(t.size)}


def artifact_facts(path: Path) -> dict[str, Any]:
    from edge_kd.pipeline.files import file_facts

    return {"path": str(path), **file_facts(path), "format": path.suffix.lstrip(".").lower()}


def run_worker(path: Path, *, threads: int, core: int | None, warmup_runs: int, min_runs: int,
               min_seconds: float, max_runs: int, policy: str | None = None,
               inputs: Sequence["np.ndarray"] | None = None, ops: bool = True,
               runtime: str | None = None) -> dict[str, Any]:
    """Run the benchmark worker once and return its raw result (per-run times etc.); ``runtime``: the
    registered runtime to run it in (default: the one its extension names)."""
    import numpy as np

    from edge_kd.runtimes import default_policy, runtime_for, runtime_spec, violations

    with tempfile.TemporaryDirectory(prefix="edge-kd-bench-") as tmp:
        tmp_dir = Path(tmp)
        request: dict[str, Any] = {"path": str(Path(path).resolve()), "threads": threads, "core": core,
                                   "warmup_runs": warmup_runs, "min_runs": min_runs, "min_seconds": min_seconds,
                                   "max_runs": max_runs, "policy": policy, "ops": ops,
                                   # the spec travels with the request: the worker's process may not know
                                   # a runtime registered at run time (a plugin, a test)
                                   "runtime": runtime_spec(runtime_for(path, runtime)).to_dict()}
        if inputs is not None:
            np.savez(tmp_dir / "inputs.npz", **{f"x{i}": np.asarray(a) for i, a in enumerate(inputs)})
            request["inputs"] = str(tmp_dir / "inputs.npz")
        (tmp_dir / "request.json").write_text(json.dumps(request))
        env = dict(os.environ)
        env.update({k: str(threads) for k in _THREAD_ENV})
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = [sys.executable, "-m", "edge_kd.bench._worker", str(tmp_dir / "request.json"), str(tmp_dir / "result.json")]
        try:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InputError(f"{path}: benchmark did not finish within {WORKER_TIMEOUT_S}s") from None
        result_file = tmp_dir / "result.json"
        if not result_file.exists():
            tail = proc.stdout.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{path}: benchmark worker died (exit {proc.returncode}) without a result: "
                               + " | ".join(tail))
        result = json.loads(result_file.read_text())
    if not result.get("ok"):
        if result.get("input_error"):
            raise InputError(result["error"])
        raise RuntimeError(f"{path}: benchmark worker failed: {result.get('type')}: {result.get('error')}")
    if "ops" in result:
        name = request["runtime"]["name"]
        policy = policy or default_policy(name)
        result["ops"].update(policy=policy, violations=violations(policy, name, result["ops"]["operators"]))
    return result


def benchmark_artifact(path: str | os.PathLike[str], target: "TargetProfile", *,
                       inputs: tuple["np.ndarray", ...] | None = None, emulate: bool = True) -> dict[str, Any]:
    """Latency, load time, peak memory, file facts and operators of one artifact on ``target``.

    When the profile sets ``[bench] emulate`` (and ``emulate`` is true), the ARM64 figures of
    ``edge_kd.emulate`` are added under ``"emulated"``.

    Runs in a fresh subprocess pinned to one core (the last allowed one, when ``bench.pin_core``)
    with ``target.runtime.threads`` threads. ``inputs`` default to random arrays of the model's input
    shapes (latency barely depends on values). Returns the dict recorded in build.json "metrics".

    >>> m = benchmark_artifact(Path("build/model.tflite"), load_target("tflite-int8"))   # doctest: +SKIP
    >>> sorted(m["latency_ms"])                                                          # doctest: +SKIP
    ['mean', 'min', 'p50', 'p90', 'p99', 'runs', 'std']
    """
    from edge_kd.runtimes import runtime_for

    path = Path(path)
    runtime = runtime_for(path, target.runtime.name)
    if runtime != target.runtime.name:
        raise InputError(f"{path}: a {path.suffix} file runs in {runtime}, but target {target.name!r} "
                         f"uses {target.runtime.name} ({', '.join('.' + f for f in target.runtime.formats)})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    bench = target.bench
    core = pick_core() if bench.pin_core else None
    start = time.perf_counter()
    raw = run_worker(path, threads=target.runtime.threads, core=core, warmup_runs=bench.warmup_runs,
                     min_runs=bench.min_runs, min_seconds=bench.min_seconds, max_runs=bench.max_runs,
                     policy=target.ops.policy, inputs=inputs, runtime=runtime)
    metrics = {
        "latency_ms": latency_stats(raw["times_ms"]),
        "load_ms": raw["load_ms"],
        "peak_rss_mb": raw["peak_rss_mb"],
        "artifact": artifact_facts(path),
        "runtime": raw["runtime"],
        "runtime_version": raw["runtime_version"],
        "threads": target.runtime.threads,
        "pinned_core": raw["pinned_core"],
        "warmup_runs": bench.warmup_runs,
        "inputs": raw["inputs"],
        "ops": raw["ops"],
        "bench_seconds": round(time.perf_counter() - start, 3),
    }
    if emulate and bench.emulate:
        metrics["emulated"] = emulated_metrics(path, bench.emulate, threads=target.runtime.threads, inputs=inputs)
    return metrics


def emulated_metrics(path: Path, core: str, *, threads: int,
                     inputs: tuple["np.ndarray", ...] | None = None) -> dict[str, Any]:
    """The ARM64 figures recorded beside the host's (``edge_kd.emulate``), or why there are none."""
    from edge_kd.emulate import RUNTIMES, emulate_artifact
    from edge_kd.runtimes import runtime_for

    if runtime_for(path) not in RUNTIMES:
        return {"core": core, "skipped": f"{runtime_for(path)} artifacts do not run under emulation yet"}
    return emulate_artifact(path, core, threads=threads, inputs=inputs)


def evaluate_artifact(path: str | os.PathLike[str], samples: Iterable[tuple[tuple["np.ndarray", ...], Any]], *,
                      task: str = "classification", reference: Callable[..., Any] | str | os.PathLike[str] | None = None,
                      threads: int = 1, runtime: str | None = None, metric: str | None = None) -> dict[str, Any]:
    """Accuracy (classification), ROC AUC + accuracy (binary) or WAPE + MAE (regression: one output,
    the forecast; ``metric`` picks which one is the task metric, default WAPE) of an artifact run in its runtime
    (``runtime``: a registered runtime that loads its format; default: the one its extension names).

    ``samples`` yields ``(inputs, label)`` with inputs in the model's order (batch 1 is typical; a
    batch of N takes N labels). ``reference`` (a torch callable or another artifact's path) adds
    ``agreement``: top-1 agreement and max abs output difference between the two.

    >>> evaluate_artifact(Path("build/model.ort"), [((x, ), 3) for x in images])      # doctest: +SKIP
    {'task_metric': {'name': 'accuracy', 'value': 0.91}, 'accuracy': 0.91, 'n': 500, ...}
    """
    import numpy as np

    from edge_kd.metrics import binary_scores, regression_metrics, roc_auc
    from edge_kd.runtimes import open_runner

    if task not in ("classification", "binary", "regression", "ranking"):
        raise InputError(f"unknown task {task!r}; known: classification, binary, regression, ranking")
    start = time.perf_counter()
    runner = open_runner(path, threads=threads, runtime=runtime)
    ref_runner = ref_fn = None
    if reference is not None:
        if isinstance(reference, (str, os.PathLike)):
            ref_runner = open_runner(reference, threads=threads)
        else:
            ref_fn = reference
    labels: list[Any] = []
    firsts: list[np.ndarray] = []
    ref_firsts: list[np.ndarray] = []
    max_err = 0.0
    for inputs, label in samples:
        inputs = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
        outputs = runner.run(list(inputs))
        first = np.asarray(outputs[0])
        first = first.reshape(first.shape[0] if first.ndim else 1, -1)
        firsts.append(first)
        if task == "ranking":  # a target set per output row ([K] or [N, K], -1 padded)
            labels.extend(np.asarray(label).reshape(first.shape[0], -1))
        else:
            labels.extend(np.atleast_1d(np.asarray(label)).reshape(-1).tolist())
        if ref_runner is not None or ref_fn is not None:
            if ref_runner is not None:
                ref_out = ref_runner.run(list(inputs))
            else:
                from edge_kd.export.parity import reference_outputs

                ref_out = reference_outputs(ref_fn, inputs)
            ref_first = np.asarray(ref_out[0]).reshape(first.shape)
            ref_firsts.append(ref_first)
            max_err = max(max_err, float(np.max(np.abs(ref_first.astype(np.float64) - first))) if first.size else 0.0)
    if not firsts:
        raise InputError(f"{path}: no samples to evaluate")
    logits = np.concatenate(firsts, axis=0)
    if task == "ranking":
        width = max(len(t) for t in labels)
        y = np.full((len(labels), width), -1, dtype=np.int64)
        for i, t in enumerate(labels):
            y[i, :len(t)] = t
    else:
        y = np.asarray(labels)
    if len(y) != logits.shape[0]:
        raise InputError(f"{path}: {len(y)} labels for {logits.shape[0]} model outputs")
    result: dict[str, Any] = {"n": int(len(y)), "runtime": runner.runtime, "runtime_version": runner.runtime_version}
    if task == "regression":
        if logits.shape[-1] != 1:
            raise InputError(f"{path}: a regression model has one output per row, this one has {logits.shape[-1]}")
        figures = regression_metrics(logits, y)
        name = metric or "wape"
        if name not in figures:
            raise InputError(f"unknown regression metric {name!r}; known: {', '.join(figures)}")
        result.update(task_metric={"name": name, "value": figures[name]}, **figures)
    elif task == "ranking":
        from edge_kd.metrics import ndcg_at_k, recall_at_k

        recall, ndcg = recall_at_k(y, logits, 10), ndcg_at_k(y, logits, 10)
        result.update({"task_metric": {"name": "recall@10", "value": recall}, "recall@10": recall, "ndcg@10": ndcg})
    elif task == "classification":
        accuracy = float(np.mean(logits.argmax(-1) == y.astype(np.int64)))
        result.update(task_metric={"name": "accuracy", "value": accuracy}, accuracy=accuracy)
    else:
        scores = binary_scores(logits)
        threshold = 0.0  # logit 0 == probability 0.5
        accuracy = float(np.mean((scores > threshold) == (y > 0.5)))

        auc = roc_auc(y > 0.5, scores)
        result.update(task_metric={"name": "roc_auc", "value": auc}, roc_auc=auc, accuracy=accuracy)
    if ref_firsts:
        ref = np.concatenate(ref_firsts, axis=0)
        if task == "regression":
            agree = None
        elif task == "binary" and logits.shape[-1] <= 2:
            agree = float(np.mean((binary_scores(ref) > 0) == (binary_scores(logits) > 0)))
        else:
            agree = float(np.mean(ref.argmax(-1) == logits.argmax(-1)))
        result["agreement"] = {"top1_agreement": agree, "max_abs_error": max_err}
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


__all__ = ["artifact_facts", "benchmark_artifact", "evaluate_artifact", "latency_stats", "pick_core", "run_worker"]
