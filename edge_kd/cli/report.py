"""``edge-kd report``: compare builds in report.md and a self-contained report.html (no heavy imports).

Exit 0 when the report was written (whatever the gates say: ``edge-kd gate`` decides releases),
2 on bad input.
"""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write report.md and report.html comparing builds",
        description="Compare builds across targets and variants: size vs task metric with the Pareto front, "
                    "latency percentiles per runtime, where the bytes go, and each build's gate table. "
                    "report.html is self-contained (inline SVG, no scripts, no network).")
    parser.add_argument("builds", nargs="+", metavar="BUILD_DIR", help="build directories (or their build.json)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for report.md and report.html (new, empty, or holding an earlier report)")
    parser.add_argument("--title", default="edge-kd build report", help="page title")
    parser.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge_kd.pipeline.paths import check_output_dir, check_output_file, recorded_files
    from edge_kd.report import write_report

    folders = [Path(b) if Path(b).is_dir() else Path(b).parent for b in args.builds]
    out = check_output_dir(args.out, inputs=folders)
    protected = {f for folder in folders for f in recorded_files(folder)}
    for name in ("report.md", "report.html"):
        check_output_file(out / name, option="--out", inputs=protected)
    paths = write_report(args.builds, args.out, title=args.title)
    print(f"wrote {paths['markdown']} and {paths['html']}")
    return 0
