"""How much one pruning step hurts the grocery EfficientNet-Lite0 teacher, by how channels are chosen.

    python benchmarks/prune_step_damage.py [--data ../shared/data] [--teacher-dir DIR] [--amount 0.1667]

One step of the recipe's schedule (1/6 of the MACs removed, round_to 8, bias compensation on 2 batches),
from the same end-to-end fine-tuned teacher, for each (criterion, residual widths kept or not): validation
top-1 right after pruning and after the BatchNorm re-estimation that every step of the schedule runs
(10 training batches, no gradient step). No recovery training: this isolates the damage of the choice of
channels. Writes benchmarks/results/prune_step_damage.{json,md}.
"""
from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

VARIANTS = (("l2", False), ("l2", True), ("taylor", False), ("taylor", True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--teacher-dir", default=None)
    parser.add_argument("--amount", type=float, default=1 / 6, help="fraction of the MACs removed by the step")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (Path(args.data) / "grocery-store").is_dir():
        print(f"{args.data}/grocery-store is missing: pass --data with the shared data root", file=sys.stderr)
        return 2

    import numpy as np
    import torch

    import prune as bench
    from edge_kd.pipeline.atomic import atomic_write_json, atomic_write_text
    from edge_kd.prune.macs import count_macs
    from edge_kd.prune.pruner import PruneConfig, prune_to_goal
    from edge_kd.prune.schedule import RecoveryData, recalibrate_batchnorm

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    teacher, splits, _info = bench.grocery_teacher(argparse.Namespace(data=args.data, teacher_dir=args.teacher_dir))
    model = teacher.model.eval()
    data = RecoveryData.from_dataset(teacher.prepare(splits.train), slice(None), None,
                                     val=teacher.prepare(splits.val))
    example = (torch.from_numpy(np.ascontiguousarray(data.train_inputs[0][np.arange(1)])),)
    macs0 = count_macs(model, example).total
    result = {"model": "EfficientNet-Lite0 grocery teacher (examples/product_image_grocery.toml), 192 px",
              "amount": args.amount, "val_images": len(data.val_labels), "unpruned_val": data.evaluate(model),
              "round_to": 8, "bn_batches": 10, "rows": []}
    stats = [inputs for inputs, _ in itertools.islice(data.batches(32, seed=1)(), 2)]
    grads = list(itertools.islice(data.batches(32, seed=2)(), 8))
    for criterion, keep_residual in VARIANTS:
        cpu0 = time.process_time()
        config = PruneConfig(goal="macs", amount=args.amount, criterion=criterion, round_to=8,
                             protect_residual=keep_residual)
        pruned, _ = prune_to_goal(model, example, config, stats_inputs=stats, grad_batches=grads)
        raw = data.evaluate(pruned)
        recalibrate_batchnorm(pruned, data.batches(32)(), 10)
        row = {"criterion": criterion, "protect_residual": keep_residual,
               "macs_ratio": round(count_macs(pruned, example).total / macs0, 4),
               "val_after_pruning": raw, "val_after_bn": data.evaluate(pruned),
               "cpu_seconds": round(time.process_time() - cpu0, 1)}
        print(row, flush=True)
        result["rows"].append(row)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = {"platform": platform.platform(), "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    atomic_write_json(out / "prune_step_damage.json", result)
    atomic_write_text(out / "prune_step_damage.md", render(result))
    return 0


def render(r: dict) -> str:
    lines = ["# One pruning step: damage by channel choice", "",
             f"Produced by `benchmarks/prune_step_damage.py`. {r['model']}; one step removing {r['amount']:.3f} "
             f"of the MACs (round_to {r['round_to']}, bias compensation), no recovery training. Top-1 on the "
             f"{r['val_images']} validation photos; unpruned {r['unpruned_val'] * 100:.1f}%. The BatchNorm "
             f"re-estimation ({r['bn_batches']} training batches, no gradient step) runs after every step of the "
             "schedule.", "",
             "| criterion | residual widths | MACs ratio | val top-1 after pruning | after BatchNorm re-estimation | CPU s |",
             "|---|---|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['criterion']} | {'kept' if row['protect_residual'] else 'pruned'} | "
                     f"{row['macs_ratio']:.3f} | {row['val_after_pruning'] * 100:.1f}% | "
                     f"{row['val_after_bn'] * 100:.1f}% | {row['cpu_seconds']:.0f} |")
    lines += ["", f"Whole run: {r['seconds']:.0f} s ({r['machine']['updated']}, {r['machine']['platform']}).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
