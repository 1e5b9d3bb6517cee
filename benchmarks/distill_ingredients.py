"""What each ingredient of the distill stage buys, in PyTorch, on banking77: teacher-initialized rows
(``edge_kd.distill.teacher_init``) and the transfer set (``edge_kd.distill.transfer``), on and off, for
hashed n-gram students of three sizes, trained side by side in one run.

A lean companion of benchmarks/distill.py (which also exports every student and judges it through each
runtime): it prepares the inputs once (``prep``: the transfer set labelled by the teacher, the hashed ids,
the teacher-initialized rows, all cached as .npz), then trains one variant per process (``train``), so
the variants can run side by side on a shared machine, and writes one table (``report``).

    python benchmarks/distill_ingredients.py prep
    for v in kd kd+init kd+transfer distilled hard-label kd+dropswap kd+transfer-nongram; do
        python benchmarks/distill_ingredients.py train $v & done; wait
    python benchmarks/distill_ingredients.py report
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

RESULTS = REPO / "benchmarks" / "results"
#: (buckets, dim): the ORT students the size search chose for 1 MiB and 256 KiB bundles (benchmarks/distill.py),
#: and a table of about 48 KiB int8 (3,073 x 16) for the 64 KiB budget.
SIZES = ((3072, 16), (6912, 32), (15104, 64))
#: variant -> (teacher init, transfer rows, loss). Transfer rows, all labelled by the teacher: None; "library"
#: (edge_kd.distill.transfer with ngram_sample 0.25, its default until this comparison); "dropswap" (the simpler
#: copies of the earlier benchmark, distill_teacher.augment: word dropout 0.15 and one adjacent swap, every
#: sentence twice, no dedup); "nongram" (the library's with ngram_sample 0, its default now: whole sentences).
VARIANTS = {"kd": (False, None, "hinton"), "kd+init": (True, None, "hinton"),
            "kd+transfer": (False, "library", "hinton"), "distilled": (True, "library", "hinton"),
            "hard-label": (True, "library", "ce"), "kd+dropswap": (False, "dropswap", "hinton"),
            "kd+transfer-nongram": (False, "nongram", "hinton")}
NAMES = {"kd": "KD only", "kd+init": "KD + teacher init", "kd+transfer": "KD + transfer set (n-gram cuts 0.25)",
         "distilled": "KD + both (n-gram cuts 0.25)", "hard-label": "hard labels + both (n-gram cuts 0.25)",
         "kd+dropswap": "KD + dropout/swap copies",
         "kd+transfer-nongram": "KD + transfer set, no n-gram cuts (default)"}


def prep(args) -> int:
    import torch

    from distill import transfer_set
    from distill_teacher import teacher_logits
    from edge_kd.distill.teacher_init import HashedInit
    from edge_kd.models.minilm import get_tokenizer
    from edge_kd.preprocess.text import TextPreprocessSpec, hash_texts, ids_from_hashes

    torch.set_num_threads(1)
    t0 = time.time()
    t = teacher_logits(args.data, args.cache, aug_copies=args.aug_copies, threads=1, log=print)
    train, val, test = t["train"], t["val"], t["test"]
    info: dict = {}
    # The transfer set as the library built it until n-gram cuts were switched off (ngram_sample 0.25), and
    # as it builds it now (0): the comparison that switched them off.
    tr = transfer_set(t, argparse.Namespace(aug_copies=args.aug_copies, cache=args.cache,
                                            transfer={"ngram_sample": 0.25}), info)
    nongram_info: dict = {}
    nongram = transfer_set(t, argparse.Namespace(aug_copies=args.aug_copies, cache=args.cache,
                                                 transfer={"ngram_sample": 0.0}), nongram_info)
    base = TextPreprocessSpec(buckets=1, max_ids=args.max_ids)
    texts = list(train.texts) + tr["texts"]
    hashes = {"train": hash_texts(base, texts), "val": hash_texts(base, val.texts),
              "test": hash_texts(base, test.texts), "dropswap": hash_texts(base, t["aug_texts"]),
              "nongram": hash_texts(base, nongram["texts"])}
    emb = t["model"].encoder.get_input_embeddings().weight.detach().float().numpy()
    inits = {"with": HashedInit.from_embeddings(base, emb, get_tokenizer(), texts),
             "without": HashedInit.from_embeddings(base, emb, get_tokenizer(), train.texts)}
    out = args.cache / "ingredients"
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"y": np.concatenate([train.labels, tr["labels"]]).astype(np.int64),
              "teacher": np.concatenate([t["logits_train"], tr["logits"]]).astype(np.float32),
              "y_val": val.labels, "y_test": test.labels, "n_train": np.array(len(train)),
              "y_dropswap": np.concatenate([train.labels] * args.aug_copies).astype(np.int64),
              "teacher_dropswap": t["logits_aug"].astype(np.float32),
              "y_nongram": np.asarray(nongram["labels"], np.int64), "teacher_nongram": nongram["logits"]}
    for buckets, dim in SIZES:
        for split in ("train", "val", "test", "dropswap", "nongram"):
            arrays[f"ids_{split}_{buckets}"] = ids_from_hashes(hashes[split], buckets, args.max_ids)
        for key, init in inits.items():
            rows, filled = init.rows(buckets, dim)
            arrays[f"rows_{key}_{buckets}"], arrays[f"filled_{key}_{buckets}"] = rows, filled
    np.savez(out / "inputs.npz", **arrays)
    meta = {"transfer": info.get("transfer"), "dropswap_rows": len(t["aug_texts"]),
            "nongram_transfer": nongram_info.get("transfer"),
            "teacher_pytorch_test_accuracy": t["teacher_pytorch_test_accuracy"],
            "teacher_pytorch_val_accuracy": t["teacher_pytorch_val_accuracy"], "n_train": len(train),
            "init_words": len(inits["with"].words), "seconds": round(time.time() - t0, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta), flush=True)
    return 0


def train(args) -> int:
    import torch

    torch.set_num_threads(1)
    use_init, transfer, loss_name = VARIANTS[args.variant]
    out = args.cache / "ingredients"
    a = np.load(out / "inputs.npz")
    rows = []
    for seed in args.seeds:
        for buckets, dim in SIZES:
            rows.append(_train_one(a, args, seed, buckets, dim, use_init, transfer, loss_name, out))
            print(json.dumps(rows[-1]), flush=True)
            (out / f"rows-{args.variant}.json").write_text(json.dumps(rows, indent=1))
    return 0


def _train_one(a, args, seed: int, buckets: int, dim: int, use_init: bool, transfer: str | None,
               loss_name: str, out: Path) -> dict:
    """One student of one variant and size, trained from ``seed`` (its initial rows and the data order)."""
    import torch

    from edge_kd.distill.losses import build_loss
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, metric_value, predict, train_student
    from edge_kd.models.spec import save_state_dict
    from edge_kd.models.students.text import hashed_text_student

    t0, c0 = time.time(), time.process_time()
    torch.manual_seed(seed)
    student = hashed_text_student(buckets=buckets, dim=dim, num_classes=77, max_ids=args.max_ids)
    if use_init:
        key = "with" if transfer == "library" else "without"
        filled = torch.from_numpy(a[f"filled_{key}_{buckets}"])
        with torch.no_grad():
            student.embed.weight[filled] = torch.from_numpy(a[f"rows_{key}_{buckets}"][filled.numpy()])
            student.embed.weight[0].zero_()
    loss = build_loss("ce") if loss_name == "ce" else build_loss("hinton", temperature=1.0, alpha=0.5)
    cfg = TrainConfig(epochs=args.epochs, batch_size=256, lr=1e-2, weight_decay=1e-4, patience=4, seed=seed,
                      device="cpu", progress=False)
    n = len(a["y"]) if transfer == "library" else int(a["n_train"])
    ids, y, teacher = a[f"ids_train_{buckets}"][:n], a["y"][:n], a["teacher"][:n]
    if transfer in ("dropswap", "nongram"):
        ids = np.concatenate([ids, a[f"ids_{transfer}_{buckets}"]])
        y, teacher = np.concatenate([y, a[f"y_{transfer}"]]), np.concatenate([teacher, a[f"teacher_{transfer}"]])
    res = train_student(student, loss, DistillData((ids,), y, teacher),
                        EvalData((a[f"ids_val_{buckets}"],), a["y_val"]), cfg)
    acc = metric_value(predict(student, (a[f"ids_test_{buckets}"],)), a["y_test"], "accuracy")
    save_state_dict(student, out / f"student-{args.variant}-{buckets}x{dim}-seed{seed}.safetensors")
    return {"variant": args.variant, "seed": seed, "buckets": buckets, "dim": dim, "train_rows": int(len(y)),
            "best_val": res.best_metric, "best_epoch": res.best_epoch, "epochs": res.epochs_run,
            "test_accuracy": acc, "cpu_seconds": round(time.process_time() - c0, 1),
            "seconds": round(time.time() - t0, 1)}


def _mean_cell(values: list[float], teacher: float | None) -> str:
    """``mean ± sd`` over seeds (sample sd), the teacher share of the mean in brackets."""
    if not values:
        return "-"
    mean = statistics.fmean(values)
    cell = f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"
    return cell + (f" ({100 * mean / teacher:.1f}%)" if teacher else "")


def report(args) -> int:
    from edge_kd.pipeline import atomic_write_json, atomic_write_text

    out = args.cache / "ingredients"
    meta = json.loads((out / "meta.json").read_text())
    rows = [r for v in VARIANTS if (out / f"rows-{v}.json").is_file()
            for r in json.loads((out / f"rows-{v}.json").read_text())]
    teacher = meta["teacher_pytorch_test_accuracy"]
    tr = meta.get("transfer") or {}
    res = {"finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "meta": meta, "rows": rows,
           "epochs": args.epochs, "seeds": sorted({r.get("seed", 0) for r in rows})}
    atomic_write_json(RESULTS / "distill_ingredients.json", res)
    lines = ["# What each distillation ingredient buys: banking77 (77 intents), PyTorch", "",
             f"Measured {res['finished']} by `benchmarks/distill_ingredients.py` (prep, one process per variant side "
             "by side, report) on the shared 2-core development machine. Test accuracy on the 3,080 test rows in "
             f"PyTorch (fp32 students; % of the teacher's PyTorch test accuracy {teacher:.4f} in brackets). Same "
             f"optimiser, {args.epochs} epochs max with early stopping on the validation split, Hinton KD T=1 "
             f"alpha=0.5. Each cell: mean ± sample sd over seeds {res['seeds']} (the seed draws the student's "
             "initial rows and the data order; every variant uses the same seeds).", "",
             f"- teacher init: each bucket's row from the teacher's wordpiece input embeddings (mean over the pieces "
             f"of the {meta['init_words']:,} words of the teacher's vocabulary and the training texts, PCA to the "
             "student width, collisions averaged);",
             f"- transfer set: {tr.get('rows', 0):,} meaning-keeping copies of the {meta['n_train']:,} training "
             f"sentences ({tr.get('augment_copies', '-')} per sentence; word dropout {tr.get('word_dropout', '-')}, "
             f"neighbour-word substitution {tr.get('substitute', '-')}, n-gram sampling {tr.get('ngram_sample', '-')}; "
             f"{tr.get('dropped_duplicates', 0):,} duplicates and {tr.get('dropped_held_out', 0)} copies equal to a "
             f"validation/test sentence dropped), labelled by the teacher in {tr.get('teacher_cpu_seconds', '-')} "
             f"CPU-seconds ({tr.get('teacher_rows_per_cpu_second', '-')} sentences per CPU-second, one thread);",
             f"- dropout/swap copies (KD + dropout/swap copies): the simpler transfer rows of the earlier distill "
             f"benchmark ({meta.get('dropswap_rows', 0):,} rows: every training sentence twice, word dropout 0.15 and "
             "one adjacent swap, no dedup), labelled by the same teacher;",
             f"- no n-gram cuts: the library's transfer set with ngram_sample 0, its default since this comparison "
             f"({(meta.get('nongram_transfer') or {}).get('rows', 0):,} rows);",
             "- the hard-label student has both ingredients (its copies keep their sentence's label): only the loss "
             "differs from KD + both.", "",
             "| buckets x dim | int8 table | " + " | ".join(NAMES[v] for v in VARIANTS) + " |",
             "|---|---:|" + "---:|" * len(VARIANTS)]
    for buckets, dim in SIZES:
        cells = []
        for v in VARIANTS:
            accs = [r["test_accuracy"] for r in rows if r["variant"] == v and r["buckets"] == buckets]
            cells.append(_mean_cell(accs, teacher))
        lines.append(f"| {buckets}x{dim} | {(buckets + 1) * dim / 1024:.0f} KiB | " + " | ".join(cells) + " |")
    lines += ["", "Validation accuracy, best epoch (what a size search would see), mean ± sd over the same seeds:", "",
              "| buckets x dim | " + " | ".join(NAMES[v] for v in VARIANTS) + " |", "|---|" + "---:|" * len(VARIANTS)]
    for buckets, dim in SIZES:
        cells = []
        for v in VARIANTS:
            vals = [r["best_val"] for r in rows if r["variant"] == v and r["buckets"] == buckets]
            cells.append(_mean_cell(vals, None))
        lines.append(f"| {buckets}x{dim} | " + " | ".join(cells) + " |")
    atomic_write_text(RESULTS / "distill_ingredients.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("prep", "train", "report"))
    p.add_argument("variant", nargs="?", choices=tuple(VARIANTS))
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "distill-bench")
    p.add_argument("--aug-copies", type=int, default=2)
    p.add_argument("--max-ids", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", default="0,1,2,3,4",
                   help="train: one student per seed (initial rows and data order); report: mean and spread")
    args = p.parse_args()
    args.seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    if args.step == "train" and not args.variant:
        p.error("train needs a variant: " + ", ".join(VARIANTS))
    return {"prep": prep, "train": train, "report": report}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
