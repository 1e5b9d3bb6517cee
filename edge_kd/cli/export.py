"""``edge-kd export``: export a model to the target's runtime format, check parity, write build.json."""
from __future__ import annotations

import argparse

from edge_kd.cli._checks import positive_float
from edge_kd.cli.common import add_model_arguments, add_target_argument, model_spec, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to .pte / .onnx+.ort / .tflite and check it in the runtime",
        description="Export MODEL (a module:factory reference or a ModelSpec .json) for a target profile. Every "
                    "file is reloaded "
                    "in its runtime and compared with PyTorch; a mismatch or an unsupported operator "
                    "exits 2 and leaves no artifact. Writes the artifacts and build.json into --out.")
    add_model_arguments(parser)
    add_target_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="build directory (new, empty or an edge_kd build)")
    parser.add_argument("--name", default="model", help="file stem of the artifacts (default: model)")
    parser.add_argument("--atol", type=positive_float, default=None, help="parity tolerance (max abs error); default 1e-3 relative")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check (not recommended)")
    parser.add_argument("--json", action="store_true", help="print the export result as JSON")
    parser.set_defaults(func=cmd_export)


def export_file_names(name: str, formats) -> list[str]:
    """Files an export named ``name`` writes into the build folder."""
    names = [f"{name}.{fmt}" for fmt in formats]
    if "ort" in formats:
        names.append(f"{name}.required_operators.config")
    return names


def cmd_export(args: argparse.Namespace) -> int:
    from edge_kd.targets import load_target

    from edge_kd.pipeline.paths import check_output_dir, check_owned, safe_name

    target = load_target(args.target)
    safe_name(args.name, what="--name")
    spec = model_spec(args)
    out = check_output_dir(args.out)
    check_owned(out, export_file_names(args.name, target.runtime.formats), inputs=[args.weights, target.source,
                args.model if args.model.endswith(".json") else None])

    import shutil

    from edge_kd.pipeline import Build
    from edge_kd.pipeline.lock import BuildLock
    from edge_kd.stages.stages import export_entry

    model = spec.build()  # bad factory / weights fail here, before anything is written
    example = spec.example_inputs()
    fresh = not out.exists()
    lock = BuildLock(out).acquire()
    try:
        build = Build.create(out, target=target.to_dict())
        with build.stage("export") as record:
            result = export_entry(model, example, target, out, build, record, name=args.name,
                                  check_parity=not args.no_parity, atol=args.atol,
                                  input_names=[i.name for i in spec.inputs])
            record["details"]["model"] = spec.to_dict()
    except BaseException:
        lock.release()
        if fresh:  # a failed export into a new folder leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    lock.release()
    if args.json:
        print_json(result.to_dict())
        return 0
    from edge_kd.units import format_bytes

    rows = []
    for artifact in result.artifacts:
        size = artifact.path.stat().st_size
        rows.append((artifact.path.name, artifact.format, artifact.role, format_bytes(size)))
    print_table(rows, ["file", "format", "role", "size"])
    p = result.parity
    if p.get("checked"):
        agree = p.get("top1_agreement")
        print(f"parity: max abs error {p['max_abs_error']:.3g} (tolerance {p['tolerance']:.3g}) over {p['n']} inputs"
              + (f", top-1 agreement {agree:.1%}" if agree is not None else ""))
    ops = result.ops
    if ops.get("delegated") is not None:
        count = f"{ops['delegated']} ops delegated, {ops['not_delegated']} not delegated"
    else:
        count = f"{sum(ops['operators'].values())} ops"
    print(f"ops ({ops['policy']}): {count}"
          + (f"; VIOLATIONS: {', '.join(ops['violations'])}" if ops["violations"] else "; no violations"))
    top = ", ".join(f"{t['name'][:40]} {format_bytes(t['bytes'])}" for t in result.tensors[:3])
    if top:
        print(f"largest tensors: {top}")
    print(f"wrote {out / 'build.json'}")
    return 0
