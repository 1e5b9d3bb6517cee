"""Check the emulated counts against arithmetic, and put the estimate beside a published phone figure.

MobileNetV2 1.0 at 224x224 (the architecture of Sandler et al. 2018, written here; random weights, as in
the published benchmark: latency does not depend on weight values) is exported fp32 and int8 for LiteRT
and ExecuTorch and run on the emulated Cortex-A76 (`edge_kd.emulate`). Two checks:

- counting: the fp32 artifact's `fmla`/`fmla_idx` count x 4 lanes must be close to the model's multiply-adds
  (computed from the layer shapes), and int8 must run dot products;
- latency: the cost-model estimate next to XNNPACK's published single-threaded MobileNet v2 1.0X figures
  (google/XNNPACK README, "Performance / Mobile phones", benchmarked 2020-03-27 with end2end_bench:
  Pixel 49 ms, Pixel 2 53 ms, Pixel 3a 55 ms). None of those phones has a Cortex-A76 (Pixel 3a: Kryo 360
  Gold, Cortex-A75-based, 2.0 GHz), so this is a plausibility check, not a validation of the model.

    python benchmarks/emulate_mobilenet.py [--core cortex-a76] [--work /tmp/mnv2] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PUBLISHED = {"source": "google/XNNPACK README, Performance / Mobile phones (single-threaded, 2020-03-27)",
             "mobilenet_v2_1.0_fp32_ms": {"Pixel (Kryo, Snapdragon 821)": 49, "Pixel 2 (Cortex-A73-based, Snapdragon 835)": 53,
                                          "Pixel 3a (Cortex-A75-based, Snapdragon 670)": 55}}


def mobilenet_v2():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = [conv_bn(cin, hidden, 1, 1)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, 1, act=False)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    # (expansion, channels, repeats, stride) of the paper's Table 2.
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers, cin = [conv_bn(3, 32, 3, 2)], 32
    for t, c, n, s in settings:
        for i in range(n):
            layers.append(Inverted(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(conv_bn(cin, 1280, 1, 1))
    torch.manual_seed(0)
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)).eval()
    return model


def multiply_adds(model, shape=(1, 3, 224, 224)) -> int:
    import torch
    from torch import nn

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += output.numel() * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(shape))
    for h in handles:
        h.remove()
    return total


def _markdown(rows, macs, core) -> str:
    from edge_kd.emulate.cost import CORES

    clock = CORES[core].clock_ghz
    lines = [f"# MobileNetV2 1.0 224 on an emulated {core}: counts vs arithmetic, estimate vs a published figure", "",
             f"Produced by `benchmarks/emulate_mobilenet.py` (random weights). Multiply-adds from the layer shapes: "
             f"{macs / 1e6:.1f} M. Published single-threaded MobileNet v2 1.0X, {PUBLISHED['source']}: " +
             ", ".join(f"{k} {v} ms" for k, v in PUBLISHED["mobilenet_v2_1.0_fp32_ms"].items()) +
             " (the validation on the Pixel 3a's Cortex-A75 is benchmarks/results/emulate_phones.md). Estimates "
             "recomputed with the current cost model (`--reestimate`) when a constant changes.", "",
             f"| target | precision | M instructions | fp fma | int8 dot | int mac | 4 x fmla / MACs | est. ms ({core}, {clock} GHz) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r["classes"]
        lines.append(f"| {r['target']} | {r['precision']} | {r['instructions'] / 1e6:.1f} | {c['fp_fma'] / 1e6:.2f} M | "
                     f"{c['int8_dot'] / 1e6:.2f} M | {c['int_mac'] / 1e6:.2f} M | {r['fmla_lanes_over_macs']:.3f} | "
                     f"{r['estimate_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--core", default="cortex-a76")
    parser.add_argument("--targets", default="tflite-int8,android-arm64-xnnpack")
    parser.add_argument("--work", default="/tmp/edge-kd-mobilenet")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--reestimate", action="store_true",
                        help="recompute the estimates of the committed emulate_mobilenet.json from its per-kind counts "
                             "with the current cost model (after a constant changed); no export, no emulation")
    args = parser.parse_args()
    if args.reestimate:
        import json

        from edge_kd.emulate.cost import CORES, estimate
        from edge_kd.pipeline import atomic_write_json, atomic_write_text

        out = Path(args.out)
        data = json.loads((out / "emulate_mobilenet.json").read_text())
        for r in data["rows"]:
            r["estimate_ms"] = estimate(r["kinds"], CORES[data.get("core", args.core)])["ms"]
        atomic_write_json(out / "emulate_mobilenet.json", data)
        atomic_write_text(out / "emulate_mobilenet.md", _markdown(data["rows"], data["macs"], data.get("core", args.core)))
        return 0

    import numpy as np
    import torch

    from edge_kd.emulate import emulate_artifact, ensure_environment
    from edge_kd.pipeline import atomic_write_json, atomic_write_text
    from edge_kd.quantize import quantize_model
    from edge_kd.targets import load_target

    env = ensure_environment()
    model = mobilenet_v2()
    macs = multiply_adds(model)
    rng = np.random.default_rng(0)
    calib = [(rng.random((1, 3, 224, 224), dtype=np.float32),) for _ in range(8)]
    rows = []
    for target in args.targets.split(","):
        start = time.perf_counter()
        result = quantize_model(model, (torch.rand(1, 3, 224, 224),), load_target(target), calib,
                                Path(args.work) / target, method="minmax")
        fmt = load_target(target).primary_format
        for precision in ("fp32", "int8"):
            path = Path(args.work) / target / f"model.{precision}.{fmt}"
            m = emulate_artifact(path, args.core, runs=2)
            fma = m["kinds"].get("fmla", 0) + m["kinds"].get("fmla_idx", 0)
            rows.append({"target": target, "precision": precision, "artifact": path.name, "macs": macs,
                         "instructions": m["instructions"], "classes": m["classes"], "kinds": m["kinds"],
                         "fmla_lanes_over_macs": 4 * fma / macs, "estimate_ms": m["estimate_ms"],
                         "compute_deterministic": m["compute_deterministic"], "emulation_seconds": m["emulation_seconds"]})
            print(f"{target} {precision}: {m['instructions'] / 1e6:.1f} M insns, 4*fmla/MACs "
                  f"{rows[-1]['fmla_lanes_over_macs']:.3f}, int8 dot {m['classes']['int8_dot'] / 1e6:.2f} M, "
                  f"est {m['estimate_ms']:.1f} ms ({m['emulation_seconds']:.0f} s)", flush=True)
        del result
        print(f"{target}: {time.perf_counter() - start:.0f} s", flush=True)
    lines = _markdown(rows, macs, args.core).splitlines()
    out = Path(args.out)
    atomic_write_json(out / "emulate_mobilenet.json", {"rows": rows, "published": PUBLISHED, "macs": macs, "core": args.core,
                                                       "environment": env.versions})
    atomic_write_text(out / "emulate_mobilenet.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
