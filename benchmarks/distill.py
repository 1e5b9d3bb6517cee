"""Distillation to a size budget on real data (banking77 intents), measured through the runtimes.

Side by side, in one run: the fp32 teacher (all-MiniLM-L6-v2 + head), the hashed n-gram student
trained on hard labels, the same student distilled from the teacher with both ingredients of the
distill stage (rows initialized from the teacher's wordpiece embeddings, ``edge_kd.distill.teacher_init``;
a transfer set of meaning-keeping copies labelled by the teacher, ``edge_kd.distill.transfer``), and the
ablations (KD alone, KD + teacher init, KD + transfer set) so the gain of each ingredient is measured;
each student sized by
``edge_kd.distill.sizing`` to a bundle budget (int8 artifact + preprocessing spec with the label
names), exported per target profile, and judged by accuracy THROUGH THE RUNTIME
(``edge_kd.bench.evaluate_artifact``) and p50 latency (``edge_kd.bench.benchmark_artifact``).

    .venv/bin/python benchmarks/distill.py                       # ../shared/data, all targets
    .venv/bin/python benchmarks/distill.py --targets ort-mobile --budgets 1MiB,256KiB --epochs 15

Writes benchmarks/results/distill.json and distill.md (rewritten after every row, so a long run
that is stopped still leaves the rows it finished). Teacher outputs, sizing decisions and trained
students are cached under --cache, so a re-run only redoes what changed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from edge_kd.errors import InputError  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
EMBEDDING_NOTE = (
    "Embedding tables are int8 on all three runtimes ([quantization] embeddings = \"int8\"): ExecuTorch "
    "reads int8 rows + an fp16 scale per row with embedding_byte, LiteRT's EMBEDDING_LOOKUP reads int8 rows "
    "(the flatbuffer adds a float32 scale and an int64 zero point per row), ONNX Runtime gathers from a QDQ "
    "int8 table (one scale). The padding mask is a one-byte-per-row int8 lookup on every runtime. So the "
    "sizing search gives the three runtimes about the same bucket counts (LiteRT slightly fewer).")


class _Memo(Exception):
    def __init__(self, row: dict):
        super().__init__("memoised")
        self.row = row


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def export_teacher(teacher, target, out: Path, max_len: int, name: str) -> Path:
    from edge_kd.export import export_model
    from edge_kd.models.minilm import tokenize

    existing = [p for p in out.glob(f"{name}.*") if p.suffix.lstrip(".") == target.runtime.formats[-1]]
    if existing:
        return existing[0]
    ids, mask = tokenize(["where is my card?"], max_len)
    import torch

    result = export_model(teacher, (torch.from_numpy(ids), torch.from_numpy(mask)), target, out, name=name,
                          input_names=["input_ids", "attention_mask"])
    return result.primary


def export_student(model, example, target, calib, out: Path, name: str, int8: bool) -> tuple[Path, str]:
    existing = [p for p in out.glob(f"{name}*") if p.suffix.lstrip(".") == target.runtime.formats[-1]]
    if existing:
        return existing[0], json.loads((out / f"{name}.how").read_text())["how"]
    how = "fp32"
    path = None
    if int8 and target.quantization.mode == "int8":
        try:
            from edge_kd.quantize import quantize_model

            result = quantize_model(model, example, target, calib, out / f"{name}-q", method="minmax",
                                    name=name, max_fallback_layers=0, ship="int8")
            path, how = result.primary, "int8 (minmax)"
        except InputError as exc:
            log(f"int8 export failed for {target.name}: {exc}; shipping fp32")
    if path is None:
        from edge_kd.export import export_model

        path = export_model(model, example, target, out / f"{name}-f", name=name).primary
    final = out / f"{name}{''.join(path.suffixes[-1:])}"
    final.write_bytes(path.read_bytes())
    (out / f"{name}.how").write_text(json.dumps({"how": how}))
    return final, how


def transfer_set(t: dict, args, report: dict) -> dict:
    """The distill stage's transfer set over banking77's training split (``edge_kd.distill.transfer``):
    ``--aug-copies`` meaning-keeping copies, deduplicated against train/val/test, labelled by the teacher
    once (cached). Returns texts, labels and the teacher's logits; records counts and CPU time."""
    from edge_kd.distill.cache import TeacherCache, arrays_fingerprint, weights_fingerprint
    from edge_kd.distill.transfer import build_transfer_set, teacher_neighbours, teacher_soft_targets
    from edge_kd.models.teachers import Teacher
    from edge_kd.recipe import TransferConfig

    train, val, test = t["train"], t["val"], t["test"]
    if not args.aug_copies:
        report["transfer"] = {"rows": 0}
        return {"texts": [], "labels": np.zeros(0, np.int64), "logits": np.zeros((0, train.num_classes), np.float32)}
    # ``args.transfer``: other [distill.transfer] settings (benchmarks/distill_ingredients.py compares them).
    cfg = TransferConfig(augment_copies=args.aug_copies, **getattr(args, "transfer", {}))
    teacher = Teacher("minilm-l6", t["model"], (), None,  # type: ignore[arg-type]
                      {"kind": "tokenizer", "tokenizer": "minilm", "max_len": t["max_len"],
                       "name": f"minilm-l6-{t['max_len']}"}, list(train.label_names))
    t0 = time.time()
    ts = build_transfer_set(train.texts, train.labels, cfg, seed=0,
                            neighbours=teacher_neighbours(teacher, train.texts, cfg.neighbours),
                            exclude=list(val.texts) + list(test.texts))
    log(f"transfer set: {len(ts):,} rows ({time.time() - t0:.1f}s) {ts.stats}")
    cache = TeacherCache(args.cache / "teacher-outputs")
    key = cache.key(weights_fingerprint(t["model"]), arrays_fingerprint(np.array(ts.texts, dtype=object)),
                    "transfer-logits")
    cached = cache.has(key)
    spent: list[float] = []

    def batches():
        out, cpu = teacher_soft_targets(teacher, ts.texts)
        spent.append(cpu)
        yield out

    logits = np.asarray(cache.get_or_compute(key, batches, n_rows=len(ts), meta={"split": "transfer"}), np.float32)
    meta_path = cache.root / f"{key}.json"
    meta = json.loads(meta_path.read_text())
    if spent:  # keep the measured cost beside the cached outputs, so later runs can still report it
        meta["teacher_cpu_seconds"] = spent[0]
        meta_path.write_text(json.dumps(meta))
    cpu = spent[0] if spent else meta.get("teacher_cpu_seconds")
    report["transfer"] = {**ts.stats, "augment_copies": cfg.augment_copies, "word_dropout": cfg.word_dropout,
                          "substitute": cfg.substitute, "ngram_sample": cfg.ngram_sample,
                          "teacher_outputs_cached": cached, "teacher_cpu_seconds": round(cpu, 1) if cpu else None,
                          "teacher_rows_per_cpu_second": round(len(ts) / cpu, 1) if cpu else None}
    log(f"transfer set labelled by the teacher: {report['transfer']}")
    return {"texts": list(ts.texts), "labels": ts.labels, "logits": logits}


def write_results(report: dict) -> None:
    from edge_kd.pipeline import atomic_write_json, atomic_write_text

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = report.get("results_stem", "distill")
    atomic_write_json(RESULTS / f"{stem}.json", report)
    t = report.get("teacher", {})
    lines = [
        "# Distillation to a size budget: banking77 intents (77 classes)", "",
        f"Measured {report['finished'] or 'IN PROGRESS'} on {report['machine']}; command: `{report['command']}`.",
        "Accuracy is measured THROUGH THE RUNTIME on the full test set (3,080 rows) unless marked; bundle = "
        "artifact + preprocessing spec JSON (hash settings + 77 label names). p50 = `benchmark_artifact` with "
        "the profile's thread count, pinned core. All rows come from this one run unless marked (memoised).", "",
        f"Teacher: all-MiniLM-L6-v2 + linear head fitted on cached embeddings (head-only; the encoder is not "
        f"fine-tuned): PyTorch test accuracy {t.get('pytorch_test_accuracy', float('nan')):.4f}, "
        f"val {t.get('pytorch_val_accuracy', float('nan')):.4f}. Student: hashed word 1-2-grams + char "
        f"3-grams (FNV-1a), embedding dim per budget {report['config']['dims']}, masked mean, linear head; "
        "knob = buckets (largest that fits, found by edge_kd.distill.sizing with real int8 exports).",
        "Hard-label and distilled students use the same rows (train + the transfer set's copies, with their "
        "sentence's label for CE), the same teacher-initialized rows, epochs and optimiser; only the loss differs "
        f"(CE vs Hinton KD, T={report['config']['temperature']}, alpha={report['config']['alpha']}). Ablation "
        "rows drop one or both ingredients (table below).", "",
        "| target | model | budget | buckets x dim | params | bundle bytes | fits | artifact | accuracy (runtime) "
        "| % of teacher (runtime) | accuracy (PyTorch) | p50 ms | teacher p50 / p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        def f(key, fmt="{:.4f}"):
            v = r.get(key)
            return fmt.format(v) if isinstance(v, (int, float)) else (v if v is not None else "-")
        lines.append(f"| {r['target']} | {r['model']}{' (memoised)' if r.get('memoised') else ''} | {r.get('budget', '-')} | {f('buckets', '{}')}{'x' + str(r['dim']) if r.get('dim') else ''} | "
                     f"{f('params', '{:,}')} | {f('bundle_bytes', '{:,}')} | {f('fits', '{}')} | {r.get('how', '-')} | "
                     f"{f('runtime_accuracy')} | {f('pct_of_teacher', '{:.2f}%')} | {f('pytorch_accuracy')} | "
                     f"{f('p50_ms', '{:.3f}')} | {f('speedup', '{:.0f}x')} |")
    lines += ingredient_table(report)
    lines += ["", "## Targets from the issues", ""]
    for c in report.get("checks", []):
        lines.append(f"- {'PASS' if c['passed'] else 'FAIL'}: {c['name']}: {c['detail']}")
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")


INGREDIENTS = (("kd", "KD only"), ("kd+init", "KD + teacher init"), ("kd+transfer", "KD + transfer set"),
               ("distilled", "KD + both (shipped)"), ("hard-label", "hard labels + both"))


def ingredient_table(report: dict) -> list[str]:
    """Runtime accuracy per ingredient, side by side (same student size, same run)."""
    rows = [r for r in report["rows"] if r.get("mode") and r.get("pytorch_accuracy") is not None]
    ablated = {(r["target"], r["budget"]) for r in rows if r["model"].startswith("ablation")}
    rows = [r for r in rows if (r["target"], r["budget"]) in ablated]
    if not rows:
        return []
    cells = {(r["target"], r["budget"], r["mode"]): r for r in rows}
    t = report.get("transfer", {})
    teacher_acc = report.get("teacher", {}).get("pytorch_test_accuracy") or float("nan")
    lines = ["", "## What each ingredient buys", "",
             "Test accuracy in PyTorch of the same-size students trained in this run (% of the teacher's "
             f"PyTorch accuracy {teacher_acc:.4f} in brackets; the shipped and hard-label students' accuracy "
             "through the runtime is in the table above).", "",
             f"Teacher init: each hashed bucket's row starts as the mean of the teacher's wordpiece input "
             f"embeddings of the words/n-grams that hash into it, projected by PCA to the student width "
             f"({report.get('teacher_init', {}).get('words', '?'):,} words). Transfer set: "
             f"{t.get('rows', 0):,} meaning-keeping copies of the training sentences (word dropout "
             f"{t.get('word_dropout', '-')}, neighbour-word substitution {t.get('substitute', '-')}, n-gram sampling "
             f"{t.get('ngram_sample', '-')}) labelled by the teacher. The hard-label student has both ingredients "
             "(its copies keep their sentence's label); only the loss differs from the shipped one.", "",
             "| target | budget | buckets x dim | " + " | ".join(name for _, name in INGREDIENTS) + " |",
             "|---|---|---|" + "---:|" * len(INGREDIENTS)]
    keys = sorted({(r["target"], r["budget"]) for r in rows}, key=lambda k: (k[0], -_budget_bytes(k[1])))
    for target, budget in keys:
        ref = next(r for r in rows if r["target"] == target and r["budget"] == budget)
        vals = []
        for mode, _ in INGREDIENTS:
            r = cells.get((target, budget, mode))
            vals.append("-" if r is None else f"{r['pytorch_accuracy']:.4f} ({100 * r['pytorch_accuracy'] / teacher_acc:.1f}%)")
        lines.append(f"| {target} | {budget} | {ref['buckets']}x{ref['dim']} | " + " | ".join(vals) + " |")
    return lines


def _budget_bytes(text: str) -> int:
    from edge_kd.units import parse_bytes

    return parse_bytes(text)


def checks(report: dict) -> list[dict]:
    out = []
    rows = report["rows"]
    for target in sorted({r["target"] for r in rows}):
        tr = [r for r in rows if r["target"] == target]
        teacher = next((r for r in tr if r["model"] == "teacher fp32"), None)
        for budget, needs in (("1MiB", ((99.5, "#13"), (100.0, "#15"))), ("256KiB", ((98.5, "#13"), (99.5, "#15"))),
                              ("64KiB", ((97.0, "#15"),))):
            d = next((r for r in tr if r["model"] == "student distilled" and r.get("budget") == budget), None)
            h = next((r for r in tr if r["model"] == "student hard-label" and r.get("budget") == budget), None)
            if d is None or d.get("pct_of_teacher") is None:
                continue
            for need, issue in needs:
                out.append({"name": f"{target}: bundle <= {budget} keeps >= {need}% of teacher accuracy ({issue})",
                            "passed": bool(d["fits"] and d["pct_of_teacher"] >= need),
                            "detail": f"{d['bundle_bytes']:,} bytes, {d['pct_of_teacher']:.2f}% "
                                      f"({d['runtime_accuracy']:.4f} vs {teacher['runtime_accuracy']:.4f})"})
            if h is not None and h.get("runtime_accuracy") is not None:
                out.append({"name": f"{target} {budget}: distilled beats hard-label (same student)",
                            "passed": d["runtime_accuracy"] > h["runtime_accuracy"],
                            "detail": f"{d['runtime_accuracy']:.4f} vs {h['runtime_accuracy']:.4f}"})
            if d.get("speedup") is not None:
                out.append({"name": f"{target} {budget}: >= 100x lower p50 than the fp32 teacher",
                            "passed": d["speedup"] >= 100,
                            "detail": f"{d['p50_ms']:.3f} ms vs {teacher['p50_ms']:.3f} ms = {d['speedup']:.0f}x"})
    return out


def merge(stems: list[str]) -> int:
    """One results file from parallel processes of one run (each over its own targets)."""
    parts = [json.loads((RESULTS / f"{stem}.json").read_text()) for stem in stems]
    report = dict(parts[0])
    report["command"] = " & ".join(p["command"] for p in parts) + " (parallel processes, merged)"
    report["started"] = min(p["started"] for p in parts)
    report["finished"] = max((p["finished"] or "") for p in parts) if all(p["finished"] for p in parts) else None
    report["rows"] = [r for p in parts for r in p["rows"]]
    report["notes"] = list(dict.fromkeys(n for p in parts for n in p["notes"]))
    report["results_stem"] = "distill"
    report["checks"] = checks(report)
    write_results(report)
    for stem in stems:
        if stem != "distill":
            for ext in ("json", "md"):
                (RESULTS / f"{stem}.{ext}").unlink(missing_ok=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder holding banking77/")
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "distill-bench")
    p.add_argument("--targets", default="ort-mobile,tflite-int8,android-arm64-xnnpack")
    p.add_argument("--budgets", default="1MiB,256KiB,64KiB")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--dims", default="1MiB=64,256KiB=32,64KiB=16",
                   help="embedding dim per budget (the size search runs over buckets at that dim)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--max-ids", type=int, default=128)
    # T and alpha were chosen on the validation split (not test) with a side sweep on the 256KiB student.
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--aug-copies", type=int, default=2,
                   help="transfer set: meaning-keeping copies of train the teacher labels ([distill.transfer] "
                        "augment_copies)")
    p.add_argument("--ablations", default="kd,kd+init,kd+transfer",
                   help="ingredient ablations measured beside the full student (kd = no teacher init, no "
                        "transfer set); empty for none")
    p.add_argument("--ablation-targets", default="ort-mobile",
                   help="targets whose student sizes get the ingredient ablations")
    p.add_argument("--ablations-runtime", action="store_true",
                   help="also export the ablation students and judge them through the runtime (default: PyTorch)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calib-samples", type=int, default=256)
    p.add_argument("--reuse-teacher-rows", action="store_true",
                   help="reuse the teacher's runtime accuracy/latency from an earlier run (faster; the "
                        "latency ratios are then not measured side by side)")
    p.add_argument("--reuse-teacher-accuracy", action="store_true",
                   help="take the fp32 teacher's accuracy through the runtime from an earlier run of the same "
                        "exported file (sha256-matched; the answer is deterministic); its p50 is still measured")
    p.add_argument("--eval-rows", type=int, default=0, help="test rows judged through the runtime (0 = all)")
    p.add_argument("--results-stem", default="distill",
                   help="write results/<stem>.json/.md (parallel processes over disjoint --targets, then --merge)")
    p.add_argument("--merge", default="",
                   help="comma-separated result stems of parallel processes started together: one distill.json/.md")
    args = p.parse_args()
    if args.merge:
        return merge(args.merge.split(","))
    try:
        return run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    import torch

    from distill_teacher import teacher_logits
    from edge_kd.bench import benchmark_artifact, evaluate_artifact
    from edge_kd.distill.losses import build_loss
    from edge_kd.distill.sizing import choose_student, default_measurer
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, metric_value, predict, train_student
    from edge_kd.models.minilm import tokenize
    from edge_kd.models.students import make_family
    from edge_kd.preprocess.text import TextPreprocessSpec, hash_texts, ids_from_hashes
    from edge_kd.targets import load_target
    from edge_kd.units import parse_bytes

    torch.set_num_threads(args.threads)
    started = time.time()
    report = {"command": "python " + " ".join(sys.argv), "machine": f"{platform.machine()} {platform.system()}, "
              f"torch threads {args.threads}, shared CPU", "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "finished": None, "config": vars(args) | {"data": str(args.data), "cache": str(args.cache)},
              "rows": [], "notes": [], "results_stem": args.results_stem}
    t = teacher_logits(args.data, args.cache, aug_copies=0, threads=args.threads, log=log)
    train, val, test = t["train"], t["val"], t["test"]
    labels = tuple(train.label_names)
    transfer = transfer_set(t, args, report)
    report["teacher"] = {"pytorch_test_accuracy": t["teacher_pytorch_test_accuracy"],
                         "pytorch_val_accuracy": t["teacher_pytorch_val_accuracy"], "finetune": {
                             k: v for k, v in t["finetune"].items() if isinstance(v, (int, float, str))}}
    report["notes"] += [
        f"Distillation settings T={args.temperature}, alpha={args.alpha} were chosen on the validation split "
        "(never on test) with a side sweep on the 256KiB ORT student (T in 1/2/4, alpha in 0.3..0.9); "
        "T=4/alpha=0.9 was clearly worse there.",
        EMBEDDING_NOTE,
        "Sizing: each decision is a real export of the candidate (edge_kd.distill.sizing.default_measurer); "
        "decisions are cached in the --cache folder and every shipped artifact's bytes above are re-measured.",
    ]
    write_results(report)

    base = TextPreprocessSpec(buckets=1, max_ids=args.max_ids, labels=labels)
    t0 = time.time()
    n_train = len(train)
    train_texts = list(train.texts) + transfer["texts"]
    hashes = {"train": hash_texts(base, train_texts), "val": hash_texts(base, val.texts), "test": hash_texts(base, test.texts)}
    log(f"hashed n-gram features of {sum(len(h) for h in hashes.values())} texts ({time.time() - t0:.1f}s)")
    y_train = np.concatenate([train.labels, transfer["labels"]]).astype(np.int64)
    teacher_train = np.concatenate([t["logits_train"], transfer["logits"]]).astype(np.float32)
    # Identifies the teacher by its outputs on train (so exports and teacher measurements are reused
    # across runs that differ only in the students).
    teacher_fp = hashlib.sha256(np.asarray(t["logits_train"]).astype(np.float32).tobytes()).hexdigest()[:12]
    transfer_fp = hashlib.sha256("\x00".join(transfer["texts"]).encode()).hexdigest()[:8]
    from edge_kd.distill.teacher_init import HashedInit
    from edge_kd.models.minilm import get_tokenizer

    t0 = time.time()
    emb = t["model"].encoder.get_input_embeddings().weight.detach().float().numpy()
    inits = {"with": HashedInit.from_embeddings(base, emb, get_tokenizer(), train_texts),
             "without": HashedInit.from_embeddings(base, emb, get_tokenizer(), train.texts)}
    report["teacher_init"] = {"words": len(inits["with"].words), "features": int(len(inits["with"].feature_hashes)),
                              "seconds": round(time.time() - t0, 1)}
    log(f"teacher init: {report['teacher_init']}")
    # Calibration rows: stratified by intent (the training file is grouped by label, so its first rows
    # would calibrate on two or three intents only).
    from edge_kd.data import calibration_sample

    calib_idx = calibration_sample(train, args.calib_samples, seed=0)
    eval_idx = np.arange(len(test)) if not args.eval_rows else np.random.default_rng(0).permutation(len(test))[:args.eval_rows]

    dims = {k.strip(): int(v) for k, v in (item.split("=") for item in args.dims.split(","))}

    def family_for(dim: int):
        return make_family("text_hashed", num_classes=len(labels), dim=dim, max_ids=args.max_ids,
                           low=256, high=262144, step=256)

    measure = default_measurer()
    trained: dict[tuple[int, int, str], tuple] = {}

    def student_for(buckets: int, dim: int, mode: str):
        """``mode``: "hard-label" (CE; teacher init and transfer rows as the full student), "distilled"
        (KD + teacher init + transfer set) or an ablation "kd", "kd+init", "kd+transfer"."""
        if (buckets, dim, mode) in trained:
            return trained[(buckets, dim, mode)]
        family = family_for(dim)
        use_init = mode in ("hard-label", "distilled", "kd+init")
        use_transfer = mode in ("hard-label", "distilled", "kd+transfer")
        rows = len(train_texts) if use_transfer else n_train
        ids_tr = ids_from_hashes(hashes["train"][:rows], buckets, args.max_ids)
        ids_va = ids_from_hashes(hashes["val"], buckets, args.max_ids)
        model = family.build(buckets)
        if use_init:
            inits["with" if use_transfer else "without"].apply(model)
        loss = build_loss("ce") if mode == "hard-label" else build_loss("hinton", temperature=args.temperature,
                                                                        alpha=args.alpha)
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=1e-4, patience=args.patience,
                          seed=0, device="cpu", progress=False)
        # The checkpoint folder names everything the student depends on, incl. the teacher's outputs.
        ck = args.cache / "students" / (f"b{buckets}-d{dim}-m{args.max_ids}-{mode}-e{args.epochs}-bs{args.batch_size}"
                                        f"-lr{args.lr}-p{args.patience}-T{args.temperature}-a{args.alpha}"
                                        f"-t{teacher_fp}" + (f"-x{transfer_fp}" if use_transfer else ""))
        t1 = time.time()
        res = train_student(model, loss, DistillData((ids_tr,), y_train[:rows], teacher_train[:rows]),
                            EvalData((ids_va,), val.labels), cfg, checkpoint_dir=ck, resume=True)
        ids_te = ids_from_hashes(hashes["test"], buckets, args.max_ids)
        acc = metric_value(predict(model, (ids_te,)), test.labels, "accuracy")
        log(f"student {mode} buckets={buckets} dim={dim}: val {res.best_metric:.4f} @ {res.best_epoch}/{res.epochs_run}, "
            f"test (PyTorch) {acc:.4f} ({time.time() - t1:.0f}s)")
        trained[(buckets, dim, mode)] = (model.eval(), acc, res, ids_te, ck.name)
        return trained[(buckets, dim, mode)]

    sizing_cache = args.cache / "sizing.json"
    sizing_memo = json.loads(sizing_cache.read_text()) if sizing_cache.is_file() else {}
    art_root = args.cache / "artifacts"
    for target_name in [s.strip() for s in args.targets.split(",") if s.strip()]:
        base_target = load_target(target_name)
        out = art_root / target_name
        # -- teacher in this runtime (its row is memoised: exporting and judging MiniLM takes minutes)
        memo_path = args.cache / "teacher_rows.json"
        teacher_memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
        memo_key = f"{target_name}|{len(eval_idx)}|{teacher_fp}"
        try:
            if args.reuse_teacher_rows and memo_key in teacher_memo:
                raise _Memo(teacher_memo[memo_key])
            t1 = time.time()
            tpath = export_teacher(t["model"], base_target, out, t["max_len"], f"teacher-{teacher_fp}")
            acc_path = args.cache / "teacher_accuracy.json"
            acc_memo = json.loads(acc_path.read_text()) if acc_path.is_file() else {}
            acc_key = f"{hashlib.sha256(tpath.read_bytes()).hexdigest()}|{len(eval_idx)}"
            if args.reuse_teacher_accuracy and acc_key in acc_memo:
                # The same file on the same rows: the runtime's answer is deterministic; p50 is measured below.
                ev = {"accuracy": acc_memo[acc_key]}
                report["notes"].append(f"{target_name}: the fp32 teacher's accuracy through the runtime is reused "
                                       f"from an earlier run of the same exported file (sha256 {acc_key[:12]}..., "
                                       f"{len(eval_idx)} rows); its p50 is measured in this run")
            else:
                ids, mask = tokenize([test.texts[i] for i in eval_idx], t["max_len"])
                ev = evaluate_artifact(tpath, [((ids[j:j + 1], mask[j:j + 1]), int(test.labels[i]))
                                               for j, i in enumerate(eval_idx)], threads=base_target.runtime.threads)
                acc_memo[acc_key] = ev["accuracy"]
                acc_path.write_text(json.dumps(acc_memo, indent=1))
            bench = benchmark_artifact(tpath, base_target)
            trow = {"target": target_name, "model": "teacher fp32", "params": sum(p.numel() for p in t["model"].parameters()),
                    "bundle_bytes": tpath.stat().st_size, "how": f"fp32 {tpath.suffix}",
                    "runtime_accuracy": ev["accuracy"], "pytorch_accuracy": t["teacher_pytorch_test_accuracy"],
                    "p50_ms": bench["latency_ms"]["p50"], "pct_of_teacher": 100.0, "speedup": 1.0}
            log(f"{target_name} teacher: runtime acc {ev['accuracy']:.4f}, p50 {trow['p50_ms']:.2f} ms ({time.time() - t1:.0f}s)")
            teacher_memo[memo_key] = trow
            memo_path.write_text(json.dumps(teacher_memo, indent=1))
        except _Memo as memo:
            trow = dict(memo.row, memoised=True)
            log(f"{target_name} teacher (memoised from an earlier run of this script): runtime acc "
                f"{trow['runtime_accuracy']:.4f}, p50 {trow['p50_ms']:.2f} ms")
        except InputError as exc:
            trow = {"target": target_name, "model": "teacher fp32", "error": str(exc)}
            report["notes"].append(f"{target_name}: teacher export/eval failed: {exc}")
            log(f"{target_name} teacher failed: {exc}")
        report["rows"].append(trow)
        write_results(report)
        for budget_text in [s.strip() for s in args.budgets.split(",") if s.strip()]:
            budget = parse_bytes(budget_text)
            dim = dims.get(budget_text, 64)
            family = family_for(dim)
            d = base_target.to_dict()
            d["budgets"]["artifact_size"] = budget
            d["budgets"]["download_size"] = budget
            from edge_kd.targets import TargetProfile

            target = TargetProfile.from_dict(d, source=f"{target_name} with a {budget_text} budget")
            spec_bytes = TextPreprocessSpec(buckets=262144, max_ids=args.max_ids, labels=labels).spec_bytes()
            memo_key = f"{target_name}|{budget}|{dim}|{args.max_ids}|{spec_bytes}"
            t1 = time.time()
            if memo_key in sizing_memo:
                decision = sizing_memo[memo_key]
            else:
                decision = choose_student(family, target, measure=measure, extra_bytes=spec_bytes,
                                          log=lambda m: log(f"{target_name} {budget_text} {m}")).to_dict()
                sizing_memo[memo_key] = decision
                sizing_cache.parent.mkdir(parents=True, exist_ok=True)
                sizing_cache.write_text(json.dumps(sizing_memo, indent=1))
            buckets = int(decision["value"])
            log(f"{target_name} {budget_text}: buckets={buckets} params={decision['params']:,} predicted "
                f"{decision['predicted_bytes']:,} real {decision['real_bytes']:,} ({time.time() - t1:.0f}s)")
            spec = TextPreprocessSpec(buckets=buckets, max_ids=args.max_ids, labels=labels)
            ablations = [a.strip() for a in args.ablations.split(",") if a.strip()]
            if target_name not in [s.strip() for s in args.ablation_targets.split(",")]:
                ablations = []
            for mode in ("hard-label", "distilled", *ablations):
                model, pt_acc, res, ids_te, trained_as = student_for(buckets, dim, mode)
                if mode not in ("hard-label", "distilled") and not args.ablations_runtime:
                    # Ingredient ablations: the same student sizes, judged in PyTorch (see --ablations-runtime).
                    report["rows"].append({"target": target_name, "model": f"ablation {mode}", "mode": mode,
                                           "budget": budget_text, "buckets": buckets, "dim": dim,
                                           "params": decision["params"], "pytorch_accuracy": pt_acc,
                                           "best_val": res.best_metric, "epochs": res.epochs_run, "how": "PyTorch only"})
                    write_results(report)
                    continue
                calib = [(ids_from_hashes([hashes["train"][i]], buckets, args.max_ids),) for i in calib_idx]
                example = (torch.from_numpy(ids_te[:1]),)
                # The artifact's name carries every training setting (the checkpoint folder's name).
                name = f"student-{trained_as}-cal{args.calib_samples}"
                row = {"target": target_name, "model": f"student {mode}" if mode in ("hard-label", "distilled") else
                       f"ablation {mode}", "mode": mode, "budget": budget_text, "buckets": buckets,
                       "dim": dim,
                       "params": decision["params"], "pytorch_accuracy": pt_acc, "best_val": res.best_metric,
                       "epochs": res.epochs_run, "sizing": decision}
                try:
                    t1 = time.time()
                    path, how = export_student(model, example, target, calib, out, name, int8=True)
                    row["how"] = f"{how} {path.suffix}"
                    row["artifact_bytes"] = path.stat().st_size
                    row["bundle_bytes"] = row["artifact_bytes"] + spec.spec_bytes()
                    row["fits"] = row["bundle_bytes"] <= budget
                    ev = evaluate_artifact(path, [((ids_te[i:i + 1],), int(test.labels[i])) for i in eval_idx],
                                           threads=target.runtime.threads)
                    row["runtime_accuracy"] = ev["accuracy"]
                    bench = benchmark_artifact(path, target)
                    row["p50_ms"] = bench["latency_ms"]["p50"]
                    if trow.get("runtime_accuracy"):
                        row["pct_of_teacher"] = 100.0 * row["runtime_accuracy"] / trow["runtime_accuracy"]
                        row["speedup"] = trow["p50_ms"] / row["p50_ms"]
                    log(f"{target_name} {budget_text} {mode}: {row['how']} bundle {row['bundle_bytes']:,} "
                        f"runtime acc {row['runtime_accuracy']:.4f} p50 {row['p50_ms']:.3f} ms ({time.time() - t1:.0f}s)")
                except InputError as exc:
                    row["error"] = str(exc)
                    report["notes"].append(f"{target_name} {budget_text} {mode}: {exc}")
                    log(f"{target_name} {budget_text} {mode} failed: {exc}")
                report["rows"].append(row)
                report["checks"] = checks(report)
                write_results(report)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report["seconds"] = round(time.time() - started, 1)
    report["checks"] = checks(report)
    write_results(report)
    log(f"done in {report['seconds']:.0f}s -> {RESULTS / 'distill.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
