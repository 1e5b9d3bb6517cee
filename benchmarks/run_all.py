"""Run every benchmark script (what `make bench` does) and summarise which ones produced results.

Each script measures side by side in one run and writes JSON + a Markdown table to benchmarks/results/.
They read real data from ../shared/data by default (`--data PATH` overrides); a script whose data is
missing says what is missing and exits 2, and the others still run.

    python benchmarks/run_all.py [--only runtimes,gate] [--quick]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Cheap ones first: a long one that fails late should not hide the others' results.
ORDER = ["gate", "reliability", "runtimes", "teacher_accuracy", "int8", "prune", "distill", "build"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(ORDER))
    parser.add_argument("--quick", action="store_true", help="pass --quick to scripts (fewer samples)")
    parser.add_argument("--data", help="pass --data PATH to the scripts that read real data")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else ORDER
    status = {}
    for name in names:
        script = HERE / f"{name}.py"
        if not script.exists():
            status[name] = "no script"
            continue
        cmd = [sys.executable, str(script)]
        text = script.read_text()
        # Pass the options on only to the scripts that take them.
        if args.quick and '"--quick"' in text:
            cmd.append("--quick")
        if args.data and '"--data"' in text:
            cmd += ["--data", args.data]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd)
        status[name] = f"exit {rc} in {time.perf_counter() - start:.0f}s"
    print("\nbenchmark        result")
    for name, text in status.items():
        print(f"{name:<16} {text}")
    return 0 if all(s.startswith("exit 0") or s == "no script" for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
