"""The transfer set: more text for the teacher to label than the labelled training rows.

A student learns the teacher's function best where the teacher tells it something: on the labelled rows
the soft targets add the teacher's confusions to the hard label, and on rows without a label they are
all there is. So the distill stage lets the teacher label (soft targets, computed once and cached)

* **augmented copies** of the training sentences that keep their meaning (Tang et al. 2019, "Distilling
  task-specific knowledge from BERT into simple neural networks"; TinyBERT's data augmentation): each
  word is dropped with probability ``word_dropout`` or replaced, with probability ``substitute``, by one
  of its ``neighbours`` nearest words in the teacher's wordpiece embedding space; with probability
  ``ngram_sample`` (default 0: off, it cost 0.6-0.85 pt on Banking77) the copy is then cut to a random
  window of 1-5 words. A copy keeps its sentence's label;
* **augmented purchase histories** for a next-purchase student (Tang et al.'s recipe carried over to item
  sequences): each earlier product is dropped with probability ``item_dropout`` and, with probability
  ``recent_crop``, the copy keeps only its most recent 1..n products (a customer seen earlier in their
  life). A copy keeps its row's next items; the teacher scores every product for it. On the online-retail
  recipe the teacher's scores on such copies are where distillation beats training on the next items
  (benchmarks/results/build.md, the next-purchase table);
* **unlabeled in-domain text** the user points at (``[data] unlabeled = "csv:PATH?text=COLUMN"``), e.g.
  search queries or chat messages of the shop; such a row's hard label is the teacher's top-1.

Copies and unlabeled rows identical to a training, validation or test sentence (after lower-casing and
whitespace folding) or to each other are dropped, so nothing of the held-out splits leaks into training.
Everything is a function of the seed.

    cfg = TransferConfig(augment_copies=2)
    ts = build_transfer_set(train.texts, train.labels, cfg, seed=0, neighbours=teacher_neighbours(teacher),
                            exclude=val.texts + test.texts)
    ts.texts, ts.labels, ts.origin       # origin: "augment" | "unlabeled" per row
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edge_kd.errors import InputError

#: Labels of rows that have none (unlabeled text) until the teacher's top-1 fills them in.
NO_LABEL = -1
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class TransferSet:
    """Transfer rows: texts, their labels (``NO_LABEL`` for unlabeled text until the teacher labels it),
    where each row came from, and counts for the build manifest."""

    texts: list[str]
    labels: np.ndarray
    origin: list[str]
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def labels_with_teacher(self, logits: np.ndarray) -> np.ndarray:
        """Every row's hard label: its own, or for unlabeled text the teacher's answer (``logits``: the
        teacher's outputs on :attr:`texts`)."""
        return np.where(self.labels == NO_LABEL, np.asarray(logits).argmax(axis=1), self.labels)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def augment_sentence(words: Sequence[str], rng: random.Random, *, word_dropout: float, substitute: float,
                     ngram_sample: float, neighbours: Callable[[str], Sequence[str]] | None) -> list[str]:
    """One meaning-keeping copy of a tokenised sentence (see the module doc); never empty."""
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < word_dropout:
            continue
        if r < word_dropout + substitute and neighbours is not None:
            core = _WORD.fullmatch(w)
            options = neighbours(w.lower()) if core else ()
            if options:
                repl = rng.choice(list(options))
                out.append(repl.capitalize() if w[:1].isupper() else repl)
                continue
        out.append(w)
    if not out:
        out = [rng.choice(list(words))]
    if len(out) > 1 and rng.random() < ngram_sample:
        n = rng.randint(1, min(5, len(out)))
        start = rng.randrange(len(out) - n + 1)
        out = out[start:start + n]
    return out


def augment_texts(texts: Sequence[str], labels: Sequence[int], copies: int, *, seed: int = 0,
                  word_dropout: float, substitute: float, ngram_sample: float,
                  neighbours: Callable[[str], Sequence[str]] | None = None) -> tuple[list[str], list[int]]:
    """``copies`` augmented copies of every text, with the text's label; not yet deduplicated. The rates
    have no defaults here: :class:`edge_kd.recipe.TransferConfig` holds the one set of defaults.

    >>> augment_texts(["cancel my order"], [3], 2, seed=0, word_dropout=0.1, substitute=0.0,
    ...               ngram_sample=0.0)  # doctest: +SKIP
    (['cancel order', 'cancel my order please'], [3, 3])
    """
    rng = random.Random(seed)
    out_t: list[str] = []
    out_y: list[int] = []
    for _ in range(copies):
        for text, y in zip(texts, labels):
            words = text.split()
            if not words:
                continue
            out_t.append(" ".join(augment_sentence(words, rng, word_dropout=word_dropout, substitute=substitute,
                                                   ngram_sample=ngram_sample, neighbours=neighbours)))
            out_y.append(int(y))
    return out_t, out_y


def augment_histories(history: np.ndarray, labels: np.ndarray, copies: int, *, seed: int = 0,
                      item_dropout: float, recent_crop: float) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` augmented copies of every purchase history (``int64 [N, L]``, input ids = 1 + catalog
    index, 0 = padding, left-padded, newest last) with their rows' next items (``labels``, repeated).
    A copy keeps at least the newest product; copies identical to their source row are dropped (they
    would only weigh that row twice).

    >>> h, y = augment_histories(np.array([[0, 0, 5, 9, 3]]), np.array([[7, -1]]), 2, seed=0,
    ...                          item_dropout=0.2, recent_crop=0.3)  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    n, length = history.shape
    out_h, out_y = [], []
    for _ in range(copies):
        for i in range(n):
            items = history[i][history[i] > 0]
            if len(items) == 0:
                continue
            keep = items[rng.random(len(items)) >= item_dropout]
            if len(keep) == 0:
                keep = items[-1:]
            if len(keep) > 1 and rng.random() < recent_crop:
                keep = keep[-int(rng.integers(1, len(keep) + 1)):]
            if len(keep) == len(items):
                continue
            row = np.zeros(length, dtype=history.dtype)
            row[length - len(keep):] = keep
            out_h.append(row)
            out_y.append(labels[i])
    if not out_h:
        return np.zeros((0, length), history.dtype), np.zeros((0,) + labels.shape[1:], labels.dtype)
    return np.stack(out_h), np.stack(out_y)


def history_transfer_rows(history: np.ndarray, labels: np.ndarray, config: Any, *, seed: int = 0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The next-purchase transfer set's rows for ``config`` (``edge_kd.recipe.TransferConfig``):
    :func:`augment_histories` with its settings, then at most ``config.max_rows`` (a seeded sample)."""
    out_h, out_y = augment_histories(history, labels, config.augment_copies, seed=seed,
                                     item_dropout=config.item_dropout, recent_crop=config.recent_crop)
    if config.max_rows is not None and len(out_h) > config.max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(out_h), config.max_rows, replace=False))
        out_h, out_y = out_h[keep], out_y[keep]
    return out_h, out_y


def read_unlabeled(spec: str) -> list[str]:
    """Texts of an unlabeled data spec ``csv:PATH?text=COLUMN`` (blank rows skipped).

    Raises InputError (one line) for another kind, a missing ``text=`` option, a column that does not
    exist or a file without any text."""
    from edge_kd.data.csvio import column_index, read_csv
    from edge_kd.data.spec import split_spec

    kind, path, opts = split_spec(spec)
    if kind != "csv":
        raise InputError(f"[data].unlabeled {spec!r}: unlabeled text must be a csv spec, csv:PATH?text=COLUMN")
    unknown = [k for k in opts if k != "text"]
    if unknown:
        raise InputError(f"[data].unlabeled {spec!r}: unknown option {unknown[0]!r}; unlabeled text takes "
                         f"only text=COLUMN")
    if not opts.get("text"):
        raise InputError(f"[data].unlabeled {spec!r}: name the text column, csv:PATH?text=COLUMN")
    header, rows = read_csv(path)
    col = column_index(header, opts["text"], path, "[data].unlabeled text column")
    texts = [r[col].strip() for r in rows if r[col].strip()]
    if not texts:
        raise InputError(f"[data].unlabeled {path}: column {opts['text']!r} has no text")
    return texts


def build_transfer_set(texts: Sequence[str], labels: Sequence[int], config: Any, *, seed: int = 0,
                       neighbours: Callable[[str], Sequence[str]] | None = None,
                       unlabeled: Sequence[str] = (), exclude: Iterable[str] = ()) -> TransferSet:
    """Augmented copies of ``texts`` plus ``unlabeled`` rows, deduplicated against each other, against
    the training texts and against ``exclude`` (the held-out splits), capped at ``config.max_rows``
    (a seeded sample; unlabeled text first, since it is new language, then copies). ``config`` is a
    ``edge_kd.recipe.TransferConfig``.

    Raises InputError when the configuration asks for a transfer set and none is left (e.g. every
    unlabeled row duplicates a training sentence)."""
    seen = {_norm(t) for t in texts}
    held_out = {_norm(t) for t in exclude}
    out_t: list[str] = []
    out_y: list[int] = []
    origin: list[str] = []
    dropped = {"duplicate": 0, "held_out": 0}

    def add(text: str, y: int, where: str) -> None:
        key = _norm(text)
        if key in held_out:
            dropped["held_out"] += 1
        elif not key or key in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(key)
            out_t.append(text)
            out_y.append(y)
            origin.append(where)

    for text in unlabeled:
        add(text, NO_LABEL, "unlabeled")
    aug_t, aug_y = augment_texts(texts, labels, config.augment_copies, seed=seed, word_dropout=config.word_dropout,
                                 substitute=config.substitute, ngram_sample=config.ngram_sample,
                                 neighbours=neighbours)
    for text, y in zip(aug_t, aug_y):
        add(text, y, "augment")
    asked = config.augment_copies > 0 or len(unlabeled) > 0
    if asked and not out_t:
        raise InputError("the transfer set is empty: every augmented copy and unlabeled row duplicates a training "
                         "or held-out sentence; raise [distill.transfer].augment_copies or point [data].unlabeled "
                         "at other text")
    capped = 0
    if config.max_rows is not None and len(out_t) > config.max_rows:
        # Unlabeled rows first (new language), then copies; a seeded sample within each.
        rng = np.random.default_rng(seed)
        idx_u = [i for i, o in enumerate(origin) if o == "unlabeled"]
        idx_a = [i for i, o in enumerate(origin) if o == "augment"]
        keep = list(rng.permutation(idx_u)[:config.max_rows])
        keep += list(rng.permutation(idx_a)[:max(0, config.max_rows - len(keep))])
        keep.sort()
        capped = len(out_t) - len(keep)
        out_t = [out_t[i] for i in keep]
        out_y = [out_y[i] for i in keep]
        origin = [origin[i] for i in keep]
    stats = {"rows": len(out_t), "augmented": origin.count("augment"), "unlabeled": origin.count("unlabeled"),
             "unlabeled_read": len(unlabeled), "dropped_duplicates": dropped["duplicate"],
             "dropped_held_out": dropped["held_out"], "dropped_over_max_rows": capped}
    return TransferSet(out_t, np.asarray(out_y, dtype=np.int64), origin, stats)


# ---- the teacher's part ----------------------------------------------------------------------------
def is_text_transformer(teacher: Any) -> bool:
    """Whether the teacher reads wordpieces through an input embedding table (MiniLM and other BERT-style
    encoders): the transfer set's neighbour words and the hashed student's initial rows come from it."""
    prep = getattr(teacher, "preprocessing", {}) or {}
    model = getattr(teacher, "model", None)
    return prep.get("kind") == "tokenizer" and prep.get("tokenizer") == "minilm" and model is not None \
        and hasattr(getattr(model, "encoder", None), "get_input_embeddings")


def teacher_wordpieces(teacher: Any) -> tuple[np.ndarray, Any]:
    """(input embedding matrix [vocab, hidden] float32, tokenizer) of a text-transformer teacher."""
    from edge_kd.models.minilm import get_tokenizer

    if not is_text_transformer(teacher):
        raise InputError(f"teacher {getattr(teacher, 'name', '?')!r} has no wordpiece embeddings (a text "
                         f"transformer such as minilm-l6 has)")
    emb = teacher.model.encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
    return emb, get_tokenizer()


def embedding_neighbours(words: Iterable[str], embeddings: np.ndarray, vocab: dict[str, int], *, k: int = 8,
                         min_similarity: float = 0.4) -> dict[str, list[str]]:
    """For each word that is one whole wordpiece of ``vocab``, its ``k`` nearest whole-word (alphabetic,
    at least 2 letters) wordpieces by cosine similarity of the input embeddings, most similar first,
    those under ``min_similarity`` left out (a word without a close neighbour keeps its place)."""
    cand = [(w, i) for w, i in vocab.items() if w.isalpha() and w.isascii() and len(w) >= 2]
    cand_words = [w for w, _ in cand]
    cand_vecs = embeddings[[i for _, i in cand]]
    cand_vecs = cand_vecs / np.maximum(np.linalg.norm(cand_vecs, axis=1, keepdims=True), 1e-8)
    queries = sorted({w for w in words if w in vocab and w.isalpha()})
    out: dict[str, list[str]] = {}
    for start in range(0, len(queries), 1024):
        chunk = queries[start:start + 1024]
        q = embeddings[[vocab[w] for w in chunk]]
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-8)
        sim = q @ cand_vecs.T
        top = np.argpartition(-sim, kth=min(k, sim.shape[1] - 1), axis=1)[:, :k + 1]
        for row, w in enumerate(chunk):
            order = top[row][np.argsort(-sim[row, top[row]], kind="stable")]
            out[w] = [cand_words[j] for j in order if cand_words[j] != w and sim[row, j] >= min_similarity][:k]
    return out


def teacher_neighbours(teacher: Any, texts: Iterable[str], k: int) -> Callable[[str], Sequence[str]]:
    """``word -> nearest words`` in the teacher's wordpiece embedding space, for the words of ``texts``."""
    emb, tok = teacher_wordpieces(teacher)
    words = {w.lower() for t in texts for w in _WORD.findall(t)}
    table = embedding_neighbours(words, emb, tok.get_vocab(), k=k)
    return lambda w: table.get(w, ())


def teacher_soft_targets(teacher: Any, texts: Sequence[str], *, batch_size: int = 64) -> tuple[np.ndarray, float]:
    """The teacher's logits over ``texts`` (float32 [N, C]) and the CPU seconds it took.

    A MiniLM teacher runs on length-sorted batches padded to their longest sentence instead of to
    ``max_len``: the masked mean pooling makes the result the same (to float rounding) and short
    queries run ~4x faster on a CPU."""
    import torch

    from edge_kd.console import progress

    c0 = time.process_time()
    if is_text_transformer(teacher):
        from edge_kd.models.minilm import tokenize

        max_len = int(teacher.preprocessing["max_len"])
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        model = teacher.model.eval()
        with torch.inference_mode(), progress(f"teacher {teacher.name}: transfer set", total=len(texts),
                                              unit=" rows") as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                ids, mask = tokenize([texts[i] for i in idx], max_len, pad_to_max=False)
                logits = model(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
                if out is None:
                    out = np.zeros((len(texts), logits.shape[1]), np.float32)
                out[idx] = logits
                bar.update(len(idx))
        if out is None:
            raise InputError("the transfer set is empty: nothing for the teacher to label")
        return out, time.process_time() - c0
    from edge_kd.data.text import TextDataset

    ds = TextDataset(list(texts), np.zeros(len(texts), np.int64), list(teacher.label_names) or ["0", "1"],
                     source="transfer set")
    return np.asarray(teacher.predict(ds, batch_size=batch_size), np.float32), time.process_time() - c0
