"""``edge-kd arm-emu``: build (idempotently) or check the ARM64 emulation environment that
``edge-kd bench --emulate`` and a profile's ``[bench] emulate`` use."""
from __future__ import annotations

import argparse

from edge_kd.cli.common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "arm-emu", help="build the ARM64 emulation environment (qemu-user, arm64 python, aarch64 runtimes)",
        description="Build, into $EDGE_KD_ARM_EMU (default ~/.cache/edge_kd/arm-emu), everything needed to run "
                    "artifacts in the aarch64 builds of their runtimes under qemu-user and count instructions: an "
                    "arm64 Debian userland, the host's runtime versions as aarch64 wheels from PyPI, and the "
                    "counting plugin. Idempotent: a second run only checks. Needs the host packages qemu-user, "
                    "mmdebstrap and gcc (`make arm-emu` installs them as root).")
    parser.add_argument("--check", action="store_true", help="only check that it is built (exit 2 if not)")
    parser.add_argument("--json", metavar="OUT", help="write what was built as JSON to OUT ('-' for stdout)")
    parser.set_defaults(func=cmd_arm_emu)


def cmd_arm_emu(args: argparse.Namespace) -> int:
    from edge_kd.emulate import CORES, environment, ensure_environment

    env = environment() if args.check else ensure_environment(log=print if args.json != "-" else (lambda *_: None))
    info = {"home": str(env.home), "plugin": str(env.plugin), "cores": sorted(CORES), **env.versions}
    if args.json == "-":
        print_json(info)
        return 0
    print(f"ARM64 emulation environment ready in {env.home}")
    print(f"  {env.qemu}; guest {env.versions['suite']} {env.python}, glibc {env.versions['glibc']}")
    print("  runtimes: " + ", ".join(f"{k} {v}" for k, v in env.versions["pins"].items()))
    print("  cores: " + ", ".join(sorted(CORES)))
    if args.json:
        from edge_kd.pipeline import atomic_write_json

        atomic_write_json(args.json, info)
        print(f"wrote {args.json}")
    return 0
