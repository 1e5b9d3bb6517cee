"""``edge-kd targets list|show|validate``: inspect and check target profiles (no heavy imports)."""
from __future__ import annotations

import argparse
import sys

from edge_kd.cli.common import print_json, print_table
from edge_kd.errors import EdgeKDError
from edge_kd.units import format_bytes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("targets", help="list, show and validate target profiles",
                                   description="Inspect the deployment target profiles (targets/*.toml).")
    sub = parser.add_subparsers(dest="targets_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="one row per shipped profile")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="the fully resolved profile (after extends)")
    p.add_argument("ref", metavar="NAME|PATH")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("validate", help="check profile files; exit 0 when all are valid, 2 otherwise")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=cmd_validate)


def cmd_list(args: argparse.Namespace) -> int:
    from edge_kd.targets import list_targets

    targets = list_targets()
    if args.json:
        print_json([t.summary() for t in targets])
        return 0
    rows = [(t.name, t.runtime.name, ",".join(t.runtime.formats), format_bytes(t.budgets.artifact_size),
             format_bytes(t.budgets.download_size), f"{t.budgets.latency_p90:g} ms", str(t.budgets.accuracy_drop),
             t.runtime.threads, t.quantization.mode, t.ops.policy) for t in targets]
    print_table(rows, ["name", "runtime", "formats", "size budget", "download", "p90 budget", "max drop",
                       "threads", "quant", "op policy"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from edge_kd.targets import load_target

    profile = load_target(args.ref)
    data = profile.to_dict()
    if args.json:
        print_json({**data, "source": profile.source})
        return 0
    print(f"# {profile.name}  ({profile.source})")
    if profile.description:
        print(f"# {profile.description}")
    for section, values in data.items():
        if isinstance(values, dict):
            print(f"\n[{section}]")
            for key, value in values.items():
                print(f"{key} = {value!r}" if value is not None else f"# {key} (not set)")
        elif section not in ("name", "description"):
            print(f"{section} = {values!r}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from edge_kd.targets import load_target

    failures = 0
    for path in args.paths:
        try:
            profile = load_target(path)
        except EdgeKDError as exc:
            failures += 1
            print(f"INVALID {exc}", file=sys.stderr)
        else:
            print(f"ok      {path} ({profile.name}: {profile.runtime.name}, {','.join(profile.runtime.formats)})")
    return 2 if failures else 0
