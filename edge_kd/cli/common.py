"""Helpers shared by subcommand modules (light imports only)."""
from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from edge_kd.errors import InputError

if TYPE_CHECKING:
    import argparse

    from edge_kd.models.spec import ModelSpec


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], file=None) -> None:
    """A plain aligned text table."""
    file = file or sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=file)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=file)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def add_target_argument(parser, *, required: bool = True, multiple: bool = False) -> None:
    kwargs: dict[str, Any] = {"required": required, "metavar": "NAME|PATH",
                              "help": "target profile: a shipped name (see `edge-kd targets list`) or a .toml path"}
    if multiple:
        kwargs.update(action="append", dest="targets")
    parser.add_argument("--target", **kwargs)


def join(items: Iterable[Any]) -> str:
    return ", ".join(str(i) for i in items)


# ---- one vocabulary for a model on the command line: MODEL --input --weights --kwargs ----------------
def add_model_arguments(parser: "argparse.ArgumentParser", *, input_required: bool = False) -> None:
    """``MODEL`` (a factory reference ``pkg.module:function`` or a ModelSpec .json) with ``--input``,
    ``--weights`` and ``--kwargs``: the same options in every command that takes a model."""
    parser.add_argument("model", metavar="MODEL", help="factory reference pkg.module:function (with --input) or a "
                                                       "ModelSpec .json")
    parser.add_argument("--input", action="append", required=input_required, metavar="SPEC",
                        help="input spec NAME:SHAPE:DTYPE[:HIGH], e.g. image:1x3x224x224:float32 (repeat or "
                             "comma-separate for several inputs; required unless MODEL is a .json spec)")
    parser.add_argument("--weights", metavar="FILE", help="weights: .safetensors or a torch state dict (weights_only)")
    parser.add_argument("--kwargs", metavar="JSON", default=None, help="factory keyword arguments as a JSON object")


def parse_kwargs(text: str | None) -> dict:
    """``--kwargs``: a JSON object (InputError otherwise)."""
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--kwargs: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise InputError("--kwargs: expected a JSON object like '{\"num_classes\": 10}'")
    return value


def model_spec(args: "argparse.Namespace") -> "ModelSpec":
    """The ModelSpec the model options describe. A .json spec is taken as saved; --input, --weights and
    --kwargs given with it override its inputs, weights and keyword arguments."""
    from edge_kd.models.spec import ModelSpec

    inputs = [s.strip() for item in (args.input or []) for s in item.split(",") if s.strip()]
    kwargs = parse_kwargs(getattr(args, "kwargs", None))
    if args.model.endswith(".json"):
        spec = ModelSpec.load(args.model)
        if inputs:
            spec = ModelSpec.parse(spec.factory, inputs=inputs, weights=spec.weights, kwargs=spec.kwargs)
        if args.weights or kwargs:
            spec = ModelSpec(spec.factory, spec.inputs, {**spec.kwargs, **kwargs}, args.weights or spec.weights)
        return spec
    if not inputs:
        raise InputError(f"{args.model}: --input is required when MODEL is a factory reference, e.g. "
                         "--input image:1x3x224x224:float32")
    return ModelSpec.parse(args.model, inputs=inputs, weights=args.weights, kwargs=kwargs)


# ---- one vocabulary for data: npz:PATH or a data spec ----------------------------------------------------
def _rows(ds: Any, model: Any, limit: int, seed: int) -> tuple[list[tuple], Any]:
    import numpy as np

    from edge_kd.data import calibration_sample
    from edge_kd.data.text import TextDataset

    if isinstance(ds, TextDataset):
        if model is None or not hasattr(model, "tokenize"):
            raise InputError(f"{ds.source}: text data needs a model with a tokenize() method, or give token ids "
                             "as npz:PATH")
        ds = ds.tokenized(model.tokenize)
    # Draw the rows first: decoding a whole image folder would hold every image in memory.
    idx = calibration_sample(ds, limit, seed=seed) if limit else np.arange(len(ds))
    arrays = ds.inputs(idx)
    for a in arrays:
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise InputError(f"{ds.source}: inputs are {a.dtype}, not numeric tensors the model takes")
    return [tuple(a[i:i + 1] for a in arrays) for i in range(len(idx))], np.asarray(ds.labels)[idx]


def load_samples(spec: str, model: Any, what: str, limit: int | None, seed: int = 0) -> tuple[list[tuple], Any]:
    """Samples (tuples of batch-1 arrays) and labels (or None) from ``npz:PATH`` or a data spec (csv:...,
    images:...): the data vocabulary of every command that reads samples. ``limit``: rows drawn
    (stratified, seeded) from a data spec; None for all. ``model``: tokenizes text data (or None)."""
    from edge_kd.quantize.calibration import load_npz_calibration

    if spec.startswith("npz:"):
        from edge_kd.data.finite import check_finite

        samples, labels = load_npz_calibration(spec[4:])
        # NaN/inf inputs would calibrate or score garbage (accuracy 1.0 on NaN): refuse them here.
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
