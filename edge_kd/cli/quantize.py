"""``edge-kd quantize MODEL --target NAME --calib SPEC --out DIR``: static int8 for one target.

Writes the int8 artifact, the fp32 reference built by the same exporter, and a quantization report
(method per layer, ranges, per-layer SQNR, fallback decisions, fp32-vs-int8 accuracy through the
runtime) into the build directory's manifest (stage ``quantize``). Heavy imports happen in ``run``.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from edge_kd.cli.common import add_target_argument, print_json
from edge_kd.errors import InputError

METHODS = ("auto", "minmax", "moving_average", "percentile", "entropy", "mse")


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
    p.add_argument("model", metavar="MODEL", help="factory reference pkg.module:function (with --input) or a "
                                                  "ModelSpec .json")
    add_target_argument(p)
    p.add_argument("--calib", required=True, metavar="SPEC", help="calibration data (npz:PATH or a data spec)")
    p.add_argument("--eval", metavar="SPEC", help="labelled evaluation data for the accuracy check "
                                                  "(default: agreement with fp32 on the calibration data)")
    p.add_argument("--eval-rows", type=int, default=1000, metavar="N",
                   help="cap on evaluation rows drawn (stratified) from --eval (default 1000)")
    p.add_argument("--method", choices=METHODS, help="range method (default: the profile's calibration_method)")
    p.add_argument("--samples", type=int, metavar="N", help="calibration samples (default: the profile's)")
    p.add_argument("--input", metavar="SPEC", help="input spec(s), comma-separated, e.g. image:1x3x224x224:float32")
    p.add_argument("--weights", metavar="FILE", help="weights (.safetensors, or a state dict loaded weights_only)")
    p.add_argument("--max-drop", metavar="DROP", help="override the profile's accuracy_drop (e.g. 0.5pt, 2%%)")
    p.add_argument("--seed", type=int, default=0, help="calibration sampling seed")
    p.add_argument("--name", default="model", help="file stem of the artifacts")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="build directory")
    p.add_argument("--json", action="store_true", help="print the report summary as JSON")
    p.set_defaults(func=run)


def _load_model(args: argparse.Namespace) -> tuple[Any, tuple]:
    from edge_kd.models.spec import ModelSpec

    if args.model.endswith(".json"):
        spec = ModelSpec.load(args.model)
        if args.weights:
            spec = ModelSpec(spec.factory, spec.inputs, spec.kwargs, args.weights)
        if args.input:
            spec = ModelSpec.parse(spec.factory, inputs=args.input, weights=spec.weights, kwargs=spec.kwargs)
    else:
        if not args.input:
            raise InputError(f"{args.model}: a factory reference needs --input (e.g. image:1x3x224x224:float32)")
        spec = ModelSpec.parse(args.model, inputs=args.input, weights=args.weights)
    return spec.build(), spec.example_inputs()


def _rows(ds: Any, model: Any, limit: int, seed: int) -> tuple[list[tuple], Any]:
    import numpy as np

    from edge_kd.data import calibration_sample
    from edge_kd.data.text import TextDataset

    if isinstance(ds, TextDataset):
        if not hasattr(model, "tokenize"):
            raise InputError(f"{ds.source}: text data needs a model with a tokenize() method, or give token ids "
                             "as npz:PATH")
        ds = ds.tokenized(model.tokenize)
    # Draw the rows first: decoding a whole image folder would hold every image in memory.
    idx = calibration_sample(ds, limit, seed=seed)
    arrays = ds.inputs(idx)
    for a in arrays:
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise InputError(f"{ds.source}: inputs are {a.dtype}, not numeric tensors the model takes")
    return [tuple(a[i:i + 1] for a in arrays) for i in range(len(idx))], np.asarray(ds.labels)[idx]


def load_data(spec: str, model: Any, what: str, limit: int, seed: int = 0) -> tuple[list[tuple], Any]:
    """Samples (tuples of batch-1 arrays) and labels (or None) from ``npz:PATH`` or a data spec."""
    from edge_kd.quantize.calibration import load_npz_calibration

    if spec.startswith("npz:"):
        from edge_kd.data.finite import check_finite

        samples, labels = load_npz_calibration(spec[4:])
        for i, sample in enumerate(samples):
            for k, a in enumerate(sample):
                check_finite(a, source=spec[4:], what=f"{what} sample {i} input x{k}")
        if labels is not None:
            check_finite(labels, source=spec[4:], what=f"{what} labels")
        return samples, labels
    try:
        from edge_kd.data import parse_data_spec
    except ImportError:  # pragma: no cover - the data package ships with edge_kd
        raise InputError(f"{what} {spec!r}: only npz:PATH is supported here") from None
    return _rows(parse_data_spec(spec), model, limit, seed)


def run(args: argparse.Namespace) -> int:
    from edge_kd.cli._checks import check_drop, existing_inputs
    from edge_kd.pipeline.lock import BuildLock
    from edge_kd.pipeline.manifest import MODEL_ROLES
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
        calib, calib_labels = load_data(args.calib, model, "--calib", args.samples or
                                        profile.quantization.calibration_samples, args.seed)
        eval_samples = None
        if args.eval:
            inputs, labels = load_data(args.eval, model, "--eval", args.eval_rows)
            if labels is None:
                raise InputError(f"--eval {args.eval!r}: evaluation data needs labels (y)")
            eval_samples = (inputs, labels)
        return _quantize(args, profile, model, example, calib, calib_labels, eval_samples, MODEL_ROLES)


def quantize_file_names(name: str, formats) -> list[str]:
    """Files a quantization named ``name`` writes into the build folder."""
    names = [f"{name}.quantize.json"]
    for tag in ("int8", "fp32"):
        names += [f"{name}.{tag}.{fmt}" for fmt in formats]
        if "ort" in formats:
            names.append(f"{name}.{tag}.required_operators.config")
    return names


def _quantize(args, profile, model, example, calib, calib_labels, eval_samples, model_roles) -> int:
    from edge_kd.pipeline import Build
    from edge_kd.quantize import quantize_model

    build = Build.create(args.out, target=profile.to_dict())
    with build.stage("quantize") as record:
        # Converters print progress on stdout; keep stdout for our summary (--json must parse).
        with contextlib.redirect_stdout(sys.stderr):
            result = quantize_model(model, example, profile, calib, args.out, method=args.method,
                                    eval_samples=eval_samples, calibration_labels=calib_labels,
                                    num_samples=args.samples, seed=args.seed, max_accuracy_drop=args.max_drop,
                                    name=args.name)
        report = result.report
        from edge_kd.pipeline.paths import remove_replaced

        remove_replaced(args.out, build.drop_artifacts(roles=model_roles),
                        keep=[result.primary, *result.artifacts, *result.fp32_artifacts])
        build.add_artifact(result.primary, role="model", format=profile.primary_format, precision="int8")
        for path in result.artifacts:
            if path == result.primary:
                continue
            if path.suffix == ".json":
                build.add_artifact(path, role="quantization-report", format="json")
            elif path.suffix == ".config":
                build.add_artifact(path, role="required-operators", format="config")
            else:
                build.add_artifact(path, role="model-source", format=path.suffix.lstrip("."), precision="int8")
        for path in result.fp32_artifacts:
            if path.suffix != ".config":
                build.add_artifact(path, role="fp32-reference", format=path.suffix.lstrip("."), precision="fp32")
        record["outputs"] = {"model": result.primary.name, "report": f"{args.name}.quantize.json"}
        record["details"] = report
    acc = report["accuracy"]
    summary = {"model": str(result.primary), "method": report["method"], "metric": acc["metric"],
               "fp32": acc["fp32"], "int8": acc["int8"], "drop_pt": acc["drop_pt"],
               "within_budget": acc["within_budget"], "float_layers": report["fallback"]["float_layers"],
               "size_ratio": report["size"]["ratio"]}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {result.primary} ({report['size']['int8_bytes']} bytes, {report['size']['ratio']:.3f}x fp32)")
        print(f"method {report['method']}; {acc['metric']} fp32 {acc['fp32']:.4f} -> int8 {acc['int8']:.4f} "
              f"(drop {acc['drop_pt']:.2f} pt, allowed {acc['allowed_drop']})")
        if report["fallback"]["float_layers"]:
            print(f"kept in float: {', '.join(report['fallback']['float_layers'])} "
                  f"(cost {report['fallback']['cost']['bytes']} bytes)")
    if not acc["within_budget"]:
        print(f"edge-kd: int8 misses the accuracy budget by {report['fallback']['missed_by_pt']} pt; "
              "the best candidate and its report were written", file=sys.stderr)
        return 1
    return 0
