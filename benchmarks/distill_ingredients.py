"""What each ingredient of the distill stage buys, in PyTorch, on banking77: teacher-initialized rows
(``edge_kd.distill.teacher_init``) and the transfer set (``edge_kd.distill.transfer``), on and off, for
hashed n-gram students of three sizes, trained side by side in one run.

A lean companion of benchmarks/distill.py (which also exports every student and judges it through each
runtime): it prepares the inputs once (``prep``: the transfer set labelled by the teacher, the hashed ids,
the teacher-initialized rows, all cached as .npz), then trains one variant per process (``train``), so
the variants can run side by side on a shared machine, and writes one table (``report``).

    python benchmarks/distill_ingredients.py prep
    for v in kd kd+init kd+transfer distilled hard-label; do python benchmarks/distill_ingredients.py train $v & done; wait
    python benchmarks/distill_ingredients.py report
"""
from __future__ import annotations

import argparse
import json
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
VARIANTS = {"kd": (False, False, "hinton"), "kd+init": (True, False, "hinton"), "kd+transfer": (False, True, "hinton"),
            "distilled": (True, True, "hinton"), "hard-label": (True, True, "ce")}
NAMES = {"kd": "KD only", "kd+init": "KD + teacher init", "kd+transfer": "KD + transfer set",
         "distilled": "KD + both (shipped)", "hard-label": "hard labels + both"}


def prep(args) -> int:
    import torch

    from distill import transfer_set
    from distill_teacher import teacher_logits
    from edge_kd.distill.teacher_init import HashedInit
    from edge_kd.models.minilm import get_tokenizer
    from edge_kd.preprocess.text import TextPreprocessSpec, hash_texts, ids_from_hashes

    torch.set_num_threads(1)
    t0 = time.time()
    t = teacher_logits(args.data, args.cache, aug_copies=0, threads=1, log=print)
    train, val, test = t["train"], t["val"], t["test"]
    info: dict = {}
    tr = transfer_set(t, argparse.Namespace(aug_copies=args.aug_copies, cache=args.cache), info)
    base = TextPreprocessSpec(buckets=1, max_ids=args.max_ids)
    texts = list(train.texts) + tr["texts"]
    hashes = {"train": hash_texts(base, texts), "val": hash_texts(base, val.texts), "test": hash_texts(base, test.texts)}
    emb = t["model"].encoder.get_input_embeddings().weight.detach().float().numpy()
    inits = {"with": HashedInit.from_embeddings(base, emb, get_tokenizer(), texts),
             "without": HashedInit.from_embeddings(base, emb, get_tokenizer(), train.texts)}
    out = args.cache / "ingredients"
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"y": np.concatenate([train.labels, tr["labels"]]).astype(np.int64),
              "teacher": np.concatenate([t["logits_train"], tr["logits"]]).astype(np.float32),
              "y_val": val.labels, "y_test": test.labels, "n_train": np.array(len(train))}
    for buckets, dim in SIZES:
        for split in ("train", "val", "test"):
            arrays[f"ids_{split}_{buckets}"] = ids_from_hashes(hashes[split], buckets, args.max_ids)
        for key, init in inits.items():
            rows, filled = init.rows(buckets, dim)
            arrays[f"rows_{key}_{buckets}"], arrays[f"filled_{key}_{buckets}"] = rows, filled
    np.savez(out / "inputs.npz", **arrays)
    meta = {"transfer": info.get("transfer"), "teacher_pytorch_test_accuracy": t["teacher_pytorch_test_accuracy"],
            "teacher_pytorch_val_accuracy": t["teacher_pytorch_val_accuracy"], "n_train": len(train),
            "init_words": len(inits["with"].words), "seconds": round(time.time() - t0, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta), flush=True)
    return 0


def train(args) -> int:
    import torch

    from edge_kd.distill.losses import build_loss
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, metric_value, predict, train_student
    from edge_kd.models.students.text import hashed_text_student

    torch.set_num_threads(1)
    use_init, use_transfer, loss_name = VARIANTS[args.variant]
    out = args.cache / "ingredients"
    a = np.load(out / "inputs.npz")
    n = len(a["y"]) if use_transfer else int(a["n_train"])
    rows = []
    for buckets, dim in SIZES:
        t0, c0 = time.time(), time.process_time()
        student = hashed_text_student(buckets=buckets, dim=dim, num_classes=77, max_ids=args.max_ids)
        if use_init:
            key = "with" if use_transfer else "without"
            filled = torch.from_numpy(a[f"filled_{key}_{buckets}"])
            with torch.no_grad():
                student.embed.weight[filled] = torch.from_numpy(a[f"rows_{key}_{buckets}"][filled.numpy()])
                student.embed.weight[0].zero_()
        loss = build_loss("ce") if loss_name == "ce" else build_loss("hinton", temperature=1.0, alpha=0.5)
        cfg = TrainConfig(epochs=args.epochs, batch_size=256, lr=1e-2, weight_decay=1e-4, patience=4, seed=0,
                          device="cpu", progress=False)
        res = train_student(student, loss, DistillData((a[f"ids_train_{buckets}"][:n],), a["y"][:n], a["teacher"][:n]),
                            EvalData((a[f"ids_val_{buckets}"],), a["y_val"]), cfg)
        acc = metric_value(predict(student, (a[f"ids_test_{buckets}"],)), a["y_test"], "accuracy")
        from edge_kd.models.spec import save_state_dict

        save_state_dict(student, out / f"student-{args.variant}-{buckets}x{dim}.safetensors")
        rows.append({"variant": args.variant, "buckets": buckets, "dim": dim, "train_rows": int(n),
                     "best_val": res.best_metric, "best_epoch": res.best_epoch, "epochs": res.epochs_run,
                     "test_accuracy": acc, "cpu_seconds": round(time.process_time() - c0, 1),
                     "seconds": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
        (out / f"rows-{args.variant}.json").write_text(json.dumps(rows, indent=1))
    return 0


def report(args) -> int:
    from edge_kd.pipeline import atomic_write_json, atomic_write_text

    out = args.cache / "ingredients"
    meta = json.loads((out / "meta.json").read_text())
    rows = [r for v in VARIANTS if (out / f"rows-{v}.json").is_file()
            for r in json.loads((out / f"rows-{v}.json").read_text())]
    teacher = meta["teacher_pytorch_test_accuracy"]
    tr = meta.get("transfer") or {}
    res = {"finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "meta": meta, "rows": rows,
           "epochs": args.epochs}
    atomic_write_json(RESULTS / "distill_ingredients.json", res)
    lines = ["# What each distillation ingredient buys: banking77 (77 intents), PyTorch", "",
             f"Measured {res['finished']} by `benchmarks/distill_ingredients.py` (prep, one process per variant side "
             "by side, report) on the shared 2-core development machine. Test accuracy on the 3,080 test rows in "
             f"PyTorch (fp32 students; % of the teacher's PyTorch test accuracy {teacher:.4f} in brackets). Same "
             f"optimiser, {args.epochs} epochs max with early stopping on the validation split, Hinton KD T=1 "
             "alpha=0.5, seed 0 for every cell.", "",
             f"- teacher init: each bucket's row from the teacher's wordpiece input embeddings (mean over the pieces "
             f"of the {meta['init_words']:,} words of the teacher's vocabulary and the training texts, PCA to the "
             "student width, collisions averaged);",
             f"- transfer set: {tr.get('rows', 0):,} meaning-keeping copies of the {meta['n_train']:,} training "
             f"sentences ({tr.get('augment_copies', '-')} per sentence; word dropout {tr.get('word_dropout', '-')}, "
             f"neighbour-word substitution {tr.get('substitute', '-')}, n-gram sampling {tr.get('ngram_sample', '-')}; "
             f"{tr.get('dropped_duplicates', 0):,} duplicates and {tr.get('dropped_held_out', 0)} copies equal to a "
             f"validation/test sentence dropped), labelled by the teacher in {tr.get('teacher_cpu_seconds', '-')} "
             f"CPU-seconds ({tr.get('teacher_rows_per_cpu_second', '-')} sentences per CPU-second, one thread);",
             "- the hard-label student has both ingredients (its copies keep their sentence's label): only the loss "
             "differs from the shipped one.", "",
             "| buckets x dim | int8 table | " + " | ".join(NAMES[v] for v in VARIANTS) + " |",
             "|---|---:|" + "---:|" * len(VARIANTS)]
    for buckets, dim in SIZES:
        cells = []
        for v in VARIANTS:
            r = next((r for r in rows if r["variant"] == v and r["buckets"] == buckets), None)
            cells.append("-" if r is None else f"{r['test_accuracy']:.4f} ({100 * r['test_accuracy'] / teacher:.1f}%)")
        lines.append(f"| {buckets}x{dim} | {(buckets + 1) * dim / 1024:.0f} KiB | " + " | ".join(cells) + " |")
    lines += ["", "Validation accuracy (what a size search would see):", "",
              "| buckets x dim | " + " | ".join(NAMES[v] for v in VARIANTS) + " |", "|---|" + "---:|" * len(VARIANTS)]
    for buckets, dim in SIZES:
        cells = []
        for v in VARIANTS:
            r = next((r for r in rows if r["variant"] == v and r["buckets"] == buckets), None)
            cells.append("-" if r is None else f"{r['best_val']:.4f} (epoch {r['best_epoch']})")
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
    args = p.parse_args()
    if args.step == "train" and not args.variant:
        p.error("train needs a variant: " + ", ".join(VARIANTS))
    return {"prep": prep, "train": train, "report": report}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
