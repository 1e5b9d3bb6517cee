"""``edge-kd build RECIPE --target NAME [--target NAME ...] [--out DIR] [--resume]``: the whole pipeline."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build", help="teacher -> distill -> prune -> int8 -> export -> bench -> gate, per target",
        description="Validate the recipe and every profile, then per target: fine-tune/cache the teacher, "
                    "distill a student sized to the budget, prune (when the recipe asks), calibrate int8 and "
                    "export, benchmark student and teacher in the target runtime, and gate. One build folder "
                    "per target (OUT/TARGET) holds the artifacts, build.json and report.md. Completed stages "
                    "with the same inputs are reused on a re-run.",
        epilog="Exit codes: 0 built and every gate passed, 1 a gate failed, 2 bad input. "
               "Example: edge-kd build examples/intent_bitext.toml --target ort-mobile --target tflite-int8")
    parser.add_argument("recipe", metavar="RECIPE", help="recipe TOML (see examples/)")
    parser.add_argument("--target", action="append", dest="targets", metavar="NAME|PATH",
                        help="target profile (repeatable; default: the recipe's `target`)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: builds/<recipe name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted distillation from its last epoch checkpoint")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="training device (auto: CUDA when present)")
    parser.add_argument("--data-root", metavar="PATH",
                        help="value of ${shared_data} in the recipe (default: $EDGE_KD_SHARED_DATA or ../shared/data)")
    parser.add_argument("--json", metavar="OUT", help="also write the summary table as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_kd.stages.runner import build, summary_json, summary_table
    from edge_kd.cli._checks import check_device
    from edge_kd.pipeline import atomic_write_text
    from edge_kd.pipeline.paths import check_output_file

    check_output_file(args.json, option="--json", inputs=[args.recipe, *(args.targets or [])])
    check_device(args.device)
    summaries = build(args.recipe, args.targets, args.out, resume=args.resume, device=args.device,
                      shared_data=args.data_root)
    from edge_kd import console
    from edge_kd.stages.runner import stage_times

    times = stage_times(summaries)
    if times and console.level() != "quiet":
        import sys

        print(times, end="", file=sys.stderr, flush=True)
    print(summary_table(summaries), end="")
    if args.json:
        atomic_write_text(args.json, summary_json(summaries) + "\n")
    return 0 if all(s.gate_passed for s in summaries) else 1
