"""Structured pruning: fewer MACs on paper vs. measured speed-up in each runtime, and accuracy.

Sections (run all, or pick with --sections; results accumulate in benchmarks/results/prune.json):

  reference   EfficientNet-Lite0 with RANDOM weights, fp32, one thread, no recovery: magnitude (L2)
              pruning of 30% / 45% of the channels, and 30% at round_to 1 / 8 / 16, measured in
              ONNX Runtime, ExecuTorch/XNNPACK and LiteRT (the issue's reference setting).
  efficientnet_lite0
              the grocery recipe's teacher (EfficientNet-Lite0 trained end to end at 192 px, the fit
              `edge-kd build examples/product_image_grocery.toml` caches and reuses), pruned by ONE
              progressive schedule to 3x fewer MACs (--steps even steps, a short KD recovery after each,
              --final-epochs at the end); the model at 2x is copied at its step and recovered
              --final-epochs more. Top-1 on the whole test split, CPU time of every step; then fp32 and
              int8 exports in every runtime (grocery_measure; time them with the cputime section).
  resnet18    trained here on grocery-store (81 classes): pruned to 2x and 3x fewer MACs in --steps steps
              with a KD recovery fine-tune after each, accuracy before/after (PyTorch, on --eval-images
              test images), fp32 p50 per runtime, and int8.

    .venv/bin/python benchmarks/prune.py --sections reference efficientnet_lite0 resnet18
    .venv/bin/python benchmarks/prune.py --sections cputime --cpu-sections efficientnet_lite0

Reads ``<repo>/../shared/data/grocery-store`` by default (``--data`` to change); exits 2 naming what is
missing. Every latency is measured by edge_kd.bench.benchmark_artifact on an exported artifact.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = ("ort-mobile", "android-arm64-xnnpack", "tflite-int8")
RUNTIME_LABEL = {"ort-mobile": "ORT", "android-arm64-xnnpack": "ExecuTorch/XNNPACK", "tflite-int8": "LiteRT"}


#: How to read the tables (written from the measurements of the committed run; see the final report).
NOTES = [
    "Machine: 2 CPU cores shared by ~6 concurrent jobs (load average 8-11 during the run). Wall-clock p50 "
    "is inflated and uneven between rows; even the fastest run is biased toward short models (a 40 ms "
    "inference is always preempted, a 4 ms one sometimes is not). The CPU-time tables (process CPU clock per "
    "inference, one runtime thread, medians over interleaved rounds) are the reliable speed-up numbers.",
    "ORT fp32 gains least: its profile shows depthwise convolutions take ~63% of the time of unpruned "
    "EfficientNet-Lite0 while holding 9% of the MACs. Removing a fraction p of channels cuts pointwise "
    "MACs by ~(1-p)^2 but depthwise cost only by (1-p), so ORT's speed-up follows the channel ratio more than "
    "the MACs ratio. XNNPACK (ExecuTorch, LiteRT) runs depthwise convs efficiently in NHWC and tracks MACs closer.",
    "round_to: this host has AVX-512 (fp32 GEMM tiles of 16 channels); round_to 16 is fastest for "
    "XNNPACK/LiteRT here, round_to 8 is no better than 1. The profiles' round_to 8 targets ARM NEON phones.",
    "The issue's reference (ExecuTorch at 45% no faster than at 30%) does not reproduce here: by CPU time 45% "
    "is 2.32x vs 1.62x at 30% (round_to 8); ExecuTorch delegates all 68 ops to one XNNPACK blob in both.",
    "Grocery, end-to-end teacher (section efficientnet_lite0, run 2026-12-03 22:38-23:09 UTC with nothing else "
    "heavy on the machine): the recipe's teacher, EfficientNet-Lite0 trained end to end at 192 px (12 epochs, "
    "augmentation, label smoothing), reaches 77.0% test top-1 (66.0% for the earlier head-only teacher at 224 px); "
    "its 12 epochs took 4,164 CPU s. Pruning it: one schedule of 4 even steps toward 3x fewer MACs, channels ranked "
    "by taylor importance (8 batches) with the residual widths kept (--criterion taylor --protect-residual), each "
    "step's BatchNorm statistics re-estimated on 10 batches (no gradient step), then at most 40 batches of recovery "
    "at lr 2e-4, then 6 whole epochs on the 2x and on the 3x model (--final-epochs 6 --recovery-lr 2e-4). Now: "
    "73.3% test top-1 at 2x (3.7 pt below the teacher), 55.6% at 3x, with 30 / 42 CPU min of pruning + recovery. "
    "The previous run of the same schedule with uniform l2 over every group, 2 final epochs at lr 1e-4: 41.5% / "
    "24.5%. One step alone, without recovery, shows why (benchmarks/prune_step_damage.py). Not met: the <= 1 pt "
    "(2x) and <= 3 pt (3x) goals: step 3 still drops val top-1 to 33%, step 4 to 4%.",
    "Smaller steps, whole recovery epochs, longer final recovery (section efficientnet_lite0_2x, run "
    "2026-12-04 03:20-04:08 UTC, --steps 8 --recovery-batches 0 --final-epochs 12, criterion taylor, residual "
    "widths kept, lr 2e-4): 6 steps of 1/12 of the MACs to 2x, each followed by a whole KD epoch, then 12 "
    "epochs: 78.1% test top-1 at 2.02x fewer MACs, 1.0 pt ABOVE the unpruned teacher (77.0%): the <= 1 pt "
    "goal at 2x is met. Each step now leaves val top-1 at 68.6-74.7% after its epoch (the 4-step schedule "
    "fell to 39.9% at 2x); the best final epoch was 9 of 12 (val 76.4%, teacher 69.6%: the 18 KD epochs from "
    "the unpruned model are more training than the teacher's own 12, and the pruned network ends above it). "
    "4,623 CPU s (77 CPU min) of pruning + recovery, about 2.6x the 4-step schedule's 2x model.",
    "The same schedule to 3x (section efficientnet_lite0_3x, run 2026-12-04 17:17-17:53 UTC, --steps 8 "
    "--recovery-batches 0 --final-epochs 12, no recovered 2x copy): 68.6% test top-1 at 3.09x fewer MACs, 7.7 pt "
    "below its teacher (goal <= 3 pt: not met; the 4-step schedule gave 55.6%). Its teacher is a fresh fit on a "
    "new machine, made with one torch thread (--threads; now fixed to --train-threads, as the build fits it): "
    "76.3% test, not the cached 77.0% fit, from the same code and seed (the thread count changes the floats; "
    "one thread also spent 2,048 CPU s on the 12 epochs against 4,164 with two). The steps to 2x keep val "
    "top-1 at 62.8-73.3% after their epochs, as in the 2x run; steps 7 and 8 (2.0x -> 2.5x -> 3.1x, each "
    "removing ~20% of what is left) fall to 30% and 22% before recovery and 40.5% / 36.1% after one epoch, "
    "and 12 final epochs bring val back to 56.4% only. The next thing to try: more, smaller steps past 2x "
    "(the step size is even in MACs, so late steps cut a larger share of the remaining channels) and longer "
    "recovery between them. 4,202 CPU s of pruning + recovery.",
    "Geometric steps to 3x (section efficientnet_lite0_3x_geometric, run 2026-12-05 03:34-04:49 UTC, --steps 12 "
    "--recovery-batches 0 --final-epochs 12, criterion taylor, residual widths kept, lr 2e-4, the same cached "
    "teacher as efficientnet_lite0_3x): PruneConfig.step_sizes = \"geometric\", each step keeps (1/3)^(1/12) = 91% "
    "of what is left instead of removing 1/12 of the original. 71.6% test top-1 at 3.09x fewer MACs, 4.7 pt below "
    "the teacher (76.3%), against 68.6% (7.7 pt) with 8 even steps: 3 pt better, the <= 3 pt goal still not met. "
    "The even schedule's two steps past 2x fell to 30% / 22% val before recovery; the four geometric steps past "
    "2.2x to 54% / 45% / 39% / 39%, and after their epoch 59% / 57% / 51% / 49% (even: 40.5% / 36.1%); the 12 "
    "final epochs end at 64.9% val (even: 56.4%; best epoch 8). CPU time: 6,562 s (even: 4,202 s). Steps 1-2 "
    "shared the 2 cores with the distillation benchmark and a demo build, and step 2 was paused 4 min: their "
    "CPU seconds (803 and 1,086) read high against the even run's same-size steps (561 and 518).",
    "Continued recovery on augmented views (section efficientnet_lite0_3x_geometric_augmented, run 2026-12-05 "
    "05:04-05:31 UTC beside the CI, --final-epochs 10 --recovery-lr 1e-4): the geometric 3x model (71.6% test, 64.9% "
    "val) trained 10 more epochs on random crops/flips/jitter of the photos, each scored by the unpruned model. It "
    "got worse: val 61.1% after the first epoch, 54-58% after the others, and the best of them (the first) gives "
    "68.1% test top-1. Over 10 epochs consistent teaching moves the small network toward the teacher's answers on "
    "distorted views, away from the plain photos it is judged on; the trainer keeps the best epoch it ran, not "
    "the weights it started from. 2,152 CPU s.",
    "LiteRT int8 graphs fixed, then the geometric 3x model and its teacher re-measured (--sections grocery_measure "
    "cputime emulate --measure-sections efficientnet_lite0_3x_geometric --cpu-sections "
    "efficientnet_lite0_3x_geometric, run 2026-12-05 07:06-07:13 UTC with nothing else running). litert-torch's "
    "int8 graph of EfficientNet-Lite0 ran 7 of its 9 residual adds in float (its quantizer finds adds through "
    "source partitions, which the non-strict export does not record for a + in forward) and transposed the "
    "activation to NCHW and back around each of the 4 strided TF-same pads. edge_kd now annotates every add "
    "(edge_kd.quantize.ranges.annotate_adds) and rewrites the pads in NHWC (edge_kd.export.litert."
    "fold_transposed_pads). LiteRT int8 against the fp32 unpruned model: 3x model 3.38x in CPU time on this host "
    "(was 3.21x) and an estimated 5.30x on the Cortex-A76 (was 4.84x); the unpruned model's int8 1.92x (was 1.67x) "
    "and 2.23x (was 1.99x). The prune + int8 >= 5x goal on LiteRT is met on the phone-core estimate, not on this "
    "x86 host (a one-off timing of the 3x model's graph prefixes put its int8 depthwise convolutions slower than "
    "the fp32 ones there). The int8 accuracy "
    "after the change, on the 224 px EfficientNet-Lite0 of int8.md: LiteRT static int8 0.20 pt below fp32 on 1,485 "
    "photos (was 0.40).",
    "Recovery on augmented views (section efficientnet_lite0_augment, run 23:16-23:32 UTC, --augment): the same "
    "schedule to 2x, every recovery batch a random crop/flip/jitter of the photos scored by the unpruned model "
    "(consistent teaching): 72.2% test top-1 against 73.3% without, at about the same CPU time (1,668 vs 1,773 s; "
    "no logits to precompute). At 6 epochs it does not pay: its val top-1 ends at 64.5% against 66.9% without; "
    "Beyer et al. (2022) report that consistent teaching pays off over much longer schedules than 6 epochs.",
    "Speed of the pruned 192 px grocery models (same run, p50 on one pinned core, nothing else heavy running): "
    "2x fewer MACs ORT 1.99x, ExecuTorch 1.94x, LiteRT 1.81x; 3x fewer MACs 2.86x / 2.66x / 2.77x; prune + int8 "
    "vs the fp32 unpruned model ORT 6.01x (2x) / 7.32x (3x), ExecuTorch 1.88x / 2.62x, LiteRT 2.15x / 2.62x. With "
    "the residual widths kept, the cuts fall on the expansion channels, where the depthwise convolutions are, so "
    "ORT (depthwise-bound) gains as much as the others (1.65x with uniform l2 before). LiteRT's and ExecuTorch's "
    "int8 kernels gain little over fp32 on this x86 host, short of the 5x prune + int8 goal for LiteRT.",
    "ORT int8 .ort files are saved in fixed optimization style again (fused QLinearConv/QLinearMatMul in the "
    "file): the runtime-style files of the previous run kept the QDQ pairs, which a full ONNX Runtime does not "
    "re-fuse at load, so they ran at fp32 speed or slower (unpruned int8 p50 24.7 ms in a run stopped for this fix vs 7.4 ms now).",
    "ResNet-18 has no pretrained weights here; it was trained from random init for 2 epochs at 96x96 "
    "(11% top-1): its accuracy column only shows the pipeline runs, not what pruning costs.",
]


#: The earlier grocery run (head-only teacher at 224 px, 2 steps x 2 epochs): its CPU-time speed-ups per runtime
#: are measurements of the 2x / 3x architectures and stay in the results beside the new section.
PREVIOUS_GROCERY = "efficientnet_lite0_224_head_only"


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
                             method="minmax", max_fallback_layers=0, num_samples=len(calibration), ship="int8")
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
                     "runtimes": measure_runtimes(model, example, _variant_folder(work.parent, "reference", label))})
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
    from edge_kd.prune.schedule import RecoveryConfig, RecoveryData, recover_with_trainer

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
        data = RecoveryData.from_dataset(train, slice(None), None, val=val)
        rec = recover_with_trainer(model, None, data, RecoveryConfig(epochs=args.resnet_epochs, lr=2e-3))
        info["train_seconds"] = round(time.perf_counter() - t0, 1)
        info["train_cpu_seconds"] = rec["cpu_seconds"]
        save_state_dict(model, weights)
    return model.eval(), train, test, info


def _spec_of(name: str, size: int):
    from edge_kd.models.spec import InputSpec, ModelSpec

    image = (InputSpec("image", (1, 3, size, size), "float32", -1.0, 1.0),)
    if name == "efficientnet_lite0":
        return ModelSpec("edge_kd.models.efficientnet_lite:efficientnet_lite0", image,
                         {"num_classes": 81, "pretrained": False, "image_size": size})
    return ModelSpec("edge_kd.models.resnet:resnet18", image, {"num_classes": 81})


def section_trained(name: str, args: argparse.Namespace, results: Results) -> None:
    import torch

    from edge_kd.prune.macs import count_macs, count_params
    from edge_kd.prune.pruner import PruneConfig
    from edge_kd.prune.schedule import RecoveryConfig, RecoveryData, run_schedule

    model, train, test, info = teacher_efficientnet(args) if name == "efficientnet_lite0" else teacher_resnet(args)
    size = info["image_size"]
    example = (torch.from_numpy(test.inputs([0])[0]),)
    calib = [(torch.from_numpy(train.inputs([i])[0]),) for i in range(0, len(train), max(1, len(train) // 64))][:64]
    work = Path(args.work) / name
    recovery = RecoveryConfig(epochs=args.recovery_epochs, lr=args.recovery_lr, batch_size=32)
    _, val, _ = load_grocery(args, size, info["preprocessing"].split()[0])
    data = RecoveryData(train.inputs(), train.labels, val.inputs(), val.labels)
    section: dict[str, Any] = {"info": info, "eval_images": len(test), "steps": args.steps,
                               "recovery": {"epochs_per_step": args.recovery_epochs, "batch": 32,
                                            "peak_lr": args.recovery_lr, "train_images": len(train),
                                            "trainer": "edge_kd.distill.trainer (AdamW, warm-up + cosine, "
                                                       "best val epoch kept)",
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
        torch.set_num_threads(args.train_threads)
        res = run_schedule(model, example, cfg, teacher=model, recovery=recovery, recovery_data=data,
                           evaluate=lambda m: accuracy(m, test),
                           on_step=lambda r, _m: log(f"  step {r.step}: MACs ratio {r.macs_ratio}, top-1 "
                                                     f"{r.accuracy_before_recovery} -> {r.accuracy} ({r.seconds} s)"))
        torch.set_num_threads(args.threads)
        pruned = res.model
        from edge_kd.prune.serialize import save_pruned  # reloadable (spec + safetensors) for re-measuring

        save_pruned(pruned, _spec_of(name, size), work / "models", name=label.split()[0])
        log(f"{name} {label}: steps {[s.to_dict() for s in res.steps]}")
        row = {"variant": label, "macs": res.steps[-1].macs, "params": res.steps[-1].params,
               "macs_ratio": res.steps[0].macs / res.steps[-1].macs,
               "accuracy_no_recovery_last_step": res.steps[-1].accuracy_before_recovery,
               "accuracy": res.steps[-1].accuracy, "steps": [s.to_dict() for s in res.steps],
               "prune_seconds": round(time.perf_counter() - t0, 1),
               "runtimes": measure_runtimes(pruned, example, _variant_folder(work.parent, name, label),
                                            int8_calibration=calib if want_int8 else None)}
        section["rows"].append(row)
        results.put(name, section)


def grocery_teacher(args: argparse.Namespace):
    """The teacher of examples/product_image_grocery.toml, fitted exactly as `edge-kd build` fits it
    (EfficientNet-Lite0 trained end to end at 192 px; cached in ~/.cache/edge_kd/teachers, so a build
    and this benchmark share one fit)."""
    from edge_kd.recipe import load_recipe, load_splits, teacher_from_recipe

    recipe = load_recipe(REPO / "examples" / "product_image_grocery.toml", shared_data=args.data)
    splits = load_splits(recipe.data)
    cache = Path(os.environ.get("EDGE_KD_CACHE", Path.home() / ".cache" / "edge_kd"))
    cpu0, t0 = time.process_time(), time.perf_counter()
    if args.teacher_dir:
        # That fit saved (Teacher.save) with its metrics.json: no second pass over the test photos.
        from edge_kd.models.teachers import load_teacher

        teacher = load_teacher(args.teacher_dir)
        teacher.metrics.update(json.loads((Path(args.teacher_dir) / "metrics.json").read_text()))
    else:
        import torch

        # The build fits with every core; so must this (a fit's floats depend on the thread count: the
        # efficientnet_lite0_3x run fitted it with the one thread of --threads and got 76.3%, not 77.0%).
        threads = torch.get_num_threads()
        torch.set_num_threads(args.train_threads)
        try:
            teacher = teacher_from_recipe(recipe.teacher, splits, cache_dir=str(cache), seed=recipe.seed)
        finally:
            torch.set_num_threads(threads)
    m = teacher.metrics
    info = {"image_size": teacher.model.image_size, "preprocessing": "tf (x-127)/128",
            "teacher": "examples/product_image_grocery.toml: linear head on cached features, then the whole "
                       f"network {m.get('full_finetune_epochs')} epochs (AdamW, warm-up + cosine, augmentation, "
                       "label smoothing)",
            "val_accuracy": m.get("val_accuracy"), "test_accuracy": m.get("test_accuracy"),
            "test_rows": m.get("test_rows"),
            "finetune_cpu_seconds": m.get("full_finetune_cpu_seconds"),
            "finetune_wall_seconds": m.get("full_finetune_wall_seconds"),
            "finetune_best_epoch": m.get("full_finetune_best_epoch"),
            "finetune_history": m.get("full_finetune_history"),
            "cache_hit": m.get("full_finetune_cache_hit"),
            "load_cpu_seconds_here": round(time.process_time() - cpu0, 1),
            "load_wall_seconds_here": round(time.perf_counter() - t0, 1)}
    return teacher, splits, info


def grocery_recovery_inputs(args: argparse.Namespace):
    """What the grocery pruning sections start from: the teacher and its info, the prepared train / val /
    test splits, one example input, and the recovery rows (the whole training split, val for the epoch)."""
    import torch

    from edge_kd.prune.schedule import RecoveryData

    teacher, splits, info = grocery_teacher(args)
    train, val, test = (teacher.prepare(d) for d in (splits.train, splits.val, splits.test))
    example = (torch.from_numpy(test.inputs([0])[0]),)
    return teacher, info, (train, val, test), example, RecoveryData.from_dataset(train, slice(None), None, val=val)


class _StopAt2x(Exception):
    pass


def section_grocery(args: argparse.Namespace, results: Results, *, name: str = "efficientnet_lite0",
                    augment: bool = False, stop_at_2x: bool = False, skip_2x: bool = False,
                    step_sizes: str = "even") -> None:
    """EfficientNet-Lite0 grocery, end-to-end fine-tuned teacher (192 px): ONE progressive schedule toward
    3x fewer MACs in --steps even steps (1 KD epoch each, at most --recovery-batches batches); the model
    after the step that reaches 2x is copied and recovered --final-epochs more epochs (the 2x variant),
    the 3x model gets --final-epochs at its last step. Top-1 on the whole test split, CPU time per step.
    ``augment``: every recovery trains on random views of the photos, each scored by the unpruned model
    (section efficientnet_lite0_augment: the same schedule up to 2x, to compare with the plain recovery).
    ``skip_2x``: no recovered 2x copy, only the 3x model (section efficientnet_lite0_3x: a longer schedule
    to 3x costs half the CPU time when the 2x model is already measured by efficientnet_lite0_2x).
    ``step_sizes``: ``geometric`` (section efficientnet_lite0_3x_geometric) removes the same share of the
    remaining MACs at every step instead of the same share of the original (``PruneConfig.step_sizes``)."""
    import torch

    from edge_kd.prune.macs import count_macs, count_params
    from edge_kd.prune.pruner import PruneConfig
    from edge_kd.prune.schedule import RecoveryConfig, recover_with_trainer, run_schedule, teacher_logits
    from edge_kd.prune.serialize import save_pruned

    teacher, info, (train, val, test), example, data = grocery_recovery_inputs(args)
    model = teacher.model.eval()
    size = info["image_size"]
    work = Path(args.work) / name
    # Steps: one epoch of at most --recovery-batches batches each; the 2x and 3x models then get
    # --final-epochs whole epochs (uncapped).
    recovery = RecoveryConfig(epochs=1, max_batches=args.recovery_batches or None,
                              lr=args.recovery_lr, batch_size=32, alpha=args.recovery_alpha, augment=augment)
    final = dataclasses.replace(recovery, max_batches=None)
    half = args.steps * 3 // 4  # step k keeps 1 - (2/3) k / steps of the MACs: 2x at k = 3/4 of the steps
    if step_sizes == "geometric":
        if not skip_2x:
            raise SystemExit("geometric steps have no step at exactly 2x: only the 3x model is made (skip_2x)")
        half, plan = -1, f"{args.steps} geometric steps to 3x fewer MACs (each keeps (1/3)^(1/{args.steps}) of what is left)"
    elif half * 4 != args.steps * 3:
        raise SystemExit("--steps must be a multiple of 4 (the 2x model is taken at 3/4 of the steps)")
    else:
        plan = f"{args.steps} even steps to 3x fewer MACs; 2x is step {half}"
    section: dict[str, Any] = {
        "info": info, "eval_images": len(test), "steps": args.steps,
        "recovery": {"steps": plan,
                     "per_step": f"1 epoch, at most {args.recovery_batches} batches of 32" if args.recovery_batches
                     else "1 epoch, every batch of 32",
                     "final_epochs": args.final_epochs, "peak_lr": args.recovery_lr, "train_images": len(train),
                     "trainer": "edge_kd.distill.trainer (AdamW, warm-up + cosine, best val epoch kept)",
                     "loss": f"hinton T=4 alpha={args.recovery_alpha}, teacher = the unpruned model",
                     "criterion": args.criterion, "protect_residual": bool(args.protect_residual),
                     "augment": augment},
        "rows": []}
    torch.set_num_threads(args.train_threads)
    cpu0 = time.process_time()
    # The fit measured it on the same rows (the same model): no second pass over the test photos.
    base_acc = info["test_accuracy"] if info.get("test_rows") == len(test) else accuracy(model, test)
    log(f"{name}: unpruned test top-1 {base_acc:.4f} on {len(test)} images")
    row0 = {"variant": "unpruned", "macs": count_macs(model, example).total, "params": count_params(model),
            "accuracy": base_acc}
    section["rows"].append(row0)
    results.put(name, section)
    spec = teacher.spec

    def finish(label: str, pruned: Any, steps: list, extra: dict | None, t0: float, c0: float) -> None:
        acc = accuracy(pruned, test)
        save_pruned(pruned, spec, work / "models", name=label.split()[0])
        row = {"variant": label, "macs": count_macs(pruned, example).total, "params": count_params(pruned),
               "accuracy": acc, "steps": steps, "final_recovery": extra,
               "prune_seconds": round(time.perf_counter() - t0, 1),
               "prune_cpu_seconds": round(time.process_time() - c0, 1)}
        row["macs_ratio"] = row0["macs"] / row["macs"]
        log(f"{name} {label}: test top-1 {acc:.4f} (teacher {base_acc:.4f}), CPU {row['prune_cpu_seconds']} s")
        section["rows"].append(row)
        results.put(name, section)

    t_start, c_start = time.perf_counter(), time.process_time()
    logits = teacher_logits(model, data) if not augment else None  # augment: the teacher scores each view
    if logits is not None:
        section["teacher_logits_cpu_seconds"] = round(time.process_time() - c_start, 1)
        log(f"  teacher logits on {len(train)} photos: CPU {section['teacher_logits_cpu_seconds']} s")

    def on_step(r: Any, current: Any) -> None:
        log(f"  step {r.step}: MACs ratio {r.macs_ratio}, val top-1 {r.accuracy_before_recovery} -> {r.accuracy} "
            f"({r.seconds} s, CPU {r.cpu_seconds} s)")
        if r.step == half and not skip_2x:
            snapshot = copy.deepcopy(current)
            rec = recover_with_trainer(snapshot, logits, data, final, epochs=args.final_epochs, seed=1000,
                                       teacher=model)
            done = [s.to_dict() for s in steps_seen] + [r.to_dict()]
            finish("2x fewer MACs", snapshot, done, rec, t_start, c_start)
            if stop_at_2x:
                raise _StopAt2x

    steps_seen: list = []
    cfg = PruneConfig(goal="macs", amount=2 / 3, criterion=args.criterion, round_to=8, steps=args.steps,
                      step_sizes=step_sizes, protect_residual=args.protect_residual)
    try:
        res = run_schedule(model, example, cfg, teacher=model, recovery=recovery, recovery_data=data,
                           evaluate=data.evaluate, on_step=lambda r, m: (on_step(r, m), steps_seen.append(r)),
                           soft_targets=logits)
    except _StopAt2x:
        section["total_cpu_seconds"] = round(time.process_time() - cpu0, 1)
        results.put(name, section)
        torch.set_num_threads(args.threads)
        return
    rec = recover_with_trainer(res.model, logits, data, final, epochs=args.final_epochs, seed=2000, teacher=model)
    finish("3x fewer MACs", res.model, [s.to_dict() for s in res.steps], rec, t_start, c_start)
    section["schedule_cpu_seconds"] = res.cpu_seconds
    section["total_cpu_seconds"] = round(time.process_time() - cpu0, 1)
    results.put(name, section)
    torch.set_num_threads(args.threads)
    if not args.no_measure and name == "efficientnet_lite0":
        grocery_measure(args, results)


def section_more_recovery(args: argparse.Namespace, results: Results) -> None:
    """The 3x model of efficientnet_lite0_3x_geometric, recovered --final-epochs more epochs on random views
    of the photos, each scored by the unpruned model (consistent teaching, Beyer et al. 2022: it pays over long
    schedules). Its final epochs there reached their best validation top-1 at epoch 8 of 12 while the training
    loss kept falling: the 0.9M-parameter network fits the 2,640 photos' fixed views."""
    import torch

    from edge_kd.models.spec import ModelSpec
    from edge_kd.prune.macs import count_macs, count_params
    from edge_kd.prune.schedule import RecoveryConfig, recover_with_trainer
    from edge_kd.prune.serialize import save_pruned

    source, name = "efficientnet_lite0_3x_geometric", "efficientnet_lite0_3x_geometric_augmented"
    src = results.data.get(source) or {}
    spec_path = Path(args.work) / source / "models" / "3x.json"
    if len(src.get("rows", [])) < 2 or not spec_path.is_file():
        raise SystemExit(f"run the {source} section first (its 3x model: {spec_path})")
    teacher, info, (_, _, test), example, data = grocery_recovery_inputs(args)
    model = ModelSpec.load(spec_path).build()
    config = RecoveryConfig(epochs=args.final_epochs, lr=args.recovery_lr, batch_size=32, alpha=args.recovery_alpha,
                            augment=True)
    torch.set_num_threads(args.train_threads)
    c0, t0 = time.process_time(), time.perf_counter()
    before = accuracy(model, test)
    rec = recover_with_trainer(model, None, data, config, seed=4000, teacher=teacher.model.eval())
    acc = accuracy(model, test)
    torch.set_num_threads(args.threads)
    save_pruned(model, teacher.spec, Path(args.work) / name / "models", name="3x")
    row = {"variant": "3x fewer MACs", "macs": count_macs(model, example).total, "params": count_params(model),
           "accuracy": acc, "accuracy_before": before, "steps": [], "final_recovery": rec,
           "prune_cpu_seconds": round(time.process_time() - c0, 1), "prune_seconds": round(time.perf_counter() - t0, 1)}
    row["macs_ratio"] = src["rows"][0]["macs"] / row["macs"]
    log(f"{name}: test top-1 {before:.4f} -> {acc:.4f} after {args.final_epochs} epochs on augmented views, "
        f"CPU {row['prune_cpu_seconds']} s")
    results.put(name, {"info": info, "eval_images": len(test), "steps": 0,
                       "recovery": {"from": f"the 3x model of {source} ({_pct(before)} test top-1)",
                                    "epochs": args.final_epochs, "peak_lr": args.recovery_lr,
                                    "loss": f"hinton T=4 alpha={args.recovery_alpha}, teacher = the unpruned model "
                                            "scoring each random view", "augment": True},
                       "rows": [src["rows"][0], row]})


def grocery_measure(args: argparse.Namespace, results: Results) -> None:
    """fp32 and int8 exports of the variants of the --measure-sections grocery sections in every runtime
    (the cputime section times them)."""
    import torch

    from edge_kd.models.spec import ModelSpec

    for name in args.measure_sections:
        if not (results.data.get(name) or {}).get("rows"):
            raise SystemExit(f"run the {name} section first (--measure-sections names grocery sections)")
    teacher, splits, _ = grocery_teacher(args)
    train = teacher.prepare(splits.train)
    example = (torch.from_numpy(train.inputs([0])[0]),)
    calib = [(torch.from_numpy(train.inputs([i])[0]),) for i in range(0, len(train), max(1, len(train) // 64))][:64]
    for name in args.measure_sections:
        sec = results.data[name]
        work = Path(args.work) / name
        for row in sec["rows"]:
            label = row["variant"]
            model = teacher.model if label == "unpruned" else \
                ModelSpec.load(work / "models" / f"{label.split()[0]}.json").build()
            row["runtimes"] = measure_runtimes(model.eval(), example, _variant_folder(work.parent, name, label),
                                               int8_calibration=None if args.no_int8 else calib)
            results.put(name, sec)


def _artifact(folder: Path, target: str) -> Path | None:
    """The shipped file in an export folder (quantize_model also leaves its fp32 twin: take *.int8.*)."""
    suffix = {"ort-mobile": ".ort", "android-arm64-xnnpack": ".pte", "tflite-int8": ".tflite"}[target]
    pattern = f"*.int8{suffix}" if folder.name == "int8" else f"*{suffix}"
    found = sorted(folder.glob(pattern)) if folder.is_dir() else []
    return found[0] if found else None


def _variant_folder(work: Path, section: str, label: str) -> Path:
    """Where measure_runtimes wrote a variant's exports (the reference section names folders by the whole label)."""
    sub = label.replace(" ", "_").replace("%", "") if section == "reference" else label.split()[0]
    return work / section / sub


def _stored_artifacts(work: Path, section: str, sec: dict[str, Any]):
    """(label, target, kind, path) of every stored artifact of a section, variants interleaved per target."""
    folders = {row["variant"]: _variant_folder(work, section, row["variant"]) for row in sec["rows"]}
    for target in TARGETS:
        for label, folder in folders.items():
            for kind in ("fp32", "int8"):
                path = _artifact(folder / target / kind, target)
                if path is not None:
                    yield label, target, kind, path


def section_remeasure(args: argparse.Namespace, results: Results) -> None:
    """Benchmark every stored artifact again, interleaved round-robin for --rounds rounds, so each
    variant sees the same machine load; keeps the minimum and the median p50 across rounds."""
    import statistics

    from edge_kd.bench import benchmark_artifact
    from edge_kd.targets import load_target

    work = Path(args.work)
    for section in ("reference", "efficientnet_lite0", "resnet18"):
        sec = results.data.get(section)
        if not sec:
            continue
        samples: dict[str, dict[str, dict[str, list]]] = {}
        for rnd in range(args.rounds):
            for label, target, kind, path in _stored_artifacts(work, section, sec):
                lat = benchmark_artifact(path, load_target(target))["latency_ms"]
                slot = samples.setdefault(label, {}).setdefault(target, {}).setdefault(kind, {"min": [], "p50": []})
                slot["min"].append(lat["min"])
                slot["p50"].append(lat["p50"])
            log(f"remeasure {section}: round {rnd + 1}/{args.rounds} done")
        sec["remeasured"] = {label: {t: {k: {"min_ms": min(v["min"]), "p50_ms": statistics.median(v["p50"]),
                                             "rounds": len(v["min"])} for k, v in kinds.items()}
                                     for t, kinds in targets.items()} for label, targets in samples.items()}
        results.put(section, sec)


def cpu_time_ms(path: Path, runs: int, warmup: int = 3) -> float:
    """Median CPU time of one inference (process CPU clock, one runtime thread).

    On a machine shared by many jobs, wall-clock latency mostly measures how often the run was
    preempted (a long model is interrupted more often than a short one, so even the minimum is
    biased); the CPU time the inference consumed is what the model costs, whatever the load."""
    import statistics

    import numpy as np

    from edge_kd.runtimes import open_runner

    runner = open_runner(path, threads=1)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
              else np.zeros(shape, dtype=dtype) for _, shape, dtype in runner.input_specs]
    for _ in range(warmup):
        runner.run(inputs)
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        runner.run(inputs)
        times.append((time.process_time() - t0) * 1000.0)
    return statistics.median(times)


def section_cputime(args: argparse.Namespace, results: Results) -> None:
    """CPU time per inference of every stored artifact, interleaved over --rounds rounds (median of medians)."""
    import statistics

    work = Path(args.work)
    for section in args.cpu_sections:
        sec = results.data.get(section)
        if not sec:
            continue
        samples: dict[str, dict[str, dict[str, list]]] = {}
        for rnd in range(args.rounds):
            for label, target, kind, path in _stored_artifacts(work, section, sec):
                samples.setdefault(label, {}).setdefault(target, {}).setdefault(kind, []).append(
                    cpu_time_ms(path, args.cpu_runs))
            log(f"cputime {section}: round {rnd + 1}/{args.rounds} done")
        sec["cputime"] = {label: {t: {k: {"cpu_ms": statistics.median(v), "rounds": len(v)} for k, v in kinds.items()}
                                  for t, kinds in targets.items()} for label, targets in samples.items()}
        results.put(section, sec)


def section_emulate(args: argparse.Namespace, results: Results) -> None:
    """Every stored artifact of --cpu-sections on the emulated ARM64 phone core (--core): instructions per
    inference and the cost-model estimate (edge_kd.emulate), so prune + int8 speed-ups can be read on the
    kernels a phone runs (on this x86 host LiteRT's and XNNPACK's int8 gain little over fp32)."""
    from edge_kd.emulate import emulate_artifact

    work = Path(args.work)
    for section in args.cpu_sections:
        sec = results.data.get(section)
        if not sec:
            continue
        out: dict[str, Any] = {}
        for label, target, kind, path in _stored_artifacts(work, section, sec):
            m = emulate_artifact(path, args.core, runs=1)
            out.setdefault(label, {}).setdefault(target, {})[kind] = {
                "estimate_ms": m["estimate_ms"], "instructions": m["instructions"], "classes": m["classes"],
                "runtime_version": m["runtime_version"], "emulation_seconds": m["emulation_seconds"]}
            log(f"emulate {section} {label} {target} {kind}: {m['instructions'] / 1e6:.1f} M insn, "
                f"est {m['estimate_ms']:.2f} ms on {args.core} ({m['emulation_seconds']:.0f} s)")
        sec["emulated"] = {"core": args.core, "artifacts": out}
        results.put(section, sec)


def _op_kind(event_args: dict) -> str:
    """Op type, with convolutions split by kind (depthwise / 1x1 pointwise / full) from the weight shape."""
    op = event_args["op_name"]
    if "Conv" not in op:
        return op
    shapes = [next(iter(s.values())) for s in event_args.get("input_type_shape", [])]
    weight = shapes[1] if len(shapes) > 1 else []
    if len(weight) == 4 and weight[1] == 1 and weight[2] > 1:
        return f"{op} depthwise {weight[2]}x{weight[3]}"
    if len(weight) == 4 and weight[2] == 1 and weight[3] == 1:
        return f"{op} pointwise 1x1"
    return f"{op} full" if weight else op


def section_ortprofile(args: argparse.Namespace, results: Results) -> None:
    """ONNX Runtime's own per-operator profile of the reference artifacts: where the time goes, and
    which op types shrink less than the MACs when channels are pruned."""
    import collections

    import numpy as np
    import onnxruntime as ort

    sec = results.data.get("reference")
    if not sec:
        return
    profile: dict[str, dict[str, float]] = {}
    for row in sec["rows"]:
        label = row["variant"]
        path = _artifact(_variant_folder(Path(args.work), "reference", label) / "ort-mobile" / "fp32",
                         "ort-mobile")
        if path is None:
            continue
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(args.work) / f"ortprof_{label.replace(' ', '_').replace('%', '')}")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32) for i in sess.get_inputs()}
        for _ in range(args.cpu_runs):
            sess.run(None, feed)
        trace = json.loads(Path(sess.end_profiling()).read_text())
        per_op: dict[str, float] = collections.defaultdict(float)
        for ev in trace:
            if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
                per_op[_op_kind(ev["args"])] += ev["dur"] / 1000.0 / args.cpu_runs
        profile[label] = dict(sorted(per_op.items(), key=lambda kv: -kv[1]))
        log(f"ortprofile {label}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in list(profile[label].items())[:6]))
    sec["ort_profile_ms_per_run"] = profile
    results.put("reference", sec)


def section_compensated(args: argparse.Namespace, results: Results) -> None:
    """The grocery EfficientNet-Lite0 teacher pruned to 2x fewer MACs WITH bias compensation, same steps and
    recovery as the main section; accuracy only (the architecture, hence latency, matches the 2x row)."""
    import torch

    from edge_kd.prune.pruner import PruneConfig
    from edge_kd.prune.schedule import RecoveryConfig, RecoveryData, run_schedule

    model, train, test, info = teacher_efficientnet(args)
    example = (torch.from_numpy(test.inputs([0])[0]),)
    rows = []
    for compensate in (True,):
        cfg = PruneConfig(goal="macs", amount=0.5, criterion=args.criterion, round_to=8, steps=args.steps,
                          compensate=compensate)
        _, val, _ = load_grocery(args, 224, "tf")
        res = run_schedule(model, example, cfg, teacher=model,
                           recovery_data=RecoveryData.from_dataset(train, slice(None), None, val=val),
                           recovery=RecoveryConfig(epochs=1, max_batches=args.recovery_batches),
                           evaluate=lambda m: accuracy(m, test))
        rows.append({"variant": "2x fewer MACs, bias compensation", "steps": [s.to_dict() for s in res.steps]})
        log(f"compensated: {[(s.step, s.macs_ratio, s.accuracy_before_recovery, s.accuracy) for s in res.steps]}")
    results.put("efficientnet_lite0_compensated", {"eval_images": len(test), "rows": rows})


def section_sensitivity(args: argparse.Namespace, results: Results) -> None:
    """How fragile EfficientNet-Lite0 (ImageNet weights, no recovery) is to channel pruning: top-1
    agreement with the unpruned model on grocery test images, per criterion and channel ratio."""
    import numpy as np
    import torch

    from edge_kd.data.images import load_image_list
    from edge_kd.models.efficientnet_lite import efficientnet_lite0
    from edge_kd.prune.pruner import PruneConfig, prune_channels, resolve_protected

    test = load_image_list(Path(args.data) / "grocery-store", "test", size=224, preprocessing="tf",
                           cache_dir=Path(args.work) / "pixels")
    x = torch.from_numpy(test.inputs(np.linspace(0, len(test) - 1, 40).astype(int))[0])
    model = efficientnet_lite0(1000, pretrained=True).eval()
    with torch.no_grad():
        ref = model(x).argmax(-1)
    residual = tuple(f"_blocks.{i}._project_conv" for i in range(16)) + ("_conv_stem", "_conv_head")
    from edge_kd.prune.pruner import input_stats

    train = load_image_list(Path(args.data) / "grocery-store", "train", size=224, preprocessing="tf",
                            cache_dir=Path(args.work) / "pixels")
    stats = input_stats(model, [(torch.from_numpy(train.inputs(np.arange(i, len(train), 80))[0]),) for i in range(2)])
    rows = []
    for label, kw, ratio, comp in [("l2", {}, 0.02, False), ("l2", {}, 0.05, False), ("l2", {}, 0.10, False),
                                   ("l1", {"criterion": "l1"}, 0.05, False), ("bn", {"criterion": "bn"}, 0.05, False),
                                   ("l2, residual stream + head protected", {"protect": residual}, 0.05, False),
                                   ("l2 + bias compensation", {}, 0.02, True), ("l2 + bias compensation", {}, 0.05, True),
                                   ("l2 + bias compensation", {}, 0.10, True), ("l2 + bias compensation", {}, 0.20, True)]:
        pruned = copy.deepcopy(model)
        cfg = PruneConfig(goal="macs", amount=0.5, round_to=1, **kw)
        prune_channels(pruned, (x[:1],), cfg, ratio, protected=resolve_protected(pruned, (x[:1],), cfg),
                       stats=stats if comp else None)
        with torch.no_grad():
            agree = float((pruned(x).argmax(-1) == ref).float().mean())
        rows.append({"criterion": label, "channel_ratio": ratio, "top1_agreement": agree,
                     "params": sum(p.numel() for p in pruned.parameters())})
        log(f"sensitivity {label} {ratio}: agreement {agree:.3f}")
    results.put("sensitivity", {"model": "EfficientNet-Lite0 ImageNet weights (1000 classes)", "images": len(x),
                                "rows": rows})


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


def _speedup_table(title: str, table: dict, column: str, key: str, *, suffix: Any = None,
                   macs: dict[str, int] | None = None) -> list[str]:
    """A {variant: {target: {kind: figures}}} table as markdown: ``figures[key]`` per kind and target with its
    speed-up over the first (unpruned) variant's fp32 in the same runtime, ``suffix(figures)`` after it,
    and the MACs ratio column when ``macs`` is given."""
    kinds = [k for k in ("fp32", "int8") if any(k in table[v].get(t, {}) for v in table for t in TARGETS)]
    base = table[next(iter(table))]
    lines = [f"### {title}", "",
             "| variant | " + ("MACs ratio | " if macs else "") + " | ".join(
                 f"{RUNTIME_LABEL[t]} {k} {column}" for k in kinds for t in TARGETS) + " |",
             "|---|" + ("---:|" if macs else "") + "---:|" * (len(kinds) * len(TARGETS))]
    for label in table:
        cells = []
        for k in kinds:
            for t in TARGETS:
                v, b = table[label].get(t, {}).get(k), base.get(t, {}).get("fp32")
                cells.append("n/a" if not v else f"{v[key]:.2f} ({_fmt(b[key] / v[key] if b else None)}x)"
                             + (suffix(v) if suffix else ""))
        ratio = f"{_fmt(macs[next(iter(table))] / macs[label] if label in macs else None)} | " if macs else ""
        lines.append(f"| {label} | {ratio}" + " | ".join(cells) + " |")
    return lines + [""]


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def _grocery_lines(sec: dict, teacher: bool = True) -> list[str]:
    """The end-to-end teacher (accuracy, CPU time per epoch; ``teacher``), top-1 drop per variant and every
    step's CPU time."""
    info = sec["info"]
    hist = info.get("finetune_history") or []
    out = ["The teacher is the one of the section above.", ""]
    if teacher:
        out = [f"Teacher: {info['teacher']}. Test top-1 {_fmt(info['test_accuracy'] * 100, '.1f')}% "
               f"({info.get('test_rows')} images), val {_fmt(info['val_accuracy'] * 100, '.1f')}% "
               f"(best epoch {info.get('finetune_best_epoch')}); the end-to-end epochs took "
               f"{_fmt(info.get('finetune_cpu_seconds'), '.0f')} CPU s "
               f"({_fmt(info.get('finetune_wall_seconds'), '.0f')} s wall on the shared 2-core machine).", "",
               "| teacher epoch | train loss | val top-1 | CPU s | wall s |", "|---:|---:|---:|---:|---:|"]
        out += [f"| {h['epoch']} | {h['train_loss']:.3f} | {h['val_accuracy'] * 100:.1f}% | {h['cpu_seconds']:.0f} | "
                f"{h['wall_seconds']:.0f} |" for h in hist] + [""]
    base = sec["rows"][0]["accuracy"]
    out += ["| variant | MACs ratio | test top-1 | drop vs teacher (pt) | pruning + recovery CPU s |",
            "|---|---:|---:|---:|---:|"]
    for r in sec["rows"]:
        drop = (base - r["accuracy"]) * 100 if r.get("accuracy") is not None else None
        out.append(f"| {r['variant']} | {_fmt(r.get('macs_ratio', 1.0))} | {_fmt(r['accuracy'] * 100, '.1f')}% | "
                   f"{_fmt(drop, '.1f')} | {_fmt(r.get('prune_cpu_seconds'), '.0f')} |")
    for r in sec["rows"][1:]:
        if not r.get("steps"):  # a recovery continued from another section's model: its epochs only
            out += ["", "| recovery epoch | val top-1 | CPU s |", "|---:|---:|---:|"] + [
                f"| {h['epoch']} | {_pct(h.get('val_accuracy'))} | {h.get('cpu_seconds', 0):.0f} |"
                for h in (r.get("final_recovery") or {}).get("history", [])]
            continue
        out += ["", f"Steps of the {r['variant']} model (top-1 on the val split; CPU s = pruning + recovery + "
                    "evaluation of the step):", "",
                "| step | MACs ratio | val top-1 after pruning" + (" and BatchNorm re-estimation" if any(
                    st.get("recovery", {}).get("bn_recalibration_batches") for st in r["steps"]) else "")
                + " | after recovery | recovery epochs | CPU s |",
                "|---:|---:|---:|---:|---:|---:|"]
        for st in r["steps"]:
            b, a = st.get("accuracy_before_recovery"), st.get("accuracy")
            out.append(f"| {st['step']} | {st['macs_ratio']:.3f} | {_pct(b)} | "
                       f"{_pct(a)} | {st.get('recovery', {}).get('epochs', 0)} | "
                       f"{st.get('cpu_seconds', 0):.0f} |")
        fin = r.get("final_recovery") or {}
        if fin:
            out.append(f"| final | | | {fin['best_val_metric'] * 100:.1f}% | {fin['epochs']} | {fin['cpu_seconds']:.0f} |")
    return out + [""]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def render_markdown(data: dict) -> str:
    lines = ["# Structured pruning: MACs vs measured speed-up", "",
             "Produced by `benchmarks/prune.py` (all rows of a table measured in the same run; p50 from "
             "`edge_kd.bench.benchmark_artifact`, one thread, pinned core). Speed-up = unpruned fp32 / pruned "
             "latency in the same runtime. Sections were measured in different runs, some while other jobs shared "
             "the machine: the wall-clock tables (p50 and fastest run) are noisy; the **CPU time tables** further "
             "down are the more reliable speed-ups (see Notes).", ""]
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
                        ("efficientnet_lite0_augment", "EfficientNet-Lite0 grocery teacher, the same schedule to 2x "
                                                       "with recovery on augmented views scored by the teacher"),
                        ("efficientnet_lite0_2x", "EfficientNet-Lite0 grocery teacher, to 2x only, with the step "
                                                  "count and recovery length recorded below"),
                        ("efficientnet_lite0_3x", "EfficientNet-Lite0 grocery teacher, to 3x only, with the step "
                                                  "count and recovery length recorded below"),
                        ("efficientnet_lite0_3x_geometric", "EfficientNet-Lite0 grocery teacher, to 3x only in "
                                                            "geometric steps (each removes the same share of what "
                                                            "is left)"),
                        ("efficientnet_lite0_3x_geometric_augmented", "The geometric 3x model, recovered further "
                                                                      "on augmented views scored by the teacher"),
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
        if sec.get("note"):
            lines += [sec["note"], ""]
        measured = any("runtimes" in r for r in sec["rows"])
        targets = TARGETS if measured else ()
        header = "| variant | MACs ratio | params (M) | top-1 | " + "".join(
            f"{RUNTIME_LABEL[t]} fp32 p50 (speed-up) | " for t in targets) + "".join(
            f"{RUNTIME_LABEL[t]} int8 p50 (vs fp32 unpruned) | " for t in targets)
        lines += [header.rstrip(), "|---|---:|---:|---:|" + "---:|" * (2 * len(targets))]
        base = sec["rows"][0]
        for r in sec["rows"]:
            cells = [_cell(r, base, t) for t in targets]
            for t in targets:
                err = r.get("runtimes", {}).get(t, {}).get("int8", {}).get("error")
                cells.append("failed" if err else _cell(r, base, t, "int8"))
            acc = r.get("accuracy")
            lines.append(f"| {r['variant']} | {base['macs'] / r['macs']:.2f} | {r['params'] / 1e6:.2f} | "
                         f"{_fmt(acc * 100 if acc is not None else None, '.1f')}% |" + "".join(f" {c} |" for c in cells))
        lines.append("")
        if name.startswith("efficientnet_lite0") and "test_accuracy" in info:
            # A section whose teacher was fitted again (another machine or thread count gives another fit)
            # describes its own; the others share the first section's.
            first = (data.get("efficientnet_lite0") or {}).get("info", {})
            lines += _grocery_lines(sec, teacher=name == "efficientnet_lite0"
                                    or info.get("test_accuracy") != first.get("test_accuracy"))
        errors = [(r["variant"], t, k, v["error"]) for r in sec["rows"] for t, rt in r.get("runtimes", {}).items()
                  for k, v in rt.items() if isinstance(v, dict) and "error" in v]
        if errors:
            lines += ["Failures:", ""] + [f"- {v} / {t} / {k}: {e}" for v, t, k, e in errors] + [""]
    for name in ("reference", "efficientnet_lite0", "resnet18"):
        rem = (data.get(name) or {}).get("remeasured")
        if rem:
            lines += _speedup_table(f"{name}: wall clock remeasured, interleaved round-robin (fastest run over all "
                                    "rounds; biased toward short models on a loaded machine, see Notes)", rem,
                                    "min ms (speed-up) / median p50", "min_ms",
                                    suffix=lambda v: f" / {v['p50_ms']:.2f}")
    for name in ("reference", "efficientnet_lite0", "efficientnet_lite0_3x_geometric", PREVIOUS_GROCERY, "resnet18"):
        cpu = (data.get(name) or {}).get("cputime")
        if cpu:
            lines += _speedup_table(f"{name}: CPU time per inference (median, one runtime thread; speed-up vs "
                                    "unpruned fp32 in the same runtime)", cpu, "CPU ms (speed-up)", "cpu_ms",
                                    macs={r["variant"]: r["macs"] for r in data[name]["rows"]})
    for name in ("efficientnet_lite0", "efficientnet_lite0_3x_geometric"):
        emu = (data.get(name) or {}).get("emulated")
        if emu:
            lines += _speedup_table(f"{name}: estimated latency on an emulated {emu['core']} (edge_kd.emulate cost "
                                    "model, one core; speed-up vs unpruned fp32 in the same runtime)",
                                    emu["artifacts"], "est ms (speed-up)", "estimate_ms")
    prof = (data.get("reference") or {}).get("ort_profile_ms_per_run")
    if prof:
        labels = list(prof)
        ops = sorted({op for p in prof.values() for op in p}, key=lambda op: -prof[labels[0]].get(op, 0.0))
        lines += ["### reference: ONNX Runtime per-operator time (ms per run, ORT profiler, one thread)", "",
                  "| op type | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        for op in ops:
            lines.append(f"| {op} | " + " | ".join(f"{prof[l].get(op, 0.0):.2f}" for l in labels) + " |")
        lines.append("| total | " + " | ".join(f"{sum(prof[l].values()):.2f}" for l in labels) + " |")
        lines.append("")
    sens = data.get("sensitivity")
    if sens:
        lines += [f"## Sensitivity: {sens['model']}, no recovery, top-1 agreement with the unpruned model on "
                  f"{sens['images']} grocery test images", "",
                  "| criterion | channel ratio removed per group | params (M) | top-1 agreement |", "|---|---:|---:|---:|"]
        for r in sens["rows"]:
            lines.append(f"| {r['criterion']} | {r['channel_ratio']:.2f} | {r['params'] / 1e6:.2f} | "
                         f"{r['top1_agreement']:.3f} |")
        lines.append("")
    comp = data.get("efficientnet_lite0_compensated")
    if comp:
        lines += [f"## EfficientNet-Lite0 teacher, 2x fewer MACs with bias compensation (accuracy on "
                  f"{comp['eval_images']} test images; same architecture/latency class as the 2x row above)", "",
                  "| step | MACs ratio | top-1 before recovery | top-1 after recovery |", "|---:|---:|---:|---:|"]
        for r in comp["rows"]:
            for st in r["steps"]:
                b = st.get("accuracy_before_recovery")
                lines.append(f"| {st['step']} | {st['macs_ratio']:.3f} | {_fmt(b * 100 if b is not None else None, '.1f')}% | "
                             f"{_fmt(st['accuracy'] * 100 if st['accuracy'] is not None else None, '.1f')}% |")
        lines.append("")
    notes = NOTES
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work", default="/tmp/edge_kd_prune_bench", help="scratch folder (artifacts, caches)")
    parser.add_argument("--sections", nargs="+", default=["reference", "efficientnet_lite0", "resnet18"],
                        choices=["reference", "efficientnet_lite0", "efficientnet_lite0_augment",
                                 "efficientnet_lite0_2x", "efficientnet_lite0_3x",
                                 "efficientnet_lite0_3x_geometric", "efficientnet_lite0_3x_geometric_augmented",
                                 "grocery_measure", "resnet18", "remeasure", "cputime", "emulate",
                                 "ortprofile", "sensitivity", "compensated"])
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=4,
                        help="pruning steps (efficientnet_lite0: to 3x fewer MACs, a multiple of 4; 2x at 3/4 of them)")
    parser.add_argument("--recovery-batches", type=int, default=40,
                        help="efficientnet_lite0/compensated: at most this many batches of 32 per step's recovery "
                             "(0: whole epochs)")
    parser.add_argument("--final-epochs", type=int, default=4,
                        help="efficientnet_lite0: KD epochs after the last step (2x: after its step)")
    parser.add_argument("--recovery-alpha", type=float, default=0.7, help="efficientnet_lite0: KD weight alpha")
    parser.add_argument("--teacher-dir", default=None,
                        help="efficientnet_lite0: the recipe's teacher saved by Teacher.save with a metrics.json "
                             "(default: fit or reuse it through the recipe, as a build does)")
    parser.add_argument("--no-measure", action="store_true",
                        help="efficientnet_lite0: skip the runtime exports (run section grocery_measure later)")
    parser.add_argument("--recovery-epochs", type=int, default=2, help="trained sections: KD epochs per pruning step")
    parser.add_argument("--recovery-lr", type=float, default=1e-4, help="trained sections: peak learning rate")
    parser.add_argument("--train-threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads for recovery training (benchmarks run in their own pinned process)")
    parser.add_argument("--criterion", default="l2")
    parser.add_argument("--protect-residual", action="store_true",
                        help="efficientnet_lite0: keep the residual widths, prune inside blocks only")
    parser.add_argument("--resnet-size", type=int, default=112)
    parser.add_argument("--resnet-epochs", type=int, default=4)
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer variants (smoke run)")
    parser.add_argument("--measure-sections", nargs="+", default=["efficientnet_lite0"],
                        help="grocery_measure: the grocery sections whose variants are exported and measured")
    parser.add_argument("--core", default="cortex-a76", help="emulate: the ARM64 core model (edge_kd.emulate.cost)")
    parser.add_argument("--cpu-runs", type=int, default=15, help="cputime: timed runs per artifact and round")
    parser.add_argument("--cpu-sections", nargs="+", default=["reference", "efficientnet_lite0", "resnet18"])
    parser.add_argument("--rounds", type=int, default=3, help="remeasure: interleaved rounds per artifact")
    parser.add_argument("--render", action="store_true", help="only rewrite prune.md from prune.json")
    args = parser.parse_args(argv)
    if args.render:
        results = Results(Path(args.out))
        results.md_path.write_text(render_markdown(results.data))
        return 0

    needs_data = [s for s in args.sections if s not in ("reference", "remeasure", "cputime", "emulate", "ortprofile")]
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
        elif section == "remeasure":
            section_remeasure(args, results)
        elif section == "cputime":
            section_cputime(args, results)
        elif section == "emulate":
            section_emulate(args, results)
        elif section == "ortprofile":
            section_ortprofile(args, results)
        elif section == "sensitivity":
            section_sensitivity(args, results)
        elif section == "compensated":
            section_compensated(args, results)
        elif section == "efficientnet_lite0":
            section_grocery(args, results)
        elif section == "efficientnet_lite0_augment":
            section_grocery(args, results, name=section, augment=True, stop_at_2x=True)
        elif section == "efficientnet_lite0_2x":
            section_grocery(args, results, name=section, stop_at_2x=True)
        elif section == "efficientnet_lite0_3x":
            section_grocery(args, results, name=section, skip_2x=True)
        elif section == "efficientnet_lite0_3x_geometric":
            section_grocery(args, results, name=section, skip_2x=True, step_sizes="geometric")
        elif section == "efficientnet_lite0_3x_geometric_augmented":
            section_more_recovery(args, results)
        elif section == "grocery_measure":
            grocery_measure(args, results)
        else:
            section_trained(section, args, results)
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
