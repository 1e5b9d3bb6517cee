"""Structured pruning: fewer MACs on paper vs. measured speed-up in each runtime, and accuracy.

Sections (run all, or pick with --sections; results accumulate in benchmarks/results/prune.json):

  reference   EfficientNet-Lite0 with RANDOM weights, fp32, one thread, no recovery: magnitude (L2)
              pruning of 30% / 45% of the channels, and 30% at round_to 1 / 8 / 16, measured in
              ONNX Runtime, ExecuTorch/XNNPACK and LiteRT (the issue's reference setting).
  efficientnet_lite0 / resnet18
              trained models on grocery-store (81 classes): pruned to 2x and 3x fewer MACs in
              --steps steps with a KD recovery fine-tune after each, accuracy before/after (PyTorch,
              on --eval-images test images), fp32 p50 per runtime, and int8 when edge_kd.quantize
              provides quantize_model.

    .venv/bin/python benchmarks/prune.py --sections reference efficientnet_lite0 resnet18

Reads ``<repo>/../shared/data/grocery-store`` by default (``--data`` to change); exits 2 naming what is
missing. Every latency is measured by edge_kd.bench.benchmark_artifact on an exported artifact.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = ("ort-mobile", "android-arm64-xnnpack", "tflite-int8")
RUNTIME_LABEL = {"ort-mobile": "ORT", "android-arm64-xnnpack": "ExecuTorch/XNNPACK", "tflite-int8": "LiteRT"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- results file ---------------------------------------------------------------------------------
class Results:
    def __init__(self, out_dir: Path):
        self.json_path = out_dir / "prune.json"
        self.md_path = out_dir / "prune.md"
        self.data: dict[str, Any] = {}
        if self.json_path.is_file():
            self.data = json.loads(self.json_path.read_text())

    def put(self, section: str, value: Any) -> None:
        """Merge one section into the results file (re-read first: sections may run as parallel processes)."""
        from edge_kd.pipeline.atomic import atomic_write_json, atomic_write_text

        if self.json_path.is_file():
            self.data = json.loads(self.json_path.read_text())
        self.data[section] = value
        self.data["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                                "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_json(self.json_path, self.data)
        atomic_write_text(self.md_path, render_markdown(self.data))


# ---- measuring ----------------------------------------------------------------------------------------
def measure_runtimes(model: Any, example: tuple, work: Path, *, int8_calibration: list | None = None) -> dict:
    """fp32 (and int8 when calibration is given and quantize_model exists) p50 per target runtime."""
    from edge_kd.bench import benchmark_artifact
    from edge_kd.export import export_model
    from edge_kd.targets import load_target

    out: dict[str, Any] = {}
    for name in TARGETS:
        target = load_target(name)
        row: dict[str, Any] = {}
        try:
            t0 = time.perf_counter()
            res = export_model(copy.deepcopy(model).eval(), example, target, work / name / "fp32")
            bench = benchmark_artifact(res.primary, target)
            ops = bench.get("ops") or {}
            row["ops"] = {k: ops[k] for k in ("delegated", "not_delegated", "violations") if k in ops}
            row["fp32"] = {"p50_ms": bench["latency_ms"]["p50"], "p90_ms": bench["latency_ms"]["p90"],
                           "min_ms": bench["latency_ms"]["min"], "runs": bench["latency_ms"]["runs"],
                           "bytes": res.primary.stat().st_size, "export_s": round(time.perf_counter() - t0, 1)}
        except Exception as exc:  # noqa: BLE001 - a failed runtime is a result, recorded with its reason
            row["fp32"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if int8_calibration is not None:
            row["int8"] = measure_int8(model, example, target, int8_calibration, work / name / "int8")
        out[name] = row
        log(f"    {name}: {row}")
    return out


def measure_int8(model: Any, example: tuple, target: Any, calibration: list, work: Path) -> dict:
    try:
        from edge_kd.quantize import quantize_model
    except ImportError as exc:
        return {"error": f"edge_kd.quantize.quantize_model not available ({exc})"}
    from edge_kd.bench import benchmark_artifact

    try:
        # One fixed range method and no float fallback: the same int8 recipe for every pruned variant.
        res = quantize_model(copy.deepcopy(model).eval(), example, target, calibration, work,
                             method="minmax", max_fallback_layers=0, num_samples=len(calibration))
        bench = benchmark_artifact(res.primary, target)
        return {"p50_ms": bench["latency_ms"]["p50"], "p90_ms": bench["latency_ms"]["p90"],
                "min_ms": bench["latency_ms"]["min"], "runs": bench["latency_ms"]["runs"],
                "bytes": res.primary.stat().st_size}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def accuracy(model: Any, ds: Any, batch: int = 50) -> float:
    import numpy as np
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(ds), batch):
            idx = np.arange(start, min(start + batch, len(ds)))
            x = torch.from_numpy(ds.inputs(idx)[0])
            correct += int((model(x).argmax(-1).numpy() == ds.labels[idx]).sum())
    return correct / len(ds)


def batches_fn(ds: Any, batch: int, seed: int):
    import numpy as np
    import torch

    epoch = [0]

    def make():
        rng = np.random.default_rng(seed + epoch[0])
        epoch[0] += 1
        order = rng.permutation(len(ds))
        for start in range(0, len(order) - batch + 1, batch):
            idx = np.sort(order[start:start + batch])
            x = torch.from_numpy(ds.inputs(idx)[0])
            if rng.random() < 0.5:
                x = torch.flip(x, dims=[3])  # horizontal flip: the only augmentation, cheap
            yield (x,), torch.from_numpy(ds.labels[idx])

    return make


def subset(ds: Any, n: int, seed: int = 0) -> Any:
    import numpy as np

    if n >= len(ds):
        return ds
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
    return ds._take(idx)


# ---- sections ---------------------------------------------------------------------------------------
def section_reference(args: argparse.Namespace, results: Results) -> None:
    """Random-weight EfficientNet-Lite0, magnitude pruning by channel ratio, no recovery."""
    import torch

    from edge_kd.models.efficientnet_lite import efficientnet_lite0
    from edge_kd.prune.macs import count_macs, count_params
    from edge_kd.prune.pruner import PruneConfig, prune_channels, resolve_protected

    torch.manual_seed(0)
    base = efficientnet_lite0(num_classes=1000, pretrained=False).eval()
    example = (torch.rand(1, 3, 224, 224) * 2 - 1,)
    variants = [("unpruned", 0.0, 8), ("30% round_to 1", 0.30, 1), ("30% round_to 8", 0.30, 8),
                ("30% round_to 16", 0.30, 16), ("45% round_to 8", 0.45, 8)]
    if args.quick:
        variants = variants[:1] + variants[2:3]
    rows = []
    work = Path(args.work) / "reference"
    for label, ratio, round_to in variants:
        model = copy.deepcopy(base)
        cfg = PruneConfig(goal="macs", amount=0.5, criterion="l2", round_to=round_to)
        if ratio > 0:
            protected = resolve_protected(model, example, cfg)
            prune_channels(model, example, cfg, ratio, protected=protected)
        macs = count_macs(model, example).total
        log(f"reference {label}: {macs / 1e6:.1f} MMACs, {count_params(model) / 1e6:.2f} M params")
        widths = sorted({m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)})
        rows.append({"variant": label, "channel_ratio": ratio, "round_to": round_to, "macs": macs,
                     "params": count_params(model), "conv_widths": widths,
                     "runtimes": measure_runtimes(model, example, work / label.replace(" ", "_").replace("%", ""))})
        results.put("reference", {"model": "EfficientNet-Lite0 (random weights, 224x224, fp32, 1 thread)",
                                  "criterion": "l2 group magnitude", "rows": rows})


def load_grocery(args: argparse.Namespace, size: int, preprocessing: str):
    from edge_kd.data.images import load_image_list

    root = Path(args.data) / "grocery-store"
    cache = Path(args.work) / "pixels"
    train = load_image_list(root, "train", size=size, preprocessing=preprocessing, cache_dir=cache)
    val = load_image_list(root, "val", size=size, preprocessing=preprocessing, cache_dir=cache)
    test = load_image_list(root, "test", size=size, preprocessing=preprocessing, cache_dir=cache)
    return train, val, subset(test, args.eval_images)


def teacher_efficientnet(args: argparse.Namespace):
    import torch

    from edge_kd.models.efficientnet_lite import efficientnet_lite0
    from edge_kd.models.finetune import finetune_head
    from edge_kd.models.spec import load_state_dict, save_state_dict

    train, val, test = load_grocery(args, 224, "tf")
    weights = Path(args.work) / "efficientnet_lite0_grocery.safetensors"
    model = efficientnet_lite0(num_classes=81, pretrained=True)
    info: dict[str, Any] = {"image_size": 224, "preprocessing": "tf (x-127)/128"}
    if weights.is_file():
        model.load_state_dict(load_state_dict(weights))
        info["teacher"] = f"reused {weights.name}"
    else:
        torch.manual_seed(0)
        # default feature cache (~/.cache/edge_kd): shared with the teacher benchmark, same trunk + data
        model, metrics = finetune_head(model, train, val=val)
        save_state_dict(model, weights)
        info["teacher"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    return model.eval(), train, test, info


def teacher_resnet(args: argparse.Namespace):
    import torch

    from edge_kd.models.resnet import resnet18
    from edge_kd.models.spec import load_state_dict, save_state_dict
    from edge_kd.prune.schedule import RecoveryConfig, recover

    size = args.resnet_size
    train, val, test = load_grocery(args, size, "imagenet")
    weights = Path(args.work) / f"resnet18_grocery_{size}.safetensors"
    torch.manual_seed(0)
    model = resnet18(num_classes=81)
    info: dict[str, Any] = {"image_size": size, "preprocessing": "imagenet mean/std",
                            "training": f"from random init (no pretrained ResNet-18 weights ship), "
                                        f"{args.resnet_epochs} epochs AdamW on grocery train, labels only"}
    if weights.is_file():
        model.load_state_dict(load_state_dict(weights))
    else:
        t0 = time.perf_counter()
        recover(model, None, batches_fn(train, 32, seed=100), RecoveryConfig(epochs=args.resnet_epochs, lr=2e-3))
        info["train_seconds"] = round(time.perf_counter() - t0, 1)
        save_state_dict(model, weights)
    return model.eval(), train, test, info


def section_trained(name: str, args: argparse.Namespace, results: Results) -> None:
    import torch

    from edge_kd.prune.macs import count_macs, count_params
    from edge_kd.prune.pruner import PruneConfig
    from edge_kd.prune.schedule import RecoveryConfig, run_schedule

    model, train, test, info = teacher_efficientnet(args) if name == "efficientnet_lite0" else teacher_resnet(args)
    size = info["image_size"]
    example = (torch.from_numpy(test.inputs([0])[0]),)
    calib = [(torch.from_numpy(train.inputs([i])[0]),) for i in range(0, len(train), max(1, len(train) // 64))][:64]
    work = Path(args.work) / name
    section: dict[str, Any] = {"info": info, "eval_images": len(test), "steps": args.steps,
                               "recovery": {"max_batches_per_step": args.recovery_batches, "batch": 32,
                                            "loss": "hinton T=4 alpha=0.7, teacher = unpruned model"},
                               "rows": []}
    base_acc = accuracy(model, test)
    log(f"{name}: unpruned accuracy {base_acc:.4f} on {len(test)} test images")
    want_int8 = not args.no_int8
    row0 = {"variant": "unpruned", "macs": count_macs(model, example).total, "params": count_params(model),
            "accuracy": base_acc, "runtimes": measure_runtimes(model, example, work / "unpruned",
                                                               int8_calibration=calib if want_int8 else None)}
    section["rows"].append(row0)
    results.put(name, section)
    for amount, label in ((0.5, "2x fewer MACs"), (2 / 3, "3x fewer MACs")):
        t0 = time.perf_counter()
        cfg = PruneConfig(goal="macs", amount=amount, criterion=args.criterion, round_to=8, steps=args.steps)
        res = run_schedule(model, example, cfg, teacher=model, train_batches=batches_fn(train, 32, seed=1),
                           recovery=RecoveryConfig(epochs=1, max_batches=args.recovery_batches),
                           evaluate=lambda m: accuracy(m, test))
        pruned = res.model
        log(f"{name} {label}: steps {[s.to_dict() for s in res.steps]}")
        row = {"variant": label, "macs": res.steps[-1].macs, "params": res.steps[-1].params,
               "macs_ratio": res.steps[0].macs / res.steps[-1].macs,
               "accuracy_no_recovery_last_step": res.steps[-1].accuracy_before_recovery,
               "accuracy": res.steps[-1].accuracy, "steps": [s.to_dict() for s in res.steps],
               "prune_seconds": round(time.perf_counter() - t0, 1),
               "runtimes": measure_runtimes(pruned, example, work / label.split()[0],
                                            int8_calibration=calib if want_int8 else None)}
        section["rows"].append(row)
        results.put(name, section)


# ---- report -------------------------------------------------------------------------------------------
def _p50(row: dict, target: str, kind: str = "fp32", stat: str = "p50_ms") -> float | None:
    v = row.get("runtimes", {}).get(target, {}).get(kind, {})
    return v.get(stat) if isinstance(v, dict) else None


def _cell(row: dict, base: dict, target: str, kind: str = "fp32") -> str:
    """p50 and speed-up vs the unpruned fp32 row, by p50 and by the minimum (robust to a busy machine)."""
    p, b = _p50(row, target, kind), _p50(base, target)
    pm, bm = _p50(row, target, kind, "min_ms"), _p50(base, target, "fp32", "min_ms")
    text = f"{_fmt(p)} ({_fmt(b / p if p and b else None)}x"
    if pm and bm:
        text += f"; min {_fmt(bm / pm)}x"
    return text + ")"


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def render_markdown(data: dict) -> str:
    lines = ["# Structured pruning: MACs vs measured speed-up", "",
             "Produced by `benchmarks/prune.py` (all rows of a table measured in the same run; p50 from "
             "`edge_kd.bench.benchmark_artifact`, one thread, pinned core). Speed-up = unpruned fp32 / pruned "
             "latency in the same runtime, by p50 and by the fastest run (min): the machine was shared by "
             "several jobs, which inflates p50 unevenly; min is the less contaminated estimate.", ""]
    ref = data.get("reference")
    if ref:
        lines += [f"## Reference: {ref['model']}, {ref['criterion']}, no recovery", "",
                  "| variant | MMACs | MACs ratio | params (M) | " + " | ".join(
                      f"{RUNTIME_LABEL[t]} p50 ms (speed-up)" for t in TARGETS) + " |",
                  "|---|---:|---:|---:|" + "---:|" * len(TARGETS)]
        base = ref["rows"][0]
        for r in ref["rows"]:
            cells = [_cell(r, base, t) for t in TARGETS]
            lines.append(f"| {r['variant']} | {r['macs'] / 1e6:.1f} | {base['macs'] / r['macs']:.2f} | "
                         f"{r['params'] / 1e6:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    for name, title in (("efficientnet_lite0", "EfficientNet-Lite0 grocery teacher"),
                        ("resnet18", "ResNet-18 (short training here)")):
        sec = data.get(name)
        if not sec:
            continue
        info = sec["info"]
        lines += [f"## {title}", "", f"Input {info['image_size']}x{info['image_size']}, {info['preprocessing']}; "
                  f"accuracy in PyTorch on {sec['eval_images']} grocery test images; {sec['steps']} pruning steps, "
                  f"recovery {sec['recovery']}.", ""]
        if "training" in info:
            lines += [f"Teacher: {info['training']}.", ""]
        header = "| variant | MACs ratio | params (M) | top-1 | " + " | ".join(
            f"{RUNTIME_LABEL[t]} fp32 p50 (speed-up)" for t in TARGETS) + " | " + " | ".join(
            f"{RUNTIME_LABEL[t]} int8 p50 (vs fp32 unpruned)" for t in TARGETS) + " |"
        lines += [header, "|---|---:|---:|---:|" + "---:|" * (2 * len(TARGETS))]
        base = sec["rows"][0]
        for r in sec["rows"]:
            cells = [_cell(r, base, t) for t in TARGETS]
            for t in TARGETS:
                err = r.get("runtimes", {}).get(t, {}).get("int8", {}).get("error")
                cells.append("failed" if err else _cell(r, base, t, "int8"))
            acc = r.get("accuracy")
            lines.append(f"| {r['variant']} | {base['macs'] / r['macs']:.2f} | {r['params'] / 1e6:.2f} | "
                         f"{_fmt(acc * 100 if acc is not None else None, '.1f')}% | " + " | ".join(cells) + " |")
        lines.append("")
        errors = [(r["variant"], t, k, v["error"]) for r in sec["rows"] for t, rt in r.get("runtimes", {}).items()
                  for k, v in rt.items() if isinstance(v, dict) and "error" in v]
        if errors:
            lines += ["Failures:", ""] + [f"- {v} / {t} / {k}: {e}" for v, t, k, e in errors] + [""]
    notes = data.get("notes")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work", default="/tmp/edge_kd_prune_bench", help="scratch folder (artifacts, caches)")
    parser.add_argument("--sections", nargs="+", default=["reference", "efficientnet_lite0", "resnet18"],
                        choices=["reference", "efficientnet_lite0", "resnet18"])
    parser.add_argument("--eval-images", type=int, default=300)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--recovery-batches", type=int, default=40, help="batches of 32 per recovery step")
    parser.add_argument("--criterion", default="l2")
    parser.add_argument("--resnet-size", type=int, default=112)
    parser.add_argument("--resnet-epochs", type=int, default=4)
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer variants (smoke run)")
    parser.add_argument("--render", action="store_true", help="only rewrite prune.md from prune.json")
    args = parser.parse_args(argv)
    if args.render:
        results = Results(Path(args.out))
        results.md_path.write_text(render_markdown(results.data))
        return 0

    needs_data = [s for s in args.sections if s != "reference"]
    grocery = Path(args.data) / "grocery-store"
    if needs_data and not (grocery / "train.txt").is_file():
        print(f"missing data: {grocery}/train.txt (grocery-store image lists); pass --data PATH", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    results = Results(Path(args.out))
    for section in args.sections:
        log(f"== {section}")
        if section == "reference":
            section_reference(args, results)
        else:
            section_trained(section, args, results)
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
