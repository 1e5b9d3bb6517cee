"""``edge-kd verify``: replay a bundle's golden vectors through its artifact in the artifact's runtime.

Exit 0 every bundle verified, 1 a mismatch (each named: the field, the vector), 2 not a bundle.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_kd.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify", help="replay a bundle's golden vectors through its artifact (exit 1 on a mismatch)",
        description="Check a build's bundle in the artifact's runtime: the artifact is the file the build "
                    "recorded, its I/O contract (read from the file) is the one the preprocessing asset "
                    "declares, and every golden vector replays: raw input -> the recorded tensors through the "
                    "shipped preprocessing, tensors -> the recorded outputs within tolerance and the same top-1. "
                    "Exit codes: 0 verified, 1 a mismatch, 2 not a bundle. See docs/bundle.md.")
    parser.add_argument("bundles", nargs="+", metavar="BUILD_DIR", help="build folder(s) of one target each")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON (a list, one object per bundle)")
    parser.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from edge_kd.bundle.contract import describe_tensor
    from edge_kd.bundle.verify import verify_bundle

    if args.json and any(Path(args.json).resolve() == (Path(b) / "build.json").resolve() for b in args.bundles):
        raise InputError(f"--json {args.json}: would overwrite a bundle's build.json")
    results = [verify_bundle(b) for b in args.bundles]
    for r in results:
        rep = r.replay
        agreement = f", top-1 {rep.top1_agreement:.0%}" if rep and rep.top1_agreement is not None else ""
        print(f"{r.bundle}: {r.artifact} in {r.runtime}: {'OK' if r.ok else 'MISMATCH'} "
              f"({rep.vectors if rep else 0} vectors, max |logit error| {rep.max_abs_error if rep else 0:.3g}"
              f"{agreement})")
        for side in ("inputs", "outputs"):
            for entry in r.contract[side]:
                print(f"  {side[:-1]:6} {describe_tensor(entry)}")
        for problem in r.all_problems:
            print(f"  FAIL {problem}")
    if args.json:
        from edge_kd.pipeline.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1
