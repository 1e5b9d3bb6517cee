"""``edge-kd gate``: refuse a release whose recorded figures break a budget (no heavy imports).

Exit 0 every check of every build passed, 1 a check failed, 2 bad input. Reports go to --json,
--junit and --markdown (written atomically, even when a check fails); the console gets a table.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edge_kd.cli.common import add_target_argument
from edge_kd.errors import InputError

_HELP_TOLERANCES = ("Tolerances apply with --baseline: sizes as '5%%' or '64KiB', the task metric as '0.5pt' "
                    "(absolute points) or '1%%' (relative), latency as '10%%' or '2ms'.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gate", help="check builds against their budgets (exit 1 when a check fails)",
        description="Check the figures recorded in build.json against the target's budgets: bundle size and "
                    "gzip size, p90 latency, task metric vs teacher, operator policy, and (with --baseline) "
                    "growth against the last release. Missing figures or edited artifacts fail. "
                    "Exit codes: 0 all passed, 1 a check failed, 2 bad input.",
        epilog=_HELP_TOLERANCES + " See docs/gate.md.")
    parser.add_argument("builds", nargs="+", metavar="BUILD_DIR|build.json", help="build(s) to check")
    add_target_argument(parser, required=False)
    parser.set_defaults(target=None)
    parser.add_argument("--baseline", action="append", default=[], metavar="OLD_build.json|DIR",
                        help="the last release's build (its build.json is enough); repeat once per target "
                             "when gating builds of several targets")
    parser.add_argument("--json", metavar="OUT", help="write the report as JSON")
    parser.add_argument("--junit", metavar="OUT", help="write JUnit XML (one testsuite per build)")
    parser.add_argument("--markdown", metavar="OUT", help="write Markdown for a pull-request comment")
    parser.add_argument("--max-size-growth", default="5%", metavar="TOL",
                        help="allowed bundle growth vs the baseline (default: 5%%)")
    parser.add_argument("--max-metric-loss", default="0.5pt", metavar="TOL",
                        help="allowed task-metric loss vs the baseline (default: 0.5pt)")
    parser.add_argument("--max-latency-growth", default="10%", metavar="TOL",
                        help="allowed p90 latency growth vs the baseline (default: 10%%)")
    parser.add_argument("--quiet", action="store_true", help="print only the verdict line")
    parser.set_defaults(func=cmd_gate)


def _manifest_file(ref: str) -> Path:
    p = Path(ref)
    return (p / "build.json") if p.is_dir() else p


def _check_outputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    from edge_kd.pipeline.paths import check_output_file, recorded_files, resolve_path

    outputs = [(kind, Path(getattr(args, kind))) for kind in ("json", "junit", "markdown") if getattr(args, kind)]
    inputs = {resolve_path(_manifest_file(r)) for r in [*args.builds, *args.baseline]}
    # Everything the gate reads is an input: the profile and every artifact it hashes, not only build.json.
    protected = set(inputs)
    for manifest in inputs:
        protected |= recorded_files(manifest.parent)
    if args.target is not None:
        from edge_kd.targets import targets_dir

        ref = str(args.target)
        protected.add((Path(ref) if ref.endswith(".toml") or "/" in ref else targets_dir() / f"{ref}.toml").resolve())
    seen: dict[Path, str] = {}
    for kind, path in outputs:
        resolved = resolve_path(path)
        if resolved in inputs:
            raise InputError(f"--{kind} {path}: would overwrite an input manifest; the gate never modifies inputs")
        check_output_file(path, option=f"--{kind}", inputs=protected)  # dirs, links, names, artifacts, profile
        if resolved in seen:
            raise InputError(f"--{kind} {path}: same file as --{seen[resolved]}")
        seen[resolved] = kind
    return outputs


def _baselines_by_build(args: argparse.Namespace) -> list[str | None]:
    """The baseline each build is compared with: the one given, or (several given) the one of its target."""
    from edge_kd.gate import load_build

    if not args.baseline:
        return [None] * len(args.builds)
    if len(args.baseline) == 1:
        return [args.baseline[0]] * len(args.builds)

    def target_name(ref: str, what: str) -> str:
        manifest, _, label = load_build(ref, what=what)
        target = manifest.get("target")
        if not isinstance(target, dict) or not isinstance(target.get("name"), str):
            raise InputError(f"{label}: the manifest records no target profile")
        return target["name"]

    by_target: dict[str, str] = {}
    for ref in args.baseline:
        name = target_name(ref, "baseline")
        if name in by_target:
            raise InputError(f"--baseline {ref}: a second baseline for target {name!r} (first: {by_target[name]})")
        by_target[name] = ref
    chosen = []
    for ref in args.builds:
        name = target_name(ref, "build")
        if name not in by_target:
            raise InputError(f"{ref}: no --baseline for target {name!r} (baselines given for: "
                             f"{', '.join(sorted(by_target))})")
        chosen.append(by_target[name])
    return chosen


def cmd_gate(args: argparse.Namespace) -> int:
    from edge_kd.gate import Tolerances, evaluate, reports_to_console, reports_to_json, reports_to_junit, \
        reports_to_markdown
    from edge_kd.gate.formats import write_output

    outputs = _check_outputs(args)
    tolerances = Tolerances.from_mapping({"max_size_growth": args.max_size_growth,
                                          "max_metric_loss": args.max_metric_loss,
                                          "max_latency_growth": args.max_latency_growth}, source="edge-kd gate")
    target = None
    if args.target is not None:
        from edge_kd.targets import load_target

        target = load_target(args.target)
    # Judge everything before writing anything: bad input leaves no half-set of reports behind.
    reports = [evaluate(ref, target=target, baseline=base, tolerances=tolerances)
               for ref, base in zip(args.builds, _baselines_by_build(args))]
    renderers = {"json": reports_to_json, "junit": reports_to_junit, "markdown": reports_to_markdown}
    for kind, path in outputs:
        try:
            write_output(path, renderers[kind](reports))
        except OSError as exc:
            raise InputError(f"--{kind} {path}: cannot write: {exc.strerror or exc}") from None
    text = reports_to_console(reports)
    print(text.rstrip("\n").splitlines()[-1] if args.quiet else text, end="\n" if args.quiet else "")
    return 0 if all(r.passed for r in reports) else 1
