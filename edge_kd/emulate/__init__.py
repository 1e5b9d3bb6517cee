"""Benchmark the very same artifacts on ARM64 kernels under qemu-user emulation.

The artifact runs in the aarch64 build of its runtime (the host's version, from PyPI) on an emulated
phone core (``qemu-aarch64 -cpu cortex-a76``: the runtimes pick their dot-product kernels from the
core's HWCAPs, as on the phone). A TCG plugin counts the instructions of each marked inference by
kind, decoded from the encoding; ``edge_kd.emulate.cost`` folds them into classes and estimates a
latency from the core's documented issue throughputs and clock. Emulated wall time is meaningless
(100-800x slower than the phone) and is not reported.

    env = ensure_environment()                       # or `edge-kd arm-emu`; idempotent
    m = emulate_artifact(Path("build/model.tflite"), "cortex-a76")
    m["instructions"], m["classes"]["int8_dot"], m["estimate_ms"]

Importing this package is light (no runtime, no torch).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from edge_kd.emulate.cost import CLASSES, CORES, KIND_CLASS, class_histogram, core_model, estimate
from edge_kd.emulate.env import Environment, ensure_environment, environment
from edge_kd.errors import InputError

if TYPE_CHECKING:
    import numpy as np

#: Emulation runs the guest interpreter at ~100x cost: generous, but a hung guest must not hang a build.
GUEST_TIMEOUT_S = 1800
RUNTIMES = ("executorch", "onnxruntime", "litert")


def emulate_artifact(path: str | os.PathLike[str], core: str, *, threads: int = 1, runs: int = 3,
                     warmup_runs: int = 1, inputs: Sequence["np.ndarray"] | None = None,
                     env: Environment | None = None) -> dict[str, Any]:
    """Instructions per inference of ``path`` on an emulated ``core``, by class, and an estimated latency.

    ``runs`` marked inferences follow ``warmup_runs`` unmarked ones; the figures are the median run
    minus the marker's own cost (an empty marked region). ``compute_deterministic`` says whether every
    run executed exactly the same multiply-add/dot instructions, ``spread`` how much the totals varied. Raises InputError for an unknown core, an
    artifact the aarch64 runtime cannot load, or a missing environment (with how to build it).

    >>> m = emulate_artifact("build/model.tflite", "cortex-a76")    # doctest: +SKIP
    >>> m["classes"]["int8_dot"] > 0                                 # doctest: +SKIP
    True
    """
    from edge_kd.runtimes import runtime_for

    try:
        model = core_model(core)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    path = Path(path)
    runtime = runtime_for(path)
    if runtime not in RUNTIMES:
        raise InputError(f"{path}: emulated benchmarks of {runtime} artifacts are not supported yet "
                         f"(supported: {', '.join(RUNTIMES)})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if threads != 1:
        raise InputError(f"emulated counting needs threads = 1 (one phone core); the target asks for {threads}")
    if runs < 1:
        raise InputError("emulated runs must be >= 1")
    env = env or environment()
    view = env.core_root(model)
    if not (view / "proc" / "cpuinfo").exists():
        raise InputError(f"no rootfs view for core {model.name} in {env.home}; run `edge-kd arm-emu`")
    baseline = 2
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edge-kd-emu-") as tmp_name:
        tmp = Path(tmp_name)
        # The guest sees edge_kd through a link, not the folder holding it (which may hold x86 packages).
        (tmp / "path").mkdir()
        (tmp / "path" / "edge_kd").symlink_to(Path(__file__).resolve().parent.parent)
        request = {"path": str(path.resolve()), "threads": threads, "runs": runs, "warmup_runs": warmup_runs,
                   "baseline": baseline}
        if inputs is not None:
            import numpy as np

            np.savez(tmp / "inputs.npz", **{f"x{i}": np.asarray(a) for i, a in enumerate(inputs)})
            request["inputs"] = str(tmp / "inputs.npz")
        (tmp / "request.json").write_text(json.dumps(request))
        counts_file, result_file = tmp / "counts.json", tmp / "result.json"
        cmd = ["qemu-aarch64", "-L", str(view), "-cpu", model.qemu_cpu, "-plugin", f"{env.plugin},out={counts_file}"]
        if runtime == "executorch":
            if env.et_runner is None:
                raise InputError(f"{path}: ExecuTorch under emulation needs the cross-compiled runner: install "
                                 "g++-aarch64-linux-gnu (and executorch on the host), then run `edge-kd arm-emu`")
            cmd += [str(env.et_runner), str(path.resolve()), str(result_file), str(warmup_runs), str(baseline),
                    str(runs), *map(str, _raw_inputs(path, inputs, tmp))]
        else:
            cmd += [str(view) + env.python, "-m", "edge_kd.emulate._guest", str(tmp / "request.json"), str(result_file)]
        guest_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8",
                     "PYTHONPATH": f"{env.site}:{tmp / 'path'}", "PYTHONHASHSEED": "0",
                     "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        try:
            proc = subprocess.run(cmd, env=guest_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=GUEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InputError(f"{path}: the emulated benchmark did not finish within {GUEST_TIMEOUT_S}s") from None
        tail = " | ".join(proc.stdout.decode(errors="replace").strip().splitlines()[-3:])
        if not result_file.exists():
            raise InputError(f"{path}: the aarch64 {runtime} died under emulation (exit {proc.returncode}): {tail}")
        result = json.loads(result_file.read_text())
        if not result.get("ok"):
            raise InputError(f"{path}: the aarch64 {runtime} cannot run it: {result.get('error')}")
        result.setdefault("runtime_version", env.versions["pins"].get(runtime))
        if not counts_file.exists():
            raise RuntimeError(f"{path}: the counting plugin wrote no counts (exit {proc.returncode}): {tail}")
        counts = json.loads(counts_file.read_text())
    return summarize(counts, model.name, runs=runs, baseline=baseline) | {
        "runtime": result["runtime"], "runtime_version": result["runtime_version"], "inputs": result["inputs"],
        "threads": threads, "warmup_runs": warmup_runs, "environment": env.versions,
        "emulation_seconds": round(time.perf_counter() - start, 3)}


def _raw_inputs(path: Path, inputs: Sequence["np.ndarray"] | None, tmp: Path) -> list[Path]:
    """The host benchmark's inputs for a .pte as raw files the C++ runner reads (specs from the host runtime)."""
    import numpy as np

    from edge_kd.runtimes import open_runner

    runner = open_runner(path, threads=1)
    if inputs is None:
        # edge_kd.bench._worker's default inputs: same seed, same arrays.
        rng = np.random.default_rng(0)
        inputs = [rng.random(shape).astype(dtype) if np.dtype(dtype).kind == "f"
                  else rng.integers(0, 2, shape).astype(dtype) for _, shape, dtype in runner.input_specs]
    files = []
    for i, array in enumerate(runner.check_inputs(list(inputs))):
        files.append(tmp / f"input{i}.bin")
        np.ascontiguousarray(array).tofile(files[-1])
    return files


COMPUTE_CLASSES = ("fp_fma", "int8_dot", "int_mac")


def _named(kinds: list[str], row: list[int]) -> dict[str, int]:
    return {k: n for k, n in zip(kinds, row) if n}


def summarize(counts: dict[str, Any], core: str, *, runs: int, baseline: int) -> dict[str, Any]:
    """Plugin output -> per-inference figures: median run minus the cheapest empty region, by kind and class."""
    model = core_model(core)
    kinds, regions = counts["kinds"], counts["regions"]
    unknown = sorted(set(kinds) - set(KIND_CLASS))
    if unknown:
        raise RuntimeError(f"counting plugin reports kinds the cost model does not know: {', '.join(unknown)}")
    if len(regions) != baseline + runs:
        raise RuntimeError(f"expected {baseline + runs} marked regions, the plugin saw {len(regions)}")
    empty = min(regions[:baseline], key=sum)
    per_run = [[max(0, n - e) for n, e in zip(region, empty)] for region in regions[baseline:]]
    totals = [sum(r) for r in per_run]
    median_total = statistics.median_low(totals)
    chosen = per_run[totals.index(median_total)]
    by_kind = _named(kinds, chosen)
    est = estimate(by_kind, model)
    return {
        "core": model.name,
        "qemu_cpu": model.qemu_cpu,
        "instructions": median_total,
        "classes": class_histogram(by_kind),
        "kinds": by_kind,
        "run_instructions": totals,
        # Kernel work (multiply-adds, dot products) repeats exactly; the interpreter and allocator around
        # it vary by a few hundred instructions between runs.
        "deterministic": len(set(totals)) == 1,
        "compute_deterministic": len({tuple(class_histogram(_named(kinds, r))[c] for c in COMPUTE_CLASSES)
                                      for r in per_run}) == 1,
        "spread": (max(totals) - min(totals)) / median_total if median_total else 0.0,
        "marker_instructions": sum(empty),
        # Instructions other guest threads ran during the median run: ~0 when the runtime keeps to one thread.
        "other_thread_instructions": counts["other_threads"][baseline + totals.index(median_total)],
        "guest_threads": counts["vcpus"],
        "estimate_ms": est["ms"],
        "estimate_cycles": est["cycles"],
        "cost_model": {"clock_ghz": model.clock_ghz, "class_cycles": model.class_cycles,
                       "kind_cycles": model.kind_cycles, "sources": list(model.sources)},
    }


__all__ = ["CLASSES", "CORES", "Environment", "emulate_artifact", "ensure_environment", "environment", "summarize"]
