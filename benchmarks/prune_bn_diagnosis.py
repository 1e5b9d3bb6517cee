"""Why pruning the end-to-end grocery teacher collapsed: one pruning step, then the same step with its
BatchNorm statistics re-estimated, then 25 recovery batches at several learning rates.

    python benchmarks/prune_bn_diagnosis.py --teacher-dir DIR [--data ../shared/data] [--lr 5e-4 1e-4 2e-5]

DIR is a saved grocery teacher (``Teacher.save`` with its metrics.json, as benchmarks/prune.py takes it);
without it the recipe's teacher is fitted or read from the cache. Prints validation top-1 after each part;
the figures in README ("Structured pruning") and in edge_kd/prune/schedule.py come from its run of
2026-12-03 (one pruning step to 0.82x MACs, l2, round_to 8; val 4.7% -> 55.1% by re-estimation; then 25
batches: 59.1% at lr 5e-4, 59.8% at 1e-4, 57.8% at 2e-5). An ad hoc run of the same steps without the re-estimation
stopped at 16.9% after 25 batches at 5e-4.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--teacher-dir", default=None)
    parser.add_argument("--lr", type=float, nargs="+", default=[5e-4, 1e-4, 2e-5])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not (Path(args.data) / "grocery-store").is_dir():
        print(f"{args.data}/grocery-store is missing: pass --data with the shared data root", file=sys.stderr)
        return 2

    import numpy as np
    import torch

    import prune as bench
    from edge_kd.prune.macs import count_macs
    from edge_kd.prune.pruner import PruneConfig, prune_to_goal
    from edge_kd.prune.schedule import (RecoveryConfig, RecoveryData, recalibrate_batchnorm, recover_with_trainer,
                                        teacher_logits)

    torch.set_num_threads(args.threads)
    teacher, splits, _info = bench.grocery_teacher(argparse.Namespace(data=args.data, teacher_dir=args.teacher_dir))
    model = teacher.model.eval()
    data = RecoveryData.from_dataset(teacher.prepare(splits.train), slice(None), None,
                                     val=teacher.prepare(splits.val))
    logits = teacher_logits(model, data)
    example = (torch.from_numpy(np.ascontiguousarray(data.train_inputs[0][np.arange(1)])),)
    print(f"unpruned: val top-1 {data.evaluate(model):.4f}", flush=True)
    config = PruneConfig(goal="macs", amount=2 / 3, criterion="l2", round_to=8, steps=4)
    pruned, _ = prune_to_goal(model, example, config, fraction=1 - (2 / 3) / 4)
    ratio = count_macs(pruned, example).total / count_macs(model, example).total
    print(f"one step to {ratio:.3f}x MACs: val top-1 {data.evaluate(pruned):.4f}", flush=True)
    recalibrated = copy.deepcopy(pruned)
    recalibrate_batchnorm(recalibrated, data.batches(32)(), 10)
    print(f"  + BatchNorm re-estimated on 10 batches: val top-1 {data.evaluate(recalibrated):.4f}", flush=True)
    for lr in args.lr:
        trial = copy.deepcopy(recalibrated)
        recover_with_trainer(trial, logits, data, RecoveryConfig(epochs=1, max_batches=25, lr=lr, batch_size=32))
        print(f"  + 25 recovery batches at lr {lr:g}: val top-1 {data.evaluate(trial):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
