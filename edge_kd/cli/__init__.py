"""The ``edge-kd`` command line: a thin layer that parses, builds a config and calls the library.

Each subcommand is one module in this package that defines ``register(subparsers)``; modules are
found automatically (add a file, get a subcommand). Subcommand modules import heavy backends (torch,
runtimes) only inside their run functions, so ``edge-kd --help`` and ``edge-kd targets`` stay fast.

Exit codes: 0 success, 1 a budget or gate check failed, 2 bad input or usage, 3 an internal error
(a bug: please report it with the ``--debug`` traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from typing import Sequence

from edge_kd.errors import EdgeKDError

EXIT_OK, EXIT_BUDGET, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message to one line (the usage is one
    ``--help`` away, and a CI log should show the one line that matters)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from edge_kd import __version__

    parser = _Parser(
        prog="edge-kd",
        description="Distill, prune, quantize, export, benchmark and gate small models for mobile "
                    "and edge runtimes (ExecuTorch/XNNPACK, ONNX Runtime Mobile, LiteRT).",
        epilog="Exit codes: 0 success, 1 a budget/gate check failed, 2 bad input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"edge-kd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    _add_console_arguments(parser, argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    for name in CAPTURED_COMMANDS:
        if name in subparsers.choices:
            _add_console_arguments(subparsers.choices[name], argparse.SUPPRESS)
    return parser


#: Commands that run torch and the runtimes: their third-party output goes to a log (edge_kd.console).
CAPTURED_COMMANDS = ("build", "export", "quantize", "prune", "distill", "bench")


def _add_console_arguments(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", dest="console_quiet", action="store_true", default=default,
                       help="print only results and errors")
    group.add_argument("-v", "--verbose", dest="console_verbose", action="store_true", default=default,
                       help="also show the toolchain's own logs and warnings (normally kept in OUT/.../logs/)")


def _run_command(args: argparse.Namespace):
    """Run the subcommand; heavy ones with third-party output kept in OUT/logs/edge-kd.log."""
    from edge_kd import console

    if getattr(args, "console_verbose", False):
        console.set_level("verbose")
    elif getattr(args, "console_quiet", False):
        console.set_level("quiet")
    if args.command not in CAPTURED_COMMANDS:
        return args.func(args)
    with console.capture() as cap:
        try:
            return args.func(args)
        finally:
            out = getattr(args, "out", None)
            if cap is not None and out:
                from pathlib import Path

                folder = Path(out)
                try:  # only into a build folder edge-kd made (a bad --out was refused, not created)
                    ours = (folder / "build.json").is_file() or (folder / ".edge-kd-build.json").is_file()
                except OSError:
                    ours = False
                if ours:
                    cap.keep_in(folder / "logs" / "edge-kd.log")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        result = _run_command(args)
        return EXIT_OK if result is None else int(result)
    except EdgeKDError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"edge-kd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edge-kd: interrupted; completed stages are kept and a re-run resumes from them", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not the user's fault: one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"edge-kd: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
