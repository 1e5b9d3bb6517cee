"""``make demo``: the product's main job on the bundled default example.

Builds the customer-support intent classifier of ``examples/intent_bitext.toml`` (Bitext e-commerce
support utterances, shipped in examples/data; teacher all-MiniLM-L6-v2 with a fine-tuned head) for
the three shipped targets, then prints one table: per target the bundle size vs budget, accuracy vs
the teacher (both measured through the target runtime), p50 latency vs the teacher, and the gate
verdict. A second run reuses the cached teacher and the completed stages.

    python -m edge_kd.demo [--out builds/demo] [--target NAME ...] [--verbose]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "examples" / "intent_bitext.toml"
TARGETS = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "builds" / "demo"))
    parser.add_argument("--target", action="append", dest="targets")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the toolchain's own logs (normally kept in OUT/<target>/logs/)")
    args = parser.parse_args(argv)
    if args.verbose:
        from edge_kd import console

        console.set_level("verbose")

    from edge_kd.cli import main as cli

    print("== Target profiles (edge-kd targets list)", flush=True)
    cli(["targets", "list"])
    targets = args.targets or TARGETS
    print(f"\n== edge-kd build {RECIPE.relative_to(REPO)} " + " ".join(f"--target {t}" for t in targets)
          + f" --out {args.out}", flush=True)
    start = time.perf_counter()
    cmd = ["build", str(RECIPE), "--out", args.out, "--json", str(Path(args.out) / "demo-summary.json")]
    for t in targets:
        cmd += ["--target", t]
    code = cli(cmd)
    print(f"\nbuilt in {time.perf_counter() - start:.0f} s; per-target folders in {args.out} hold the artifacts, "
          "build.json and report.md", flush=True)
    if code == 2:
        return 2
    report_dir = Path(args.out) / "report"
    cli(["report", *[str(Path(args.out) / t) for t in targets], "--out", str(report_dir)])
    print(f"HTML report: {report_dir / 'report.html'}")
    # The demo shows the verdicts; a failed gate is information here, not a failed demo.
    return 0


if __name__ == "__main__":
    sys.exit(main())
