"""Benchmark worker: runs in a fresh process so that load time, memory and the thread pool are those
of an app that just started, pinned to one core like a phone's big core.

    python -m edge_kd.bench._worker REQUEST.json RESULT.json

The request names the artifact, its runtime's registry spec, threads, the core, the run counts and
(optionally) an .npz of inputs. The result JSON holds raw per-run times and memory; statistics are computed by the parent.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0) so the peak counts only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    result: dict = {}
    try:
        core = request.get("core")
        if core is not None:
            os.sched_setaffinity(0, {int(core)})
        import importlib

        import numpy as np

        from edge_kd.runtimes import RUNTIMES, RuntimeSpec, open_runner, register_runtime

        spec = RuntimeSpec.from_dict(request["runtime"])
        if spec.name not in RUNTIMES:
            register_runtime(spec)
        # The runtime library is imported before the memory baseline: its code is the app's, not the model's.
        for module in spec.bench_preload:
            importlib.import_module(module)
        inputs = None
        if request.get("inputs"):
            with np.load(request["inputs"], allow_pickle=False) as data:
                inputs = [data[k] for k in sorted(data.files, key=lambda k: int(k[1:]))]
        import gc

        gc.collect()
        peak_reset = _reset_peak()
        baseline_kib = _status_kib("VmRSS")
        t0 = time.perf_counter()
        runner = open_runner(request["path"], threads=int(request["threads"]), runtime=spec.name)
        if inputs is None:
            rng = np.random.default_rng(0)
            inputs = [rng.random(shape).astype(dtype) if np.dtype(dtype).kind == "f"
                      else rng.integers(0, 2, shape).astype(dtype) for _, shape, dtype in runner.input_specs]
        inputs = runner.check_inputs(inputs)
        runner._run(inputs)  # the first inference completes loading (weight packing, allocation)
        load_ms = (time.perf_counter() - t0) * 1e3
        for _ in range(int(request["warmup_runs"])):
            runner._run(inputs)
        times = []
        min_runs, max_runs = int(request["min_runs"]), int(request["max_runs"])
        min_seconds = float(request["min_seconds"])
        clock = time.perf_counter
        start = clock()
        while True:
            t = clock()
            runner._run(inputs)
            times.append((clock() - t) * 1e3)
            if len(times) >= max_runs or (len(times) >= min_runs and clock() - start >= min_seconds):
                break
        peak_kib = _status_kib("VmHWM")
        if not peak_reset or peak_kib is None:
            import resource

            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = {
            "ok": True, "times_ms": times, "load_ms": load_ms,
            "baseline_rss_mb": (baseline_kib or 0) / 1024, "peak_rss_mb": max(0, (peak_kib - (baseline_kib or 0))) / 1024,
            "peak_rss_method": "VmHWM after clear_refs" if peak_reset else "ru_maxrss",
            "runtime": runner.runtime, "runtime_version": runner.runtime_version,
            "pinned_core": core, "affinity": sorted(os.sched_getaffinity(0)),
            "inputs": [{"name": n, "shape": list(s), "dtype": np.dtype(d).name} for n, s, d in runner.input_specs],
        }
        if request.get("ops", True):
            # The operator list only: the parent judges it against the policy (it knows every policy
            # registered in its process, this one only the shipped ones).
            result["ops"] = runner.ops("any")
    except Exception as exc:
        from edge_kd.errors import EdgeKDError

        result = {"ok": False, "input_error": isinstance(exc, EdgeKDError), "error": str(exc),
                  "type": type(exc).__name__, "traceback": traceback.format_exc()[-4000:]}
    result_path.write_text(json.dumps(result, default=str))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
