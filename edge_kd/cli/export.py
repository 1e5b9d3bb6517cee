"""``edge-kd export``: export a model to the target's runtime format, check parity, write build.json."""
from __future__ import annotations

import argparse
import json

from edge_kd.cli._checks import positive_float
from edge_kd.cli.common import add_target_argument, print_json, print_table
from edge_kd.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to .pte / .onnx+.ort / .tflite and check it in the runtime",
        description="Export MODEL (a module:factory reference) for a target profile. Every file is reloaded "
                    "in its runtime and compared with PyTorch; a mismatch or an unsupported operator "
                    "exits 2 and leaves no artifact. Writes the artifacts and build.json into --out.")
    parser.add_argument("model", metavar="MODEL", help="factory reference, e.g. my_pkg.models:build_model")
    add_target_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="build directory (new, empty or an edge_kd build)")
    parser.add_argument("--input", required=True, action="append", metavar="SPEC",
                        help="input spec NAME:SHAPE:DTYPE[:HIGH], e.g. image:1x3x224x224:float32 "
                             "(repeat or comma-separate for several inputs)")
    parser.add_argument("--weights", metavar="FILE", help="weights: .safetensors or a torch state dict (weights_only)")
    parser.add_argument("--kwargs", metavar="JSON", default=None, help="factory keyword arguments as a JSON object")
    parser.add_argument("--name", default="model", help="file stem of the artifacts (default: model)")
    parser.add_argument("--atol", type=positive_float, default=None, help="parity tolerance (max abs error); default 1e-3 relative")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check (not recommended)")
    parser.add_argument("--json", action="store_true", help="print the export result as JSON")
    parser.set_defaults(func=cmd_export)


def _parse_kwargs(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--kwargs: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise InputError("--kwargs: expected a JSON object like '{\"num_classes\": 10}'")
    return value


def export_file_names(name: str, formats) -> list[str]:
    """Files an export named ``name`` writes into the build folder."""
    names = [f"{name}.{fmt}" for fmt in formats]
    if "ort" in formats:
        names.append(f"{name}.required_operators.config")
    return names


def cmd_export(args: argparse.Namespace) -> int:
    from edge_kd.models.spec import ModelSpec
    from edge_kd.targets import load_target

    from edge_kd.pipeline.paths import check_output_dir, check_owned, remove_replaced, safe_name

    target = load_target(args.target)
    safe_name(args.name, what="--name")
    inputs = [s.strip() for item in args.input for s in item.split(",") if s.strip()]
    spec = ModelSpec.parse(args.model, inputs=inputs, weights=args.weights, kwargs=_parse_kwargs(args.kwargs))
    out = check_output_dir(args.out)
    own_inputs = [args.weights, target.source]
    check_owned(out, export_file_names(args.name, target.runtime.formats), inputs=own_inputs)

    import shutil

    from edge_kd.export import export_model
    from edge_kd.pipeline import Build
    from edge_kd.pipeline.lock import BuildLock
    from edge_kd.pipeline.manifest import MODEL_ROLES

    model = spec.build()  # bad factory / weights fail here, before anything is written
    example = spec.example_inputs()
    fresh = not out.exists()
    lock = BuildLock(out).acquire()
    try:
        build = Build.create(out, target=target.to_dict())
        with build.stage("export") as record:
            result = export_model(model, example, target, out, name=args.name, check_parity=not args.no_parity,
                                  atol=args.atol, input_names=[i.name for i in spec.inputs])
            # A new export replaces the previous one's bundle (another target or --name) instead of
            # adding to it: the bundle must count the shipped model once.
            dropped = build.drop_artifacts(roles=MODEL_ROLES)
            remove_replaced(out, dropped, keep=[a.path for a in result.artifacts])
            for artifact in result.artifacts:
                extra = {"tensors": result.tensors} if artifact.role == "model" else {}
                build.add_artifact(artifact.path, role=artifact.role, format=artifact.format, **extra)
            record["outputs"] = {"primary": result.primary.name, "files": [a.path.name for a in result.artifacts]}
            record["details"] = {"model": spec.to_dict(), "parity": result.parity, "ops": result.ops,
                                 "runtime": result.runtime, "runtime_version": result.runtime_version}
    except BaseException:
        lock.release()
        if fresh:  # a failed export into a new folder leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    lock.release()
    build.update_metrics(ops=result.ops)
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
