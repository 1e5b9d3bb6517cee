"""How fast is ``edge-kd gate``? It must answer in well under a second for a dozen builds.

Generates 12 realistic build directories (3 targets x 4 model widths, 0.2-2.6 MB int8 models with
their per-tensor lists, a preprocessing asset, stage records and a build.json written by the real
``edge_kd.pipeline.Build``), then measures, side by side in one run:

* ``python -c pass``: interpreter start alone (the floor of any CLI call);
* ``edge-kd gate <12 builds> --json --junit --markdown`` as a subprocess (wall time including
  interpreter start, imports, sha256 of every artifact and writing the three reports), without and
  with ``--baseline`` (one per target);
* ``edge_kd.gate.evaluate`` on the 12 builds in-process (no interpreter start).

Needs no dataset (the gate reads manifests only). Writes benchmarks/results/gate.json and gate.md.

    .venv/bin/python benchmarks/gate.py            # --runs 15 --work /tmp/gate-bench
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGETS = ("android-arm64-xnnpack", "ort-mobile", "tflite-int8")
WIDTHS = (32, 48, 64, 96)
BUDGETS = {"artifact_size": "4MiB", "download_size": "3MiB", "latency_p90": "20ms", "accuracy_drop": "1pt"}
HEAVY = ("torch", "executorch", "onnxruntime", "ai_edge_litert", "litert_torch", "tensorflow")


def _fixtures():
    path = REPO / "tests" / "unit" / "gate" / "conftest.py"
    spec = importlib.util.spec_from_file_location("edge_kd_bench_gate_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_builds(work: Path) -> tuple[list[Path], list[Path]]:
    fx = _fixtures()
    builds, baselines = [], []
    for t_i, target in enumerate(TARGETS):
        for w_i, width in enumerate(WIDTHS):
            metric = 0.910 + 0.002 * w_i
            latency = (4.0 + 2.5 * w_i, 4.6 + 2.9 * w_i, 5.5 + 3.4 * w_i)
            build = fx.write_build(work / f"{target}-w{width}", target=target, width=width, budgets=BUDGETS,
                                   metric=metric, teacher_metric=0.918, latency=latency, seed=10 * t_i + w_i)
            builds.append(build)
        baselines.append(fx.baseline_of(builds[-1], work / f"release-{target}"))
    return builds, baselines


def _timed(cmd: list[str], runs: int, expect_rc: int) -> list[float]:
    times = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - start)
        if proc.returncode != expect_rc:
            raise SystemExit(f"{' '.join(cmd[:4])}...: exit {proc.returncode}, expected {expect_rc}\n{proc.stderr}")
    return times


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_s": round(statistics.median(ordered), 4), "min_s": round(ordered[0], 4),
            "max_s": round(ordered[-1], 4), "runs": len(ordered)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="repetitions of each measurement (default 15)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the generated builds (default: temp)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results", help="output folder")
    args = parser.parse_args(argv)

    from edge_kd.gate import evaluate, reports_to_json, reports_to_junit, reports_to_markdown
    from edge_kd.pipeline.atomic import atomic_write_json, atomic_write_text

    work = args.work or Path(tempfile.mkdtemp(prefix="edge-kd-gate-bench-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        builds, baselines = make_builds(work)
        generate_s = time.perf_counter() - t0
        model_bytes = [next(a["bytes"] for a in json.loads((b / "build.json").read_text())["artifacts"]
                            if a["role"] == "model") for b in builds]
        out = work / "out"
        gate = [sys.executable, "-m", "edge_kd", "gate", *map(str, builds), "--quiet", "--json", str(out / "g.json"),
                "--junit", str(out / "g.xml"), "--markdown", str(out / "g.md")]
        # One release per target serves as the baseline of its four widths: tolerances wide enough that
        # all pass, since this measures speed (the verdicts are tested in tests/unit/gate).
        with_base = gate + [a for b in baselines for a in ("--baseline", str(b))] + [
            "--max-size-growth", "1000%", "--max-metric-loss", "1pt", "--max-latency-growth", "1000%"]
        # Interleave the measurements so that machine noise hits them alike.
        py, cli, cli_base = [], [], []
        for _ in range(args.runs):
            py += _timed([sys.executable, "-c", "pass"], 1, 0)
            cli += _timed(gate, 1, 0)
            cli_base += _timed(with_base, 1, 0)

        in_proc, render = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            reports = [evaluate(b) for b in builds]
            in_proc.append(time.perf_counter() - start)
            assert all(r.passed for r in reports), [(r.build, [c.reason for c in r.failed]) for r in reports]
            start = time.perf_counter()
            reports_to_json(reports), reports_to_junit(reports), reports_to_markdown(reports)
            render.append(time.perf_counter() - start)

        probe = ("import sys, json; from edge_kd.cli import main; rc = main(sys.argv[1:]); "
                 "print(json.dumps([len(sys.modules), "
                 f"sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})]))")
        proc = subprocess.run([sys.executable, "-c", probe, *gate[3:]], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
        n_modules, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
        # A failing build must fail the gate (exit 1): a broken budget measured in the same harness.
        fx = _fixtures()
        failing = fx.write_build(work / "over-budget", width=128, budgets=BUDGETS)
        fail_rc = subprocess.run([*gate[:4], str(failing), "--quiet"], capture_output=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO).returncode
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    results = {
        "benchmark": "edge-kd gate on 12 builds",
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
        "builds": len(builds),
        "model_bytes": {"min": min(model_bytes), "max": max(model_bytes), "total": sum(model_bytes)},
        "generate_builds_s": round(generate_s, 2),
        "python_startup": _stats(py),
        "cli_gate_12_builds": _stats(cli),
        "cli_gate_12_builds_with_baselines": _stats(cli_base),
        "in_process_evaluate_12_builds": _stats(in_proc),
        "in_process_render_3_formats": _stats(render),
        "cli_minus_python_startup_s": round(statistics.median(cli) - statistics.median(py), 4),
        "modules_loaded_by_cli": n_modules,
        "heavy_modules_loaded_by_cli": heavy,
        "over_budget_build_exit_code": fail_rc,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "gate.json", results)

    def row(name: str, key: str) -> str:
        s = results[key]
        return f"| {name} | {s['median_s'] * 1000:.0f} | {s['min_s'] * 1000:.0f} | {s['max_s'] * 1000:.0f} |"

    md = [
        "# edge-kd gate: speed on 12 builds", "",
        f"12 generated builds (3 targets x 4 widths; int8 models {model_bytes and min(model_bytes) / 1e6:.2f}-"
        f"{max(model_bytes) / 1e6:.2f} MB, {sum(model_bytes) / 1e6:.1f} MB in all, every artifact sha256-verified). "
        f"{args.runs} runs each, interleaved, on {os.cpu_count()} shared CPUs (1-min load average "
        f"{results['machine']['load_average_1min_at_end']} at the end); Python {platform.python_version()}.", "",
        "| measurement | median ms | min ms | max ms |", "|---|---:|---:|---:|",
        row("`python -c pass` (interpreter start only)", "python_startup"),
        row("`edge-kd gate` 12 builds, JSON+JUnit+Markdown (subprocess wall)", "cli_gate_12_builds"),
        row("same, with `--baseline` for each of the 3 targets", "cli_gate_12_builds_with_baselines"),
        row("`edge_kd.gate.evaluate` x12 in-process", "in_process_evaluate_12_builds"),
        row("rendering JSON+JUnit+Markdown for 12 builds in-process", "in_process_render_3_formats"), "",
        f"The CLI costs {results['cli_minus_python_startup_s'] * 1000:.0f} ms over bare interpreter start; "
        f"it loaded {n_modules} modules, heavy ones: {heavy or 'none'}. "
        f"A build over its size budget exits {fail_rc}.", "",
        "Command: `.venv/bin/python benchmarks/gate.py`",
    ]
    atomic_write_text(args.results / "gate.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
