"""Measure the zoo's teachers on the real data: head-only fine-tuning of pretrained backbones
(MiniLM-L6 on bitext and banking77, EfficientNet-Lite0 on grocery-store) and the tabular MLP on
online-shoppers. Writes benchmarks/results/teacher_accuracy.{json,md}.

    .venv/bin/python benchmarks/teacher_accuracy.py [--data ../shared/data] [--tasks bitext,banking77,grocery,shoppers]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TASKS = ("bitext", "banking77", "grocery", "shoppers")
NEEDS = {
    "bitext": ["bitext-customer-support/customer_support.csv"],
    "banking77": ["banking77/train.csv", "banking77/test.csv"],
    "grocery": ["grocery-store/train.txt", "grocery-store/val.txt", "grocery-store/test.txt"],
    "shoppers": ["online-shoppers/online_shoppers_intention.csv"],
}
SHOPPERS_CATEGORICAL = ("Month", "VisitorType", "Weekend", "OperatingSystems", "Browser", "Region", "TrafficType")


def run_task(task: str, data: Path, cache: Path | None) -> dict:
    from edge_kd.data import (TabularSchema, load_image_list, load_tabular_csv, load_text_csv, split_off,
                              train_val_test_split)
    from edge_kd.models.teachers import build_teacher, train_teacher

    if task == "bitext":
        ds = load_text_csv(data / NEEDS[task][0], "instruction", "intent")
        s = train_val_test_split(ds, val=0.1, test=0.2, seed=0)
        train, val, test = s.train, s.val, s.test
        teacher_name, split_note = "minilm-l6", "stratified 70/10/20, seed 0"
    elif task == "banking77":
        full = load_text_csv(data / "banking77/train.csv", "text", "category")
        test = load_text_csv(data / "banking77/test.csv", "text", "category", labels=full.label_names)
        train, val = split_off(full, 0.1, seed=0)
        teacher_name, split_note = "minilm-l6", "train.csv minus 10% val (seed 0); test.csv"
    elif task == "grocery":
        root = data / "grocery-store"
        train, val, test = (load_image_list(root, sp, label="fine", size=224, preprocessing="tf", cache_dir=cache)
                            for sp in ("train", "val", "test"))
        teacher_name, split_note = "efficientnet-lite0", "given train/val/test lists, 81 fine classes"
    else:
        schema = TabularSchema(label="Revenue", categorical=SHOPPERS_CATEGORICAL)
        s = train_val_test_split(load_tabular_csv(data / NEEDS[task][0], schema), val=0.1, test=0.2, seed=0)
        train, val, test = s.train, s.val, s.test
        teacher_name, split_note = "tabular-mlp", "stratified 70/10/20, seed 0; preprocessing fit on train"
    t0 = time.perf_counter()
    options = {"max_len": 64} if teacher_name == "minilm-l6" else {}
    teacher = build_teacher(teacher_name, train, **options)
    teacher = train_teacher(teacher, train, val, test, cache_dir=cache)
    seconds = time.perf_counter() - t0
    return {"task": task, "teacher": teacher_name, "mode": "head-only" if teacher_name != "tabular-mlp" else "full MLP",
            "classes": train.num_classes, "rows": {"train": len(train), "val": len(val), "test": len(test)},
            "split": split_note, "seconds": round(seconds, 1), "metrics": teacher.metrics}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="data root (default ../shared/data)")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=None, help="feature/image cache (default ~/.cache/edge_kd)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        print(f"error: unknown task {bad[0]!r}; known: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    missing = [str(args.data / f) for t in tasks for f in NEEDS[t] if not (args.data / f).is_file()]
    if missing:
        print(f"error: data missing: {', '.join(missing)} (pass --data PATH to the shared data root)", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    results = []
    for t in tasks:
        r = run_task(t, args.data, args.cache)
        print(json.dumps(r), flush=True)
        results.append(r)
    from edge_kd.pipeline.atomic import atomic_write_json, atomic_write_text

    doc = {"benchmark": "teacher_accuracy", "torch_threads": args.threads, "machine": platform.machine(),
           "torch": torch.__version__, "results": results}
    atomic_write_json(args.out / "teacher_accuracy.json", doc)
    lines = ["# Teacher accuracy (edge_kd zoo on real data)", "",
             f"torch {torch.__version__}, {args.threads} thread(s). Command: "
             f"`.venv/bin/python benchmarks/teacher_accuracy.py --tasks {','.join(tasks)}`", "",
             "| task | teacher | mode | classes | train/val/test | val acc | test acc | test ROC-AUC | seconds | feature files from cache |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["metrics"]
        auc = m.get("test_roc_auc")
        lines.append(f"| {r['task']} | {r['teacher']} | {r['mode']} | {r['classes']} | "
                     f"{r['rows']['train']}/{r['rows']['val']}/{r['rows']['test']} | {m.get('val_accuracy', float('nan')):.4f} | "
                     f"{m.get('test_accuracy', float('nan')):.4f} | {'' if auc is None else f'{auc:.4f}'} | {r['seconds']} | "
                     f"{m.get('feature_cache_hits', '-')} |")
    lines += ["", "Head-only: a linear head (AdamW, cosine schedule, 100 epochs, lr 1e-2, best epoch on val) on frozen "
              "backbone features computed once and cached on disk; `seconds` includes feature extraction only "
              "when the cache missed. The tabular MLP is trained in full (early stopping on val ROC-AUC).",
              "", "Splits: " + "; ".join(f"{r['task']}: {r['split']}" for r in results), ""]
    atomic_write_text(args.out / "teacher_accuracy.md", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
