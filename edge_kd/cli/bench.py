"""``edge-kd bench``: latency, load time, memory, size and (with --data) accuracy of artifacts in
their runtime, side by side, with ratios against the first artifact."""
from __future__ import annotations

import argparse

from edge_kd.cli.common import add_target_argument, load_samples, print_json, print_table
from edge_kd.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark artifacts in their runtime, emulating one phone core",
        description="Benchmark each ARTIFACT in a fresh process pinned to one core with the target's "
                    "threads and run counts; print one row per artifact with speed-up and size ratio "
                    "against the first. With --data, also measure accuracy through the runtime.")
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help=".pte, .onnx, .ort or .tflite files")
    add_target_argument(parser)
    parser.add_argument("--input", action="append", metavar="SPEC",
                        help="input spec NAME:SHAPE:DTYPE[:HIGH] for random inputs (default: the model's own "
                             "shapes, values in [0, 1) / {0, 1})")
    parser.add_argument("--data", metavar="SPEC", help="labelled data for accuracy: npz:PATH with arrays x0[, x1...] "
                                                       "(first axis = samples) and y, or a data spec (csv:..., "
                                                       "images:...) as in quantize --calib/--eval")
    parser.add_argument("--task", choices=("classification", "binary", "regression"), default="classification",
                        help="metric for --data: accuracy (classification), ROC AUC (binary) or WAPE and MAE "
                             "(regression: a one-output forecast, lower is better)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate at most N samples of --data")
    parser.add_argument("--any-runtime", action="store_true",
                        help="allow artifacts of other runtimes than the target's (same bench settings)")
    parser.add_argument("--emulate", nargs="?", const="", default=None, metavar="CORE",
                        help="also run each artifact in its aarch64 runtime on an emulated ARM core (qemu; build it "
                             "with `edge-kd arm-emu`): instructions per inference by class and an estimated latency; "
                             "CORE defaults to the profile's [bench] emulate, else cortex-a76")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT ('-' for stdout)")
    parser.set_defaults(func=cmd_bench)


def _random_inputs(specs: list[str]):
    import numpy as np

    from edge_kd.models.spec import InputSpec

    rng = np.random.default_rng(0)
    arrays = []
    for text in specs:
        spec = InputSpec.parse(text)
        if spec.dtype.startswith("float"):
            arrays.append((rng.random(spec.shape) * (spec.high - spec.low) + spec.low).astype(spec.dtype))
        elif spec.dtype == "bool":
            arrays.append(rng.integers(0, 2, spec.shape).astype(bool))
        else:
            arrays.append(rng.integers(int(spec.low), max(int(spec.high), int(spec.low) + 1), spec.shape).astype(spec.dtype))
    return tuple(arrays)


def load_npz_samples(spec: str, limit: int | None = None):
    """``npz:PATH`` -> list of ((x0[i:i+1], x1[i:i+1], ...), y[i]). Arrays x0.. share the first axis."""
    import zipfile
    from pathlib import Path

    import numpy as np

    kind, sep, path_text = spec.partition(":")
    if not sep or kind != "npz":
        raise InputError(f"--data {spec!r}: expected npz:PATH (arrays x0[, x1, ...] and y)")
    path = Path(path_text)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz without pickles: {exc}") from None
    xs = sorted((k for k in arrays if k.startswith("x") and k[1:].isdigit()), key=lambda k: int(k[1:]))
    if not xs or "y" not in arrays:
        raise InputError(f"{path}: needs arrays x0[, x1, ...] and y; found {', '.join(sorted(arrays)) or 'none'}")
    n = len(arrays["y"])
    for k in xs:
        if len(arrays[k]) != n:
            raise InputError(f"{path}: {k} has {len(arrays[k])} samples but y has {n}")
    from edge_kd.data.finite import check_finite

    for k in [*xs, "y"]:
        check_finite(arrays[k], source=str(path), what=f"array {k!r}")
    n = min(n, limit) if limit else n
    return [(tuple(arrays[k][i:i + 1] for k in xs), arrays["y"][i]) for i in range(n)]


def _labelled_samples(spec: str, limit: int | None):
    """(inputs, label) pairs from ``npz:PATH`` (x0.., y) or a data spec (its rows, at most ``limit``)."""
    if spec.startswith("npz:"):
        return load_npz_samples(spec, limit)
    try:
        inputs, labels = load_samples(spec, None, "--data", limit)
    except InputError as exc:
        raise InputError(f"--data {spec!r}: {exc} (--data takes npz:PATH with arrays x0[, x1, ...] and y, or a "
                         "data spec such as csv:FILE?label=COLUMN)") from None
    if labels is None:
        raise InputError(f"--data {spec!r}: accuracy needs labelled data")
    return list(zip(inputs, labels))


def cmd_bench(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from edge_kd.bench import benchmark_artifact, evaluate_artifact
    from edge_kd.runtimes import runtime_for, runtime_spec
    from edge_kd.targets import OpPolicy, RuntimeSettings, load_target
    from edge_kd.units import format_bytes

    from edge_kd.cli._checks import existing_inputs
    from edge_kd.pipeline.paths import check_output_file

    target = load_target(args.target)
    if args.emulate is not None:
        from edge_kd.emulate import RUNTIMES, environment
        from edge_kd.emulate.cost import core_model

        core = args.emulate or target.bench.emulate or "cortex-a76"
        try:
            core_model(core)
        except ValueError as exc:
            raise InputError(f"--emulate: {exc}") from None
        target = dataclasses.replace(target, bench=dataclasses.replace(target.bench, emulate=core))
        for path in args.artifacts:
            if runtime_for(path) not in RUNTIMES:
                raise InputError(f"{path}: --emulate runs {' and '.join(RUNTIMES)} artifacts; "
                                 f"{runtime_for(path)} is not supported under emulation yet")
        environment()  # fail now, with how to build it, not after the host benchmarks
    paths = [Path(p) for p in args.artifacts]
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    if args.json and args.json != "-":
        check_output_file(args.json, option="--json",
                          inputs=[*paths, target.source, *existing_inputs([args.data])])
    for path in paths:  # check every file before spending minutes on the first
        runtime = runtime_for(path, target.runtime.name)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if runtime != target.runtime.name and not args.any_runtime:
            raise InputError(f"{path}: a {path.suffix} file runs in {runtime}, but target {target.name!r} uses "
                             f"{target.runtime.name}; pass --any-runtime to compare across runtimes")
    inputs = None
    if args.input:
        inputs = _random_inputs([s.strip() for item in args.input for s in item.split(",") if s.strip()])
    samples = _labelled_samples(args.data, args.limit) if args.data else None
    results = []
    for path in paths:
        runtime = runtime_for(path, target.runtime.name)
        profile = target
        if runtime != target.runtime.name:
            spec = runtime_spec(runtime)
            profile = dataclasses.replace(
                target, runtime=RuntimeSettings(name=runtime, formats=spec.formats, threads=target.runtime.threads),
                ops=OpPolicy(spec.op_policy))
        metrics = benchmark_artifact(path, profile, inputs=inputs)
        if samples is not None:
            evaluation = evaluate_artifact(path, samples, task=args.task, threads=target.runtime.threads)
            metrics["task_metric"] = evaluation["task_metric"]
            metrics["accuracy"] = evaluation["accuracy"]
            if "roc_auc" in evaluation:
                metrics["roc_auc"] = evaluation["roc_auc"]
            metrics["eval_n"] = evaluation["n"]
        results.append(metrics)
    base = results[0]
    rows = []
    for m in results:
        lat = m["latency_ms"]
        speedup = base["latency_ms"]["p50"] / lat["p50"] if lat["p50"] > 0 else float("nan")
        size_ratio = m["artifact"]["bytes"] / base["artifact"]["bytes"]
        m["vs_first"] = {"speedup_p50": speedup, "size_ratio": size_ratio}
        row = [Path(m["artifact"]["path"]).name, m["runtime"], format_bytes(m["artifact"]["bytes"]),
               format_bytes(m["artifact"]["gzip_bytes"]), f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", lat["runs"],
               f"{m['load_ms']:.1f}", f"{m['peak_rss_mb']:.1f}", f"{speedup:.2f}x", f"{size_ratio:.2f}",
               len(m["ops"]["violations"])]
        if samples is not None:
            tm = m["task_metric"]
            row.append(f"{tm['name']}={tm['value']:.4f}" if tm["value"] is not None else f"{tm['name']}=n/a")
        rows.append(row)
    headers = ["artifact", "runtime", "size", "gzip", "p50 ms", "p90 ms", "runs", "load ms", "peak MB",
               "speed-up", "size ratio", "op violations"] + (["metric"] if samples is not None else [])
    if all("estimate_ms" in m.get("emulated", {}) for m in results):  # --emulate or the profile's [bench] emulate
        base_emu = results[0]["emulated"]
        for row, m in zip(rows, results):
            emu = m["emulated"]
            m["vs_first"]["arm_speedup"] = base_emu["estimate_ms"] / emu["estimate_ms"]
            row += [f"{emu['instructions'] / 1e6:.3f}", f"{emu['classes']['fp_fma'] / emu['instructions']:.0%}",
                    f"{emu['classes']['int8_dot'] / emu['instructions']:.0%}", f"{emu['estimate_ms']:.3f}",
                    f"{m['vs_first']['arm_speedup']:.2f}x"]
        core = results[0]["emulated"]["core"]
        headers += ["ARM Minsn", "fp fma", "int8 dot", f"{core} est ms", "ARM speed-up"]
    document = {"target": target.name, "results": results}  # one shape, to stdout or to a file
    if args.json == "-":
        print_json(document)
    else:
        print(f"target {target.name}: {target.runtime.threads} thread(s), pinned core "
              f"{results[0]['pinned_core']}, ratios vs {paths[0].name}")
        print_table(rows, headers)
        if args.json:
            from edge_kd.pipeline import atomic_write_json

            atomic_write_json(args.json, document)
            print(f"wrote {args.json}")
    return 0
