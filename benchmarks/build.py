"""The product's main job on real e-commerce data: `edge-kd build` of the examples for all three targets.

For each example recipe and target, one row compares the fp32 teacher and the distilled int8 student,
both measured in the same runtime in the same run: task metric, bundle bytes, compressed bytes,
p50/p90 latency, and the ratios (size and speed-up). Writes benchmarks/results/build.{json,md}.

    python benchmarks/build.py [--examples intent_bitext,purchase_online_shoppers,product_image_grocery]
                               [--targets android-arm64-xnnpack,ort-mobile,tflite-int8] [--data PATH]
                               [--work builds/bench] [--resume]

Examples other than the bundled one read ../shared/data (or --data); a missing data set is reported
and that example is skipped (exit 2 when nothing could be built).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EXAMPLES = ["intent_bitext", "purchase_online_shoppers", "product_image_grocery", "demand_online_retail",
            "next_purchase_online_retail"]
TARGETS = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]
DATA_NEEDED = {
    "intent_bitext": None,  # bundled in examples/data
    "intent_bitext_smallest": None,
    "intent_banking77": "banking77/train.csv",
    "purchase_online_shoppers": "online-shoppers/online_shoppers_intention.csv",
    "product_image_grocery": "grocery-store/train.txt",
    "ctr_criteo": "ctr-samples/criteo_sample.txt",
    "demand_online_retail": "online-retail/online_retail.csv.gz",
    "next_purchase_online_retail": "online-retail/online_retail.csv.gz",
}


def _row(example: str, build_dir: Path) -> dict:
    from edge_kd.pipeline.manifest import read_manifest
    from edge_kd.pipeline.records import bundle_total

    m = read_manifest(build_dir)
    teacher_art = (m["teacher"] or {}).get("artifact") or {}
    s_lat, t_lat = m["metrics"].get("latency_ms", {}), m["teacher"].get("latency_ms", {})
    row = {
        "example": example, "target": m["target"]["name"], "runtime": m["metrics"].get("runtime"),
        "metric": m["metrics"]["task_metric"]["name"],
        "teacher_metric": m["teacher"]["task_metric"]["value"], "student_metric": m["metrics"]["task_metric"]["value"],
        "teacher_bytes": teacher_art.get("bytes"), "teacher_gzip_bytes": teacher_art.get("gzip_bytes"),
        "student_bundle_bytes": bundle_total(m, "bytes")[0],
        "student_bundle_gzip_bytes": bundle_total(m, "gzip_bytes")[0],
        "teacher_p50_ms": t_lat.get("p50"), "teacher_p90_ms": t_lat.get("p90"),
        "student_p50_ms": s_lat.get("p50"), "student_p90_ms": s_lat.get("p90"),
        "gate_passed": (m.get("gate") or {}).get("passed"),
        "failed_checks": [c["name"] for c in (m.get("gate") or {}).get("checks", []) if not c["passed"]],
        "eval_rows": m["metrics"].get("eval_rows"),
        "shipped": _shipped(m),
    }
    if row["teacher_bytes"] and row["student_bundle_bytes"]:
        row["size_ratio"] = row["teacher_bytes"] / row["student_bundle_bytes"]
    if row["teacher_p50_ms"] and row["student_p50_ms"]:
        row["speedup_p50"] = row["teacher_p50_ms"] / row["student_p50_ms"]
    from edge_kd.metrics import higher_is_better

    higher = higher_is_better(row["metric"])
    row["higher_is_better"] = higher
    # Kept: the share of the teacher's quality the student keeps (below 100% = worse), in either direction.
    if higher:
        row["metric_kept"] = row["student_metric"] / row["teacher_metric"] if row["teacher_metric"] else None
    else:
        row["metric_kept"] = row["teacher_metric"] / row["student_metric"] if row["student_metric"] else None
    if m["teacher"].get("no_runtime_artifact"):
        row["teacher_measured_in"] = m["teacher"].get("measured_in")
    if m["metrics"].get("baselines"):
        row["baselines"] = m["metrics"]["baselines"]
        row["student_mae"], row["teacher_mae"] = m["metrics"].get("mae"), m["teacher"].get("mae")
    raw = _raw_targets(m)
    if raw is not None:
        row["raw_targets"] = raw
    baseline = m["metrics"].get("baseline")
    if baseline:  # next-purchase ranking: NDCG@10 and the popularity baseline on the same rows
        row["ranking"] = {"teacher_ndcg@10": m["teacher"].get("ndcg@10"), "student_ndcg@10": m["metrics"].get("ndcg@10"),
                          "popularity_recall@10": baseline["recall@10"], "popularity_ndcg@10": baseline["ndcg@10"]}
        distill = next((st.get("details") or {} for st in m["stages"] if st.get("name") == "distill"), {})
        row["ranking"].update(student_value=(distill.get("student") or {}).get("value"),
                              student_recall_pytorch=distill.get("test_metric_pytorch"),
                              teacher_fit=(distill.get("teacher") or {}).get("fit"),
                              data=distill.get("data"))
    return row


def _raw_targets(m: dict) -> dict | None:
    """The distill stage's measured comparison: the same student trained on the raw targets."""
    for st in m.get("stages", []):
        if st.get("name") == "distill" and (st.get("details") or {}).get("raw_targets"):
            d = st["details"]
            return {"distilled_test_pytorch": d.get("test_metric_pytorch"),
                    "raw_test_pytorch": d["raw_targets"].get("test_metric_pytorch"), "loss": d["raw_targets"].get("loss")}
    return None


def _forecast_table(rows: list[dict]) -> list[str]:
    """Forecasting rows: errors (lower is better) against the teacher and the seasonal-naive baseline."""
    rows = [r for r in rows if r.get("baselines")]
    if not rows:
        return []
    lines = ["", "## Demand forecasting (WAPE and MAE: lower is better)", "",
             "Student figures are measured through the target runtime; the LightGBM teacher has no runtime artifact, "
             "so its figures are measured in Python on the same test rows and its latency is n/a. Seasonal naive = "
             "the same product's quantity one week earlier. 'vs naive' = how much lower the student's WAPE is. "
             "'raw targets' = the same student architecture trained on the labels only (PyTorch test WAPE, beside "
             "the distilled student's PyTorch test WAPE).", "",
             "| example | target | teacher WAPE | student WAPE | student / teacher | naive WAPE | student vs naive "
             "| MAE teacher / student / naive | distilled vs raw targets (PyTorch) | bundle KiB | shipped | gate |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        naive = r["baselines"].get("seasonal_naive", {})
        nw = naive.get("wape")
        vs_naive = f"{100 * (1 - r['student_metric'] / nw):.1f}% lower" if nw else "-"
        raw = r.get("raw_targets") or {}
        rt = (f"{raw['distilled_test_pytorch']:.4f} vs {raw['raw_test_pytorch']:.4f}"
              if raw.get("raw_test_pytorch") is not None else "-")
        mae = (f"{r.get('teacher_mae', 0):.2f} / {r.get('student_mae', 0):.2f} / {naive.get('mae', 0):.2f}")
        gate = "pass" if r["gate_passed"] else "FAIL: " + ", ".join(r["failed_checks"])
        lines.append(f"| {r['example']} | {r['target']} | {r['teacher_metric']:.4f} | {r['student_metric']:.4f} "
                     f"| {r['student_metric'] / r['teacher_metric']:.3f}x | {nw:.4f} | {vs_naive} | {mae} | {rt} "
                     f"| {r['student_bundle_bytes'] / 1024:,.1f} | {(r.get('shipped') or {}).get('shipped', '-')} "
                     f"| {gate} |")
    return lines


def _ranking_raw_targets(recipe_path: Path, data_root: Path, value: int) -> dict:
    """The same student (family and size) trained on the true next items only, no teacher: its PyTorch test
    recall@10 beside the distilled student's (the distill stage's PyTorch figure on the same test rows).
    When the recipe's transfer set is on, also the same student trained on the training rows plus the
    transfer set's augmented histories with their next items, still no teacher: what the augmentation
    alone is worth, so the table separates it from what the teacher's scores add."""
    import numpy as np

    from edge_kd.distill.run import _options, build_recipe_loss, make_student_family
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, predict, train_student
    from edge_kd.distill.transfer import history_transfer_rows
    from edge_kd.metrics import metric_value
    from edge_kd.recipe import load_recipe, load_splits

    recipe = load_recipe(recipe_path, shared_data=data_root)
    splits = load_splits(recipe.data)
    family, sdata = make_student_family(recipe, splits.train)
    d, opts, tcfg = recipe.distill, _options(recipe), recipe.distill.transfer
    config = TrainConfig(epochs=d.epochs, batch_size=d.batch_size, lr=d.lr, weight_decay=d.weight_decay,
                         warmup_fraction=opts.warmup_fraction, patience=opts.patience, metric="recall@10", seed=d.seed,
                         device="cpu", progress=False)
    history = sdata.inputs(splits.train, value)[0]
    fits = {"": (history, splits.train.labels)}
    if tcfg.enabled and tcfg.augment_copies > 0:
        # the distill stage's own rows (edge_kd.distill.run), with their next items instead of the teacher
        aug_h, aug_y = history_transfer_rows(splits.train.history, splits.train.labels, tcfg, seed=d.seed)
        fits["_augmented"] = (np.concatenate([history, aug_h]), np.concatenate([splits.train.labels, aug_y]))
    out_row: dict = {"value": value}
    start = time.perf_counter()
    for suffix, (x, y) in fits.items():
        student = family.build(value)
        result = train_student(student, build_recipe_loss(("next_items",), d.temperature, 0.0, "ranking"),
                               DistillData((x,), y, None),
                               EvalData(sdata.inputs(splits.val, value), splits.val.labels), config)
        out = predict(student, sdata.inputs(splits.test, value))
        out_row.update({f"test_recall@10_pytorch{suffix}": metric_value(out, splits.test.labels, "recall@10"),
                        f"test_ndcg@10_pytorch{suffix}": metric_value(out, splits.test.labels, "ndcg@10"),
                        f"best_epoch{suffix}": result.best_epoch})
    out_row["seconds"] = round(time.perf_counter() - start, 1)
    return out_row


def _ranking_table(rows: list[dict]) -> list[str]:
    """Next-purchase rows: recall@10 and NDCG@10 of teacher, student and the popularity baseline, and the
    distilled student against the same student trained on the raw next items."""
    rows = [r for r in rows if r.get("ranking")]
    if not rows:
        return []
    lines = ["", "## Next-purchase recommendation: ranking metrics through the runtime", "",
             "Recall@10 = |top-10 ∩ next invoice| / min(10, |next invoice|), NDCG@10 with binary relevance, on the "
             "test period's invoices (edge_kd/data/transactions.py). Popularity = the most-bought training products "
             "for everyone. *Raw next items*: the same student (same size) trained on the true next items only, no "
             "teacher, in PyTorch, against the distilled student in PyTorch on the same test rows; *+ augmented*: "
             "the same, also trained on the transfer set's augmented histories with their next items (still no "
             "teacher), which the distilled student gets scored by the teacher.", "",
             "| example | target | recall@10 teacher / student / popularity | NDCG@10 teacher / student / popularity "
             "| teacher / popularity | student / popularity | student / teacher | distilled vs raw next items "
             "(PyTorch recall@10) |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        rk = r["ranking"]
        pop, pop_n = rk["popularity_recall@10"], rk["popularity_ndcg@10"]
        raw = rk.get("raw_targets") or {}
        if raw and rk.get("student_recall_pytorch") is not None:
            d, h = rk["student_recall_pytorch"], raw["test_recall@10_pytorch"]
            vs = f"{d:.4f} vs {h:.4f} ({100 * (d / h - 1):+.1f}%)"
            a = raw.get("test_recall@10_pytorch_augmented")
            if a is not None:
                vs += f"; + augmented {a:.4f} ({100 * (d / a - 1):+.1f}%)"
        else:
            vs = "-"
        lines.append(f"| {r['example']} | {r['target']} | {r['teacher_metric']:.4f} / {r['student_metric']:.4f} / "
                     f"{pop:.4f} | {rk['teacher_ndcg@10']:.4f} / {rk['student_ndcg@10']:.4f} / {pop_n:.4f} "
                     f"| {r['teacher_metric'] / pop:.2f}x | {r['student_metric'] / pop:.2f}x "
                     f"| {100 * r['metric_kept']:.1f}% | {vs} |")
    first = rows[0]["ranking"]
    fit, data = first.get("teacher_fit") or {}, first.get("data") or {}
    if fit:
        lines += ["", f"Teacher (sasrec) trained here: {fit.get('epochs')} epochs, "
                      f"{fit.get('train_cpu_seconds')} s of CPU time ({fit.get('train_wall_seconds')} s wall, "
                      f"shared machine), validation recall@10 {fit.get('val_recall@10', 0):.4f}."]
    test = data.get("test") or {}
    if test:
        lines += ["", f"Data ({test.get('source', '').rsplit(':', 1)[0].rsplit('/', 1)[-1]}): {test.get('rows_without_customer'):,} "
                      f"product lines without a CustomerID excluded, {test.get('cancellation_rows'):,} cancellation "
                      f"lines and {test.get('non_product_rows'):,} non-product lines (postage, fees, vouchers) not "
                      f"purchases; catalog {test.get('catalog_products'):,} products ({test.get('trained_products'):,} "
                      f"bought in training). Test period {test.get('period', {}).get('from')} to the end: "
                      f"{test.get('invoices'):,} invoices, {test.get('examples'):,} ranked, "
                      f"{test.get('cold_customers'):,} cold-start (no earlier purchase: popularity list, not ranked); "
                      f"{test.get('cold_targets'):,} of {test.get('target_items'):,} target products never bought in "
                      f"training (kept as targets: they count as misses)."]
    return lines


def _shipped(m: dict) -> dict | None:
    """The quantize stage's choice: which student artifact ships and the candidates' p50 beside each other."""
    from edge_kd.gate.evaluate import artifact_choice

    selection = artifact_choice(m)
    if selection is None:
        return None
    by_name = {c["name"]: c for c in selection["candidates"]}
    return {"policy": selection["policy"], "shipped": selection["shipped"], "reason": selection["reason"],
            "p50_ms": {n: c.get("p50_ms") for n, c in by_name.items()},
            "within_budget": {n: c.get("within_budget") for n, c in by_name.items()},
            "failed_budgets": {n: c.get("failed_budgets") or [] for n, c in by_name.items()}}


def _shipped_table(rows: list[dict]) -> list[str]:
    """fp32 vs shipped p50 of the student per example and target (timed interleaved by the quantize stage)."""
    rows = [r for r in rows if r.get("shipped")]
    if not rows:
        return []
    lines = ["", "## Which student artifact ships (int8 only where it pays)", "",
             "The quantize stage times the student's fp32 artifact, its static int8 artifact and the runtime's "
             "other int8 scheme side by side (interleaved rounds, one core) and ships the fastest that meets "
             "every budget (`[quantization] ship`); a recipe that asks for the smallest student (`[student] "
             "objective = \"smallest-within-drop\"`, intent_bitext_smallest) ships the smallest instead.", "",
             "A shipped artifact slower than fp32 is one the budgets forced, or the smallest-student objective "
             "chose (the reason says which and what speed it gave up).", "",
             "| example | target | fp32 p50 ms | int8 p50 ms | other scheme p50 ms | shipped | shipped p50 / fp32 p50 "
             "| why |",
             "|---|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        sh = r["shipped"]
        p50 = sh["p50_ms"]
        other = ", ".join(f"{n} {v:.4g}" for n, v in p50.items() if n not in ("fp32", "int8") and v is not None) or "-"
        fp32, shipped = p50.get("fp32"), p50.get(sh["shipped"])
        ratio = f"{shipped / fp32:.2f}x" if fp32 and shipped else "-"
        fmt = (lambda v: "-" if v is None else f"{v:.4g}")
        why = sh["reason"]
        # Faster candidates that did not ship broke a budget: say which, so a slower shipped row explains itself.
        faster = [n for n, v in p50.items() if v is not None and shipped and v < shipped
                  and sh["within_budget"].get(n) is False]
        if faster:
            failed = sh.get("failed_budgets", {})
            why += "; faster but out of budget: " + ", ".join(
                f"{n} ({', '.join(failed.get(n) or ['a budget'])})" for n in faster)
        lines.append(f"| {r['example']} | {r['target']} | {fmt(fp32)} | {fmt(p50.get('int8'))} | {other} "
                     f"| {sh['shipped']} | {ratio} | {why.replace('|', '/')} |")
    return lines


def _markdown(rows: list[dict], notes: list[str]) -> str:
    def kib(v):
        return "-" if v is None else f"{v / 1024:,.1f}"

    def ms(a, b):
        return "n/a (no runtime artifact)" if a is None or b is None else f"{a:.3f} / {b:.3f}"

    def x(v):
        return "n/a" if not v else f"{v:.1f}x"

    lines = ["# `edge-kd build` on real e-commerce data: fp32 teacher vs int8 student, per target", "",
             "Produced by `benchmarks/build.py`; every figure is measured through the target runtime in the same run "
             "(one thread, pinned core). Sizes in KiB; the student's size is its whole bundle (model + preprocessing "
             "assets); the teacher's is its fp32 artifact. 'kept' = the share of the teacher's metric the student keeps "
             "(student/teacher, or teacher/student for an error such as WAPE where lower is better).", "",
             "| example | target | metric | teacher | student | kept | teacher KiB (gz) | student KiB (gz) | size ratio "
             "| teacher p50/p90 ms | student p50/p90 ms | speed-up p50 | gate |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        gate = "pass" if r["gate_passed"] else "FAIL: " + ", ".join(r["failed_checks"])
        lines.append(
            f"| {r['example']} | {r['target']} | {r['metric']} | {r['teacher_metric']:.4f} | {r['student_metric']:.4f} "
            f"| {100 * (r['metric_kept'] or 0):.1f}% | {kib(r['teacher_bytes'])} ({kib(r['teacher_gzip_bytes'])}) "
            f"| {kib(r['student_bundle_bytes'])} ({kib(r['student_bundle_gzip_bytes'])}) | {x(r.get('size_ratio'))} "
            f"| {ms(r['teacher_p50_ms'], r['teacher_p90_ms'])} | {ms(r['student_p50_ms'], r['student_p90_ms'])} "
            f"| {x(r.get('speedup_p50'))} | {gate} |")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    lines += _forecast_table(rows)
    lines += _shipped_table(rows)
    lines += _ranking_table(rows)
    return "\n".join(lines) + "\n"


def _kept_results(path: Path, rebuilt: list[str]) -> tuple[list[dict], list[str]]:
    """Rows and notes of the examples this run does not rebuild, from an earlier results file."""
    if not path.is_file():
        return [], []
    old = json.loads(path.read_text(encoding="utf-8"))
    rows = [r for r in old.get("rows", []) if r["example"] not in rebuilt]
    kept = {r["example"] for r in rows}
    notes = [n if "not rebuilt" in n else f"{n} (earlier run, not rebuilt by this one)"
             for n in old.get("notes", []) if n.split(":", 1)[0] in kept]
    return rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", default=",".join(EXAMPLES))
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--data", help="shared data root (default: ../shared/data beside the repository)")
    parser.add_argument("--work", default=str(REPO / "builds" / "bench"), help="build output root")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--quick", action="store_true", help="accepted for make bench; builds are the same")
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted builds in --work (distillation from its last epoch, pruning "
                             "from its last completed step), as `edge-kd build --resume`")
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the rows (and notes) of examples this run does not build from the existing "
                             "results in --out, marked with the run they come from")
    args = parser.parse_args()

    from edge_kd.stages import build
    from edge_kd.errors import EdgeKDError
    from edge_kd.pipeline import atomic_write_json, atomic_write_text
    from edge_kd.pipeline.manifest import read_manifest
    from edge_kd.recipe import default_shared_data

    data_root = Path(args.data) if args.data else default_shared_data()
    targets = args.targets.split(",")
    rows, notes = [], []
    kept_rows, kept_notes = _kept_results(Path(args.out) / "build.json", args.examples.split(",")) \
        if args.keep_others else ([], [])
    for example in args.examples.split(","):
        needed = DATA_NEEDED.get(example)
        if needed and not (data_root / needed).exists():
            msg = f"{example}: skipped, missing {data_root / needed} (pass --data PATH)"
            print(msg, file=sys.stderr)
            notes.append(msg)
            continue
        start = time.perf_counter()
        out = Path(args.work) / example
        try:
            summaries = build(REPO / "examples" / f"{example}.toml", targets, out, shared_data=str(data_root),
                              resume=args.resume)
        except EdgeKDError as exc:
            notes.append(f"{example}: failed: {exc}")
            print(f"{example}: {exc}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - start
        if all(st.get("status") == "reused" for s in summaries for st in read_manifest(s.build_dir)["stages"]
               if st.get("name") != "gate"):
            # Nothing was recomputed: the figures are the earlier run's, recorded in the build folders.
            notes.append(f"{example}: every stage reused from the completed builds in {out} (figures as "
                         f"measured when those builds ran)")
        else:
            notes.append(f"{example}: built for {len(summaries)} targets in {seconds:.0f} s")
        new_rows = [_row(example, s.build_dir) for s in summaries]
        raw_cache: dict = {}
        for r in new_rows:  # next-purchase: the same student trained on the raw next items, once per size
            rk = r.get("ranking")
            if rk and rk.get("student_value") is not None:
                v = rk["student_value"]
                if v not in raw_cache:
                    raw_cache[v] = _ranking_raw_targets(REPO / "examples" / f"{example}.toml", data_root, v)
                rk["raw_targets"] = raw_cache[v]
        rows += new_rows
        # Write after each example so a long run keeps what it measured.
        out_dir = Path(args.out)
        atomic_write_json(out_dir / "build.json", {"rows": rows + kept_rows, "notes": notes + kept_notes})
        atomic_write_text(out_dir / "build.md", _markdown(rows + kept_rows, notes + kept_notes))
    if not rows:
        print("nothing was built", file=sys.stderr)
        return 2
    print(_markdown(rows, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
