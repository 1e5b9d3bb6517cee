"""Static int8 per target: edge_kd's int8 against each runtime's own default int8 path, side by side.

For every target (ExecuTorch/XNNPACK .pte, ONNX Runtime Mobile .ort, LiteRT .tflite) and every model,
in one run on the same fp32 weights and the same calibration samples:

* ``fp32``      the float artifact (edge_kd.export, same exporter as the int8 ones),
* ``default``   the runtime's documented int8 recipe: ORT ``quantize_static`` with its defaults;
                ExecuTorch XNNPACKQuantizer with ``get_symmetric_quantization_config()``; litert-torch
                PT2EQuantizer with its ``get_symmetric_quantization_config()``,
* ``edge_kd``   ``edge_kd.quantize.quantize_model`` (per-channel weights, range method picked through
                the runtime, accuracy-aware fallback),
* ``aeq``       (``--litert-aeq``) LiteRT fp32 conversion + AI Edge Quantizer static int8.

Accuracy is top-1 through the runtime on a capped, class-stratified slice of each test set (edge_kd
picks its range method and fallback on other test rows, disjoint from those); latency
is the median of interleaved rounds (one thread, same process) so all columns see the same machine
load. Models: EfficientNet-Lite0 (ImageNet trunk, linear head fitted on grocery-store) and
all-MiniLM-L6-v2 with a linear head fitted on banking77.

    .venv/bin/python benchmarks/int8.py                      # all models and targets
    .venv/bin/python benchmarks/int8.py --models image --targets ort-mobile --eval 100

Writes benchmarks/results/int8.json and int8.md. Exit 2 when data is missing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = ("android-arm64-xnnpack", "ort-mobile", "tflite-int8")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def need(path: Path, what: str) -> None:
    if not path.exists():
        print(f"int8 benchmark: missing {what}: {path} (give --data PATH, the folder holding "
              "grocery-store/ and banking77/)", file=sys.stderr)
        sys.exit(2)


def image_task(data: Path, n_eval: int, n_calib: int, seed: int) -> dict[str, Any]:
    from edge_kd.data import load_image_list
    from edge_kd.models.teachers import build_teacher, train_teacher

    root = data / "grocery-store"
    need(root / "train.txt", "grocery-store train list")
    train, val, test = (load_image_list(root, sp, label="fine", size=224, preprocessing="tf")
                        for sp in ("train", "val", "test"))
    # The same teacher recipe as benchmarks/teacher_accuracy.py: its cached features are reused.
    teacher = train_teacher(build_teacher("efficientnet-lite0", train), train, val)
    log(f"image head fitted: val_accuracy={teacher.metrics.get('val_accuracy')}")
    return _task("EfficientNet-Lite0 / grocery-store (81 classes, 224x224)", teacher, train, test, n_eval,
                 n_calib, seed)


def text_task(data: Path, n_eval: int, n_calib: int, seed: int, max_len: int) -> dict[str, Any]:
    from edge_kd.data import load_text_csv, split_off
    from edge_kd.models.teachers import build_teacher, train_teacher

    root = data / "banking77"
    need(root / "train.csv", "banking77 train.csv")
    full = load_text_csv(root / "train.csv", "text", "category")
    test = load_text_csv(root / "test.csv", "text", "category", labels=full.label_names)
    train, val = split_off(full, 0.1, seed=0)
    teacher = train_teacher(build_teacher("minilm-l6", train, max_len=max_len), train, val)
    log(f"text head fitted: val_accuracy={teacher.metrics.get('val_accuracy')}")
    return _task(f"all-MiniLM-L6-v2 / banking77 (77 intents, {max_len} tokens)", teacher, train, test,
                 n_eval, n_calib, seed)


def _task(title: str, teacher: Any, train: Any, test: Any, n_eval: int, n_calib: int, seed: int,
          n_select: int = 1000) -> dict[str, Any]:
    import numpy as np
    import torch

    from edge_kd.data import calibration_sample

    train, test = teacher.prepare(train), teacher.prepare(test)

    def rows(ds: Any, idx: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        arrays = ds.inputs(idx)
        return [tuple(a[i:i + 1] for a in arrays) for i in range(len(idx))]

    # A pool larger than the profile's sample count: quantize_model draws its own stratified subset.
    calib_idx = calibration_sample(train, n_calib, seed=seed)
    eval_idx = calibration_sample(test, n_eval, seed=seed)
    calib = rows(train, calib_idx)
    eval_inputs = rows(test, eval_idx)
    eval_labels = np.asarray(test.labels)[eval_idx]
    # edge_kd picks its range method and fallback on test rows disjoint from the reported ones; the
    # reported rows judge every finished artifact the same way. Not on the validation split: it chose
    # the head's epoch, so the fp32 accuracy there is optimistic and int8 reads worse than it is
    # (MiniLM on XNNPACK, 2026-12-04: fp32 0.920 on 998 validation rows, 0.924 on 1,000 test rows; all-int8
    # with moving-average / percentile ranges dropped 2.0 / 1.7 pt on the validation rows, 0.4 / -0.2 pt
    # on the test rows).
    rest = np.setdiff1d(np.arange(len(test)), eval_idx)
    held = test.subset(rest)
    select_idx = calibration_sample(held, min(n_select, len(rest)), seed=seed)
    select = (rows(held, select_idx), np.asarray(held.labels)[select_idx])
    example = tuple(torch.from_numpy(a) for a in calib[0])
    return {"title": title, "model": teacher.model.eval(), "example": example, "calib": calib,
            "calib_labels": np.asarray(train.labels)[calib_idx], "eval": (eval_inputs, eval_labels),
            "select": select}


def accuracy(runner: Any, eval_set: tuple[list, Any]) -> float:
    import numpy as np

    inputs, labels = eval_set
    pred = [int(np.argmax(np.asarray(runner.run(list(x))[0]).reshape(-1))) for x in inputs]
    return float((np.asarray(pred) == np.asarray(labels)).mean())


def interleaved_p50(runners: dict[str, Any], sample: tuple, rounds: int, per_round: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in runners.values():
        for _ in range(3):
            r.run(list(sample))
    for _ in range(rounds):
        for key, r in runners.items():
            for _ in range(per_round):
                t = time.perf_counter()
                r.run(list(sample))
                times[key].append((time.perf_counter() - t) * 1000.0)
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def run_target(task: dict[str, Any], target_name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edge_kd.quantize import _primary, backend_for, open_artifact, quantize_model
    from edge_kd.targets import load_target

    target = load_target(target_name)
    backend = backend_for(target)
    out = work / target.name
    t0 = time.perf_counter()
    result = quantize_model(task["model"], task["example"], target, task["calib"], out, method=args.method,
                            eval_samples=task["select"], calibration_labels=task["calib_labels"],
                            num_samples=args.samples, name="model", max_fallback_layers=args.max_fallback,
                            auto_methods=tuple(args.auto_methods.split(",")), ship="int8")
    edge_seconds = time.perf_counter() - t0
    log(f"  edge_kd done in {edge_seconds:.0f}s: method={result.report['method']} "
        f"acc={result.report['accuracy']['int8']:.4f} fp32={result.report['accuracy']['fp32']:.4f}")
    # The default path sees the same calibration samples quantize_model drew.
    from edge_kd.quantize.calibration import select_calibration

    n = args.samples or target.quantization.calibration_samples
    calib = select_calibration(task["calib"], task["calib_labels"], n, 0).calibration
    t0 = time.perf_counter()
    paths = {"fp32": result.fp32_primary}
    default_error = None
    try:
        default_files = backend.default_int8(task["model"], task["example"], calib,
                                             out / "default" / f"model.default.{backend.extension}")
        paths["default"] = _primary(default_files, target)
    except Exception as exc:  # the runtime's own recipe failing on a model is a result, not a crash
        default_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        log(f"  default path FAILED: {default_error}")
    default_seconds = time.perf_counter() - t0
    paths["edge_kd"] = result.primary
    if args.dynamic:
        # The runtime's other int8 scheme, as the quantize stage builds it for its shipping choice
        # (edge_kd.quantize.schemes): weights int8, activations quantized per call. No calibration.
        from edge_kd.quantize.schemes import alternative_schemes

        fp32_files = sorted(result.fp32_primary.parent.glob(f"{result.fp32_primary.stem}.*"),
                            key=lambda p: p != result.fp32_primary)
        for scheme in alternative_schemes(backend.runtime):
            try:
                files = scheme.build(task["model"], task["example"], calib, fp32_files,
                                     out / scheme.name / f"model.{scheme.name}.{backend.extension}",
                                     embeddings=target.quantization.embeddings)
            except Exception as exc:  # a scheme failing on a model is a result, not a crash
                log(f"  {scheme.name} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
                continue
            if files:
                paths[f"edge_kd {scheme.name}"] = _primary(files, target)
    if args.litert_aeq and backend.runtime == "litert":
        paths["aeq"] = backend.aeq_int8(result.fp32_primary, calib, out / "aeq" / "model.aeq.tflite")[0]
    torch.set_num_threads(1)
    runners = {k: open_artifact(p, backend.runtime) for k, p in paths.items()}
    row: dict[str, Any] = {"target": target.name, "runtime": backend.runtime, "edge_kd_method": result.report["method"],
                           "edge_kd_method_search": result.report["method_search"],
                           "fallback": {k: result.report["fallback"][k] for k in ("float_layers", "met_budget",
                                                                                  "missed_by_pt", "cost")},
                           "edge_kd_seconds": round(edge_seconds, 1), "default_seconds": round(default_seconds, 1),
                           "default_error": default_error, "columns": {}}
    accs = {key: accuracy(r, task["eval"]) for key, r in runners.items()}
    row["validation"] = {"rows": len(task["select"][1]), "fp32": result.report["accuracy"]["fp32"],
                         "edge_kd": result.report["accuracy"]["int8"]}
    lat = interleaved_p50(runners, task["eval"][0][0], args.rounds, args.per_round)
    fp32_bytes = paths["fp32"].stat().st_size
    for key, p in paths.items():
        row["columns"][key] = {"accuracy": round(accs[key], 4), "p50_ms": lat[key], "bytes": p.stat().st_size,
                               "size_ratio": round(p.stat().st_size / fp32_bytes, 4),
                               "drop_pt": round((accs["fp32"] - accs[key]) * 100, 2), "file": p.name}
    log(f"  {target_name}: " + ", ".join(f"{k} acc={v['accuracy']:.4f} p50={v['p50_ms']}ms size={v['size_ratio']}"
                                         for k, v in row["columns"].items()))
    return row


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Static int8: edge_kd vs each runtime's default int8 path", "",
             "Rows `edge_kd int8-dynamic` / `edge_kd int8-dynamic-range` (runs with --dynamic) are the runtime's "
             "dynamic scheme as the quantize stage builds it beside static int8 for its shipping choice "
             "(weights int8, activations quantized per call, embedding tables int8; no calibration).", "",
             f"Run {results['started']} on {results['machine']} (2 cores shared with other jobs); rows merged "
             "from later runs say when they ran (`run`).",
             "Accuracy is top-1 through the runtime; p50 is the median of interleaved single-thread runs "
             "(same process, same moment); size is the shipped file. Rows of one model may come from "
             "separate processes (--part, merged with --combine): within a row every column uses the same "
             "weights, calibration samples and test rows; the fitted head can differ slightly between rows.", ""]
    for model in results["models"]:
        lines += [f"## {model['title']}", "",
                  f"{model.get('eval_rows')} stratified test rows; {model.get('calibration_samples') or 'profile'} "
                  "calibration samples (stratified, seed 0)."
                  + f" edge_kd chose its range method and fallback on {model['select_rows']} other test rows, "
                  "disjoint from these (not the validation split, which chose the head's epoch: its fp32 "
                  "accuracy is optimistic there); these rows judge every column alike.",
                  "",
                  "| target | path | accuracy | drop (pt) | p50 ms | size | x fp32 | run |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for row in model["rows"]:
            if "error" in row:
                lines.append(f"| {row['target']} | error | {row['error']} | | | | | {row.get('run', '')} |")
                continue
            if row.get("default_error"):
                lines.append(f"| {row['target']} | default | failed: {row['default_error'][:90]} | | | | | "
                             f"{row.get('run', '')} |")
            for key, col in row["columns"].items():
                label = {"edge_kd": f"edge_kd ({row['edge_kd_method']})"}.get(key, key)
                lines.append(f"| {row['target']} | {label} | {col['accuracy']:.4f} | {col['drop_pt']:.2f} | "
                             f"{col['p50_ms']} | {col['bytes'] / 1e6:.2f} MB | {col['size_ratio']:.3f} | "
                             f"{row.get('run', '')} |")
        for row in model["rows"]:
            if "error" in row:
                continue
            fb = row["fallback"]
            if fb["float_layers"]:
                lines.append(f"\n{row['target']}: kept in float {fb['float_layers']} (cost {fb['cost']}), "
                             f"budget met: {fb['met_budget']}")
        lines.append("")
    return "\n".join(lines) + "\n"


def combine(out: Path, parts: list[str]) -> int:
    """One table from parts run side by side (each part is one model in its own process)."""
    from edge_kd.pipeline.atomic import atomic_write_json, atomic_write_text

    merged: dict[str, Any] | None = None
    for name in parts:
        data = json.loads((out / f"int8.{name}.json").read_text())
        for model in data["models"]:
            model.setdefault("eval_rows", data["args"].get("eval"))
            model.setdefault("calibration_samples", data["args"].get("samples"))
            for row in model["rows"]:
                row.setdefault("run", data["started"])
        if merged is None:
            merged = data
            continue
        for model in data["models"]:  # rows of one model run as separate parts share one table
            same = next((m for m in merged["models"] if m["kind"] == model["kind"]), None)
            if same is None:
                merged["models"].append(model)
            else:
                same["rows"].extend(model["rows"])
        merged.setdefault("parts", []).append({"part": name, "started": data["started"], "args": data["args"]})
    assert merged is not None
    atomic_write_json(out / "int8.json", merged)
    atomic_write_text(out / "int8.md", markdown(merged))
    log(f"wrote {out / 'int8.json'} and {out / 'int8.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--models", default="image,text", help="comma list of image,text")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--eval", type=int, default=300, help="test rows per model (stratified)")
    p.add_argument("--calib-pool", type=int, default=512, help="training rows offered for calibration")
    p.add_argument("--samples", type=int, default=None, help="calibration samples (default: the profile's)")
    p.add_argument("--method", default=None, help="edge_kd range method (default: the profile's, auto)")
    p.add_argument("--auto-methods", default="minmax,percentile,mse,entropy,moving_average",
                   help="candidates of method auto (each costs one export + evaluation)")
    p.add_argument("--max-len", type=int, default=64, help="text tokens (64: the teacher recipe)")
    p.add_argument("--max-fallback", type=int, default=4)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--litert-aeq", action="store_true", help="add the AI Edge Quantizer column on LiteRT")
    p.add_argument("--dynamic", action="store_true",
                   help="add each runtime's dynamic int8 scheme (what the quantize stage also builds and times)")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edge_kd_int8_bench")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--part", metavar="NAME", help="write int8.NAME.json only (run models in separate processes)")
    p.add_argument("--combine", nargs="+", metavar="NAME", help="merge int8.NAME.json parts into int8.json/md")
    args = p.parse_args(argv)
    if args.combine:
        return combine(args.out, args.combine)
    need(args.data, "data folder")
    import platform

    import torch

    torch.set_num_threads(1)
    from edge_kd.pipeline.atomic import atomic_write_json, atomic_write_text

    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or
                               platform.machine(), "eval_note": f"{args.eval} stratified test rows per model, "
                               f"calibration from a {args.calib_pool}-row stratified training pool",
                               "args": {k: str(v) for k, v in vars(args).items()}, "models": []}
    json_path, md_path = args.out / "int8.json", args.out / "int8.md"
    if args.part:
        json_path, md_path = args.out / f"int8.{args.part}.json", args.out / f"int8.{args.part}.md"
    for kind in [m.strip() for m in args.models.split(",") if m.strip()]:
        log(f"model {kind}: fitting head")
        task = image_task(args.data, args.eval, args.calib_pool, 0) if kind == "image" else \
            text_task(args.data, args.eval, args.calib_pool, 0, args.max_len)
        entry = {"kind": kind, "title": task["title"], "rows": [], "eval_rows": len(task["eval"][1]),
                 "select_rows": len(task["select"][1]),
                 "calibration_samples": args.samples}
        results["models"].append(entry)
        for target_name in [t.strip() for t in args.targets.split(",") if t.strip()]:
            log(f"model {kind} target {target_name}")
            try:
                entry["rows"].append(run_target(task, target_name, args.work / kind, args))
            except Exception as exc:  # one failing runtime must not lose the other columns
                log(f"  FAILED: {type(exc).__name__}: {exc}")
                entry["rows"].append({"target": target_name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            atomic_write_json(json_path, results)
            atomic_write_text(md_path, markdown(results))
    log(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
