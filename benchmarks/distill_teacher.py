"""Teacher half of benchmarks/distill.py: all-MiniLM-L6-v2 with a head fitted on banking77, and its
logits over train / val / test / augmented-train texts, cached (run by distill.py; usable alone).

    .venv/bin/python benchmarks/distill_teacher.py --data ../shared/data
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_kd.errors import InputError  # noqa: E402


def augment(texts: list[str], copies: int, seed: int = 0) -> list[str]:
    """Transfer set for distillation: word dropout (p=0.15) and one adjacent swap per copy.

    The teacher labels these perturbed queries with soft targets; the student learns from the
    teacher where no hard label exists (Tang et al. 2019, "Distilling task-specific knowledge
    from BERT into simple neural networks")."""
    rng = random.Random(seed)
    out = []
    for c in range(copies):
        for t in texts:
            words = t.split()
            kept = [w for w in words if rng.random() > 0.15] or words
            if len(kept) > 2:
                i = rng.randrange(len(kept) - 1)
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
            out.append(" ".join(kept))
    return out


def load_banking77(data: Path):
    from edge_kd.data import load_text_csv, split_off

    root = data / "banking77"
    for name in ("train.csv", "test.csv"):
        if not (root / name).is_file():
            raise InputError(f"{root / name}: missing (banking77 from PolyAI-LDN/task-specific-datasets; "
                             f"pass --data PATH to the folder holding banking77/)")
    full = load_text_csv(root / "train.csv", "text", "category")
    test = load_text_csv(root / "test.csv", "text", "category", labels=full.label_names)
    train, val = split_off(full, 0.1, seed=0)
    return train, val, test


def teacher_logits(data: Path, cache_dir: Path, *, max_len: int = 64, aug_copies: int = 2, threads: int = 2,
                   log=print) -> dict:
    """all-MiniLM-L6-v2 + a linear head fitted on cached sentence embeddings (head-only fine-tune,
    ``edge_kd.models.finetune.finetune_head``), and its logits over every split, cached on disk."""
    import torch

    from edge_kd.data import TextDataset
    from edge_kd.distill.cache import TeacherCache, weights_fingerprint
    from edge_kd.models.finetune import compute_features, finetune_head
    from edge_kd.models.minilm import minilm_classifier

    torch.set_num_threads(threads)
    train, val, test = load_banking77(data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = minilm_classifier(train.num_classes, max_len=max_len)
    # Same tokenizer name and feature cache as the teacher zoo ("minilm-l6-<max_len>" under
    # $EDGE_KD_CACHE or ~/.cache/edge_kd), so embeddings computed by other runs are reused.
    tok = lambda d: d.tokenized(model.tokenize, name=f"minilm-l6-{max_len}")  # noqa: E731
    t0 = time.time()
    # The fitted head is kept: refitting is not bit-for-bit reproducible across processes, and every
    # cached export and measurement of the teacher is keyed by its outputs.
    head_path = cache_dir / f"teacher-head-{tok(train).fingerprint()}-{tok(val).fingerprint()}.safetensors"
    if head_path.is_file():
        from edge_kd.models.spec import load_state_dict

        model.head.load_state_dict(load_state_dict(head_path))
        metrics = {"head": f"reused {head_path.name}"}
        log(f"teacher head reused from {head_path}")
    else:
        from edge_kd.models.spec import save_state_dict

        model, metrics = finetune_head(model, tok(train), val=tok(val), test=tok(test))
        save_state_dict(model.head, head_path)
        log(f"teacher head fitted: val {metrics['val_accuracy']:.4f} test {metrics['test_accuracy']:.4f} "
            f"({time.time() - t0:.0f}s)")
    model.eval()
    aug = augment(train.texts, aug_copies)
    n = len(train)
    # One data set per augmented copy: each copy's embeddings and logits are cached on their own, so
    # asking for more copies later computes only the new ones.
    aug_sets = [TextDataset(aug[c * n:(c + 1) * n], train.labels, train.label_names, source=f"augmented train #{c}")
                for c in range(aug_copies)]
    wfp = weights_fingerprint(model)
    cache = TeacherCache(cache_dir / "teacher-outputs")
    out = {"train": train, "val": val, "test": test, "aug_texts": aug, "model": model, "finetune": metrics,
           "num_classes": train.num_classes, "max_len": max_len}
    for name, ds in (("train", train), ("val", val), ("test", test), *((f"aug{c}", d) for c, d in enumerate(aug_sets))):
        key = cache.key(wfp, ds.fingerprint(), str(max_len), "logits")

        def batches(ds=ds):
            feats, _ = compute_features(model, tok(ds))
            with torch.inference_mode():
                yield model.head(torch.from_numpy(feats)).numpy()

        t0 = time.time()
        out[f"logits_{name}"] = np.asarray(cache.get_or_compute(key, batches, n_rows=len(ds), meta={"split": name}))
        log(f"teacher logits {name}: {len(ds)} rows ({time.time() - t0:.1f}s)")
    out["logits_aug"] = np.concatenate([out.pop(f"logits_aug{c}") for c in range(aug_copies)]) if aug_copies else \
        np.zeros((0, train.num_classes), np.float32)
    for split in ("val", "test"):
        acc = float((out[f"logits_{split}"].argmax(1) == out[split].labels).mean())
        out[f"teacher_pytorch_{split}_accuracy"] = acc
        log(f"teacher PyTorch {split} accuracy {acc:.4f}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "distill-bench")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    try:
        teacher_logits(args.data, args.cache, threads=args.threads,
                       log=lambda m: print(m, flush=True))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
