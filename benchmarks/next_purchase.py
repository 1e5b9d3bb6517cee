"""Next-purchase recommendation on the real transactions, in PyTorch only (no export, no runtime): the
recipe's teacher, its student distilled with the recipe's listwise loss, the same student trained on the raw
next items, and the popularity baseline, all on the recipe's test period. A quick check of the model side
that needs minutes of CPU where `benchmarks/build.py` (every runtime, exports, latency) needs far more.

    python benchmarks/next_purchase.py [--recipe examples/next_purchase_online_retail.toml] [--data PATH]

Writes benchmarks/results/next_purchase.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "examples" / "next_purchase_online_retail.toml"))
    parser.add_argument("--data", help="shared data root (default: ../shared/data beside the repository)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()

    import numpy as np
    import torch

    from edge_kd.data.transactions import popularity_scores
    from edge_kd.distill.run import _options, build_recipe_loss, make_student_family
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, predict, train_student
    from edge_kd.metrics import metric_value
    from edge_kd.pipeline import atomic_write_json, atomic_write_text
    from edge_kd.recipe import default_shared_data, load_recipe, load_splits, teacher_from_recipe

    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe, shared_data=args.data or default_shared_data())
    started = time.perf_counter()
    splits = load_splits(recipe.data)
    train, val, test = splits.train, splits.val, splits.test
    teacher = teacher_from_recipe(recipe.teacher, splits, seed=recipe.seed)
    t_test = teacher.predict(test, batch_size=256)
    t_train = teacher.predict(train, batch_size=256)

    def scores(out: np.ndarray) -> dict:
        return {m: metric_value(out, test.labels, m) for m in ("recall@10", "ndcg@10")}

    family, sdata = make_student_family(recipe, train)
    value = family.values[-1]
    d, opts = recipe.distill, _options(recipe)
    config = TrainConfig(epochs=d.epochs, batch_size=d.batch_size, lr=d.lr, weight_decay=d.weight_decay,
                         warmup_fraction=opts.warmup_fraction, patience=opts.patience, metric="recall@10", seed=d.seed,
                         device="cpu", progress=False)
    students = {}
    for name, losses, teacher_out in (("distilled", tuple(d.losses), t_train), ("raw next items", ("next_items",), None)):
        student = family.build(value)
        t0 = time.process_time()
        res = train_student(student, build_recipe_loss(losses, d.temperature, d.alpha if teacher_out is not None else 0.0,
                                                       "ranking"),
                            DistillData(sdata.inputs(train, value), train.labels, teacher_out),
                            EvalData(sdata.inputs(val, value), val.labels), config)
        students[name] = {**scores(predict(student, sdata.inputs(test, value))), "losses": list(losses),
                          "best_epoch": res.best_epoch, "train_cpu_seconds": round(time.process_time() - t0, 1)}
    pop = np.broadcast_to(popularity_scores(train), (len(test), train.num_classes))
    result = {"recipe": Path(args.recipe).name, "student": {"family": family.name, "dim": value},
              "teacher": {**scores(t_test), "name": teacher.name, "options": recipe.teacher.options,
                          **{k: v for k, v in teacher.metrics.items() if k != "history"}},
              "students": students, "popularity": scores(pop), "data": splits.describe(),
              "seconds": round(time.perf_counter() - started, 1)}
    out = Path(args.out)
    atomic_write_json(out / "next_purchase.json", result)
    t, pop_r = result["teacher"], result["popularity"]
    dist, raw = students["distilled"], students["raw next items"]
    fit = f"{t['epochs']} epochs, {t['train_cpu_seconds']} s CPU"
    lines = ["# Next-purchase recommendation on UCI Online Retail (PyTorch, test period)", "",
             "Produced by `benchmarks/next_purchase.py` (models in PyTorch fp32, no runtime: the runtime rows are "
             "`benchmarks/build.py`'s). Recall@10 = hits / min(10, basket size); NDCG@10 binary relevance.", "",
             "| model | recall@10 | NDCG@10 | recall@10 vs popularity | recall@10 vs teacher |",
             "|---|---:|---:|---:|---:|",
             f"| popularity (most-bought in training) | {pop_r['recall@10']:.4f} | {pop_r['ndcg@10']:.4f} | 1.00x | - |",
             f"| teacher {t['name']} {t['options']} ({fit}) | {t['recall@10']:.4f} | {t['ndcg@10']:.4f} "
             f"| {t['recall@10'] / pop_r['recall@10']:.2f}x | 100% |"]
    for name, s in (("student distilled (" + ", ".join(dist["losses"]) + ")", dist), ("same student, raw next items", raw)):
        lines.append(f"| {name}, {family.name} dim {value} | {s['recall@10']:.4f} | {s['ndcg@10']:.4f} "
                     f"| {s['recall@10'] / pop_r['recall@10']:.2f}x | {100 * s['recall@10'] / t['recall@10']:.1f}% |")
    te = result["data"]["test"]
    lines += ["", f"Test period from {te['period']['from']}: {te['invoices']:,} invoices, {te['examples']:,} ranked, "
              f"{te['cold_customers']:,} cold-start (no earlier purchase); {te['cold_targets']:,} of "
              f"{te['target_items']:,} target products never bought in training (kept: misses). Rows: "
              f"{te['rows_without_customer']:,} product lines without CustomerID excluded, {te['cancellation_rows']:,} "
              f"cancellation lines not purchases, {te['non_product_rows']:,} non-product lines dropped; catalog "
              f"{te['catalog_products']:,} products. Run took {result['seconds']:.0f} s on a shared machine."]
    atomic_write_text(out / "next_purchase.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
