"""``edge-kd quantize MODEL --target NAME --calib SPEC --out DIR``: static int8 for one target.

Writes the int8 artifact, the fp32 reference built by the same exporter, the runtime's other int8
schemes, and a quantization report (method per layer, ranges, per-layer SQNR, fallback decisions,
fp32-vs-int8 accuracy through the runtime, every candidate and which one ships per ``--ship``) into
the build directory's manifest (stage ``quantize``). Heavy imports happen in ``run``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge_kd.cli.common import add_model_arguments, add_target_argument, load_samples, model_spec, print_json
from edge_kd.errors import InputError
from edge_kd.quantize.selection import SHIP_POLICIES

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quantize", help="static int8 for a target, checked for accuracy in its runtime",
        description="Calibrate and quantize a model to int8 for a target runtime (ExecuTorch/XNNPACK, ONNX "
                    "Runtime Mobile, LiteRT), measure fp32-vs-int8 accuracy through the runtime and keep the "
                    "most sensitive layers in float when the profile's accuracy_drop budget is exceeded.",
        epilog="MODEL is a factory reference (pkg.module:function, needs --input) or a ModelSpec .json. "
               "--calib takes npz:PATH (arrays x0, x1, ... with samples on the first axis, optional y "
               "labels) or a data spec (csv:..., images:...). Example: edge-kd quantize "
               "edge_kd.testing.tiny_models:tiny_cnn --input image:1x3x32x32:float32 --target ort-mobile "
               "--calib npz:calib.npz --out build/q")
    add_model_arguments(p)
    add_target_argument(p)
    p.add_argument("--calib", required=True, metavar="SPEC", help="calibration data (npz:PATH or a data spec)")
    p.add_argument("--eval", metavar="SPEC", help="labelled evaluation data for the accuracy check "
                                                  "(default: agreement with fp32 on the calibration data)")
    p.add_argument("--eval-rows", type=int, default=1000, metavar="N",
                   help="cap on evaluation rows drawn (stratified) from --eval (default 1000)")
    from edge_kd.targets import calibration_methods

    p.add_argument("--method", choices=calibration_methods(), help="range method (default: the profile's calibration_method)")
    p.add_argument("--samples", type=int, metavar="N", help="calibration samples (default: the profile's)")
    p.add_argument("--max-drop", metavar="DROP", help="override the profile's accuracy_drop (e.g. 0.5pt, 2%%)")
    p.add_argument("--ship", choices=SHIP_POLICIES,
                   help="which artifact becomes the model: the fastest that meets the budgets (measured side by "
                        "side in the runtime), the smallest that meets them, or always int8 / fp32 (default: the "
                        "profile's quantization.ship)")
    p.add_argument("--seed", type=int, default=0, help="calibration sampling seed")
    p.add_argument("--name", default="model", help="file stem of the artifacts")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="build directory")
    p.add_argument("--json", action="store_true", help="print the report summary as JSON")
    p.set_defaults(func=run)


def _load_model(args: argparse.Namespace) -> tuple[Any, tuple]:
    spec = model_spec(args)
    return spec.build(), spec.example_inputs()


def run(args: argparse.Namespace) -> int:
    from edge_kd.cli._checks import check_drop, existing_inputs
    from edge_kd.pipeline.lock import BuildLock
    from edge_kd.pipeline.paths import check_output_dir, check_owned, safe_name
    from edge_kd.targets import load_target

    if args.samples is not None and args.samples < 1:
        raise InputError(f"--samples must be >= 1, got {args.samples}")
    if args.eval_rows < 1:
        raise InputError(f"--eval-rows must be >= 1, got {args.eval_rows}")
    check_drop(args.max_drop, "--max-drop")
    safe_name(args.name, what="--name")
    profile = load_target(args.target)
    check_output_dir(args.out)
    own_inputs = existing_inputs([args.weights, profile.source, args.calib, args.eval,
                                  args.model if args.model.endswith(".json") else None])
    check_owned(args.out, quantize_file_names(args.name, profile.runtime.formats), inputs=own_inputs)
    with BuildLock(args.out):  # before loading data: a second run into this folder refuses at once
        model, example = _load_model(args)
        calib, calib_labels = load_samples(args.calib, model, "--calib", args.samples or
                                           profile.quantization.calibration_samples, args.seed)
        eval_samples = None
        if args.eval:
            inputs, labels = load_samples(args.eval, model, "--eval", args.eval_rows)
            if labels is None:
                raise InputError(f"--eval {args.eval!r}: evaluation data needs labels (y)")
            eval_samples = (inputs, labels)
        return _quantize(args, profile, model, example, calib, calib_labels, eval_samples)


def quantize_file_names(name: str, formats) -> list[str]:
    """Files a quantization named ``name`` may write into the build folder (every candidate scheme)."""
    from edge_kd.quantize.schemes import candidate_tags

    names = [f"{name}.quantize.json"]
    for tag in candidate_tags():
        names += [f"{name}.{tag}.{fmt}" for fmt in formats]
        if "ort" in formats:
            names.append(f"{name}.{tag}.required_operators.config")
    return names


def _quantize(args, profile, model, example, calib, calib_labels, eval_samples) -> int:
    from edge_kd.pipeline import Build
    from edge_kd.stages.stages import quantize_entry

    build = Build.create(args.out, target=profile.to_dict())
    with build.stage("quantize") as record:
        result = quantize_entry(model, example, profile, calib, args.out, build, record, method=args.method,
                                eval_samples=eval_samples, calibration_labels=calib_labels,
                                num_samples=args.samples, seed=args.seed, max_accuracy_drop=args.max_drop,
                                name=args.name, ship=args.ship)
    report = result.report
    acc = report["accuracy"]
    selection = report["selection"]
    summary = {"model": str(result.primary), "shipped": result.shipped, "ship_reason": selection["reason"],
               "candidates": [{k: c[k] for k in ("name", "bytes", "metric", "p50_ms", "within_budget", "reason")}
                              for c in selection["candidates"]],
               "method": report["method"], "metric": acc["metric"],
               "fp32": acc["fp32"], "int8": acc["int8"], "drop_pt": acc["drop_pt"],
               "within_budget": acc["within_budget"], "float_layers": report["fallback"]["float_layers"],
               "size_ratio": report["size"]["ratio"]}
    if args.json:
        print_json(summary)
    else:
        int8 = result.candidates.get("int8", [result.primary])[0]
        print(f"int8: {int8.name} ({report['size']['int8_bytes']} bytes, {report['size']['ratio']:.3f}x fp32)")
        print(f"method {report['method']}; {acc['metric']} fp32 {acc['fp32']:.4f} -> int8 {acc['int8']:.4f} "
              f"(drop {acc['drop_pt']:.2f} pt, allowed {acc['allowed_drop']})")
        if report["fallback"]["float_layers"]:
            print(f"kept in float: {', '.join(report['fallback']['float_layers'])} "
                  f"(cost {report['fallback']['cost']['bytes']} bytes)")
        for c in selection["candidates"]:
            p50 = "n/a" if c["p50_ms"] is None else f"{c['p50_ms']:.4g} ms"
            print(f"  {'*' if c['shipped'] else ' '} {c['name']:<20} {c['bytes']:>10} B  p50 {p50:<12} {c['reason']}")
        print(f"ships {result.shipped}: {result.primary}")
    shipped = next(c for c in selection["candidates"] if c["shipped"])
    missed = [f for f in shipped["failed_budgets"] if f.startswith("accuracy")]
    if missed:
        what = (f"int8 misses the accuracy budget by {report['fallback']['missed_by_pt']} pt"
                if result.shipped == "int8" else f"{result.shipped} misses the accuracy budget ({missed[0]})")
        print(f"edge-kd: {what}; the best candidate and its report were written", file=sys.stderr)
        return 1
    return 0
