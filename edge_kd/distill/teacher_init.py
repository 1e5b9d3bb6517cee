"""Teacher knowledge in the text students' initial weights (hashed: :class:`HashedInit`; wordpiece:
:class:`WordpieceInit`, the teacher's own row of each piece, projected like below).

A hashed n-gram student starts from random rows: a word it never saw in training keeps a random row
forever, and two spellings of one word ("refund", "refunds") start unrelated. The teacher already knows
better: its wordpiece input embeddings place related pieces close together. So each bucket's row starts
as the teacher's view of the features that hash into it:

1. **Words**: every whole word of the teacher's vocabulary that is one student token, plus every token
   of the training (and transfer) texts; a word's teacher vector is the mean of the input embeddings of
   its wordpieces ("refunded" -> ``ref``, ``##und``, ``##ed``).
2. **Projection** to the student width: the top principal components of the teacher's whole input
   embedding matrix (centred), scaled so the coordinates have the spread of the random init (std 0.1).
   A student wider than the teacher keeps random values in the extra columns.
3. **Features**: ``w1:word`` is the word's vector; a word n-gram (``w2:my card``, from the texts) is the
   mean of its words' vectors; a character n-gram (``c3:<ca``) is the mean of the vectors of the words
   that contain it.
4. **Buckets**: a bucket's row is the mean of the features hashing into it (collisions averaged). A bucket
   no known feature hashes into keeps its random row; the padding row stays zero.

The word and feature lists are computed once per stage (:class:`HashedInit`); each size candidate then
only re-buckets them (``rows(buckets, dim)``), which takes well under a second.

    init = HashedInit.from_teacher(teacher, TextPreprocessSpec(buckets=1), train.texts)
    stats = init.apply(student)                  # a HashedNgramStudent, in place
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from edge_kd.errors import InputError

#: The random init's spread (``HashedNgramStudent``: normal, std 0.1); teacher rows are scaled to it.
INIT_STD = 0.1


def word_vectors(words: Sequence[str], embeddings: np.ndarray, tokenizer: Any) -> np.ndarray:
    """Mean input embedding of each word's wordpieces, float32 [len(words), hidden]."""
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"] if words else []
    out = np.zeros((len(words), embeddings.shape[1]), np.float32)
    for i, ids in enumerate(pieces):
        if ids:
            out[i] = embeddings[ids].mean(axis=0)
    return out


def pca_basis(embeddings: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean [hidden], components [hidden, min(dim, hidden)]) of the rows of ``embeddings``, largest
    variance first."""
    mean = embeddings.mean(axis=0)
    centred = (embeddings - mean).astype(np.float64)
    values, vectors = np.linalg.eigh(centred.T @ centred / max(len(centred) - 1, 1))
    order = np.argsort(values)[::-1][:min(dim, embeddings.shape[1])]
    # Deterministic signs: the largest entry of each component is positive.
    comps = vectors[:, order]
    comps *= np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(comps.shape[1])])
    return mean.astype(np.float32), comps.astype(np.float32)


@dataclass
class HashedInit:
    """Features of the hashed featurizer with their words, ready to be bucketed at any size.

    ``feature_hashes[f]`` holds feature f's 32-bit hashes, one per id it emits (``hashes_per_feature`` of
    the spec; each of those rows starts from the feature's vector); (``link_feature[k]``, ``link_word[k]``,
    ``link_weight[k]``) say that word ``link_word[k]`` contributes ``link_weight[k]`` of feature
    ``link_feature[k]``'s vector (weights of a feature sum to 1)."""

    word_vecs: np.ndarray          # [W, hidden], teacher space
    mean: np.ndarray               # [hidden]
    components: np.ndarray         # [hidden, hidden], PCA, largest variance first
    feature_hashes: np.ndarray     # [F, hashes per feature] int64
    link_feature: np.ndarray       # [K] int64
    link_word: np.ndarray          # [K] int64
    link_weight: np.ndarray        # [K] float32
    words: list[str]

    @classmethod
    def from_embeddings(cls, spec: Any, embeddings: np.ndarray, tokenizer: Any, texts: Iterable[str]) -> "HashedInit":
        """From a teacher's input embedding matrix and its tokenizer (``tokenizer(words,
        add_special_tokens=False)["input_ids"]`` and ``get_vocab()``), for the featurizer ``spec``
        (an ``edge_kd.preprocess.text.TextPreprocessSpec``; its ``buckets`` do not matter)."""
        texts = list(texts)
        words: dict[str, int] = {}
        for piece in tokenizer.get_vocab():
            if piece.startswith("##") or piece.startswith("["):
                continue
            toks = spec.tokens(piece)
            if toks == [piece]:
                words.setdefault(piece, len(words))
        text_tokens = [spec.tokens(t) for t in texts]
        for toks in text_tokens:
            for w in toks:
                words.setdefault(w, len(words))
        word_list = list(words)
        vecs = word_vectors(word_list, embeddings, tokenizer)
        mean, comps = pca_basis(embeddings, embeddings.shape[1])

        feat_index: dict[str, int] = {}
        links: dict[tuple[int, int], float] = {}

        def link(feature: str, word_ids: Sequence[int]) -> None:
            f = feat_index.setdefault(feature, len(feat_index))
            for w in word_ids:
                links[(f, w)] = links.get((f, w), 0.0) + 1.0 / len(word_ids)

        for w, i in words.items():
            if 1 in spec.word_ngrams:
                link(f"w1:{w}", [i])
            if len(w) >= 2:
                padded = f"<{w}>"
                for n in spec.char_ngrams:
                    for g in {padded[j:j + n] for j in range(len(padded) - n + 1)}:
                        link(f"c{n}:{g}", [i])
        for n in spec.word_ngrams:
            if n < 2:
                continue
            grams = {tuple(toks[j:j + n]) for toks in text_tokens for j in range(len(toks) - n + 1)}
            for g in sorted(grams):
                link(f"w{n}:" + " ".join(g), [words[w] for w in g])
        # A feature's vector is the mean over its occurrences (words containing a character n-gram).
        keys = np.array(list(links.keys()), dtype=np.int64).reshape(-1, 2)
        weights = np.array(list(links.values()), dtype=np.float32)
        totals = np.bincount(keys[:, 0], weights=weights, minlength=len(feat_index)).astype(np.float32)
        weights = weights / totals[keys[:, 0]]
        # The spec's own hashing (step 4 of edge_kd.preprocess.text), feature by feature.
        per_feature = int(spec.hashes_per_feature)
        hashes = np.array([spec.feature_hashes(f) for f in feat_index], dtype=np.int64).reshape(-1, per_feature)
        return cls(vecs, mean, comps, hashes, keys[:, 0].copy(), keys[:, 1].copy(), weights, word_list)

    @classmethod
    def from_teacher(cls, teacher: Any, spec: Any, texts: Iterable[str]) -> "HashedInit":
        """From a text-transformer teacher (``edge_kd.distill.transfer.is_text_transformer``)."""
        from edge_kd.distill.transfer import teacher_wordpieces

        emb, tok = teacher_wordpieces(teacher)
        return cls.from_embeddings(spec, emb, tok, texts)

    def projected_words(self, dim: int) -> np.ndarray:
        """Word vectors in the student's width: [W, min(dim, hidden)], coordinates of std ``INIT_STD``."""
        z = (self.word_vecs - self.mean) @ self.components[:, :dim]
        return (z * (INIT_STD / max(float(z.std()), 1e-8))).astype(np.float32)

    def rows(self, buckets: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows [buckets + 1, min(dim, hidden)] float32, filled [buckets + 1] bool): the teacher's row of
        every bucket some feature hashes into (id = 1 + hash % buckets; row 0 is padding, never filled)."""
        import torch

        z = torch.from_numpy(self.projected_words(dim))
        feats = torch.zeros(len(self.feature_hashes), z.shape[1])
        feats.index_add_(0, torch.from_numpy(self.link_feature),
                         z[torch.from_numpy(self.link_word)] * torch.from_numpy(self.link_weight)[:, None])
        per_feature = self.feature_hashes.shape[1]
        bucket = torch.from_numpy(1 + self.feature_hashes % int(buckets)).reshape(-1)
        sums = torch.zeros(int(buckets) + 1, z.shape[1])
        sums.index_add_(0, bucket, feats.repeat_interleave(per_feature, dim=0))
        counts = torch.bincount(bucket, minlength=int(buckets) + 1).float()
        filled = counts > 0
        rows = torch.where(filled[:, None], sums / counts.clamp(min=1.0)[:, None], torch.zeros(()))
        return rows.numpy(), filled.numpy()

    def apply(self, student: Any) -> dict[str, Any]:
        """Overwrite a ``HashedNgramStudent``'s embedding rows in place; returns what it did."""
        table = _embedding_table(student, "buckets", "teacher init needs a hashed n-gram student")
        buckets, dim = int(student.buckets), int(table.shape[1])
        rows, filled = self.rows(buckets, dim)
        _write_rows(table, rows, filled)
        return {"init": "teacher", "words": len(self.words), "features": int(len(self.feature_hashes)),
                "buckets_filled": int(filled.sum()), "buckets": buckets,
                "columns_from_teacher": int(rows.shape[1]), "dim": dim}


@dataclass
class WordpieceInit:
    """The wordpiece student's rows from the teacher: the row of student id ``1 + i`` is the teacher's
    input embedding of piece ``pieces[i]``, projected to the student width by the same PCA (scaled to
    the random init's spread over the teacher's whole table). A piece the teacher does not have keeps
    its random row; the padding row stays zero. No averaging: the student reads the very units the
    teacher embeds."""

    pieces: list[str]              # the ranked vocabulary: student id - 1 -> piece
    vectors: np.ndarray            # [len(pieces), hidden], teacher space (zeros where unknown)
    known: np.ndarray              # [len(pieces)] bool: the teacher has the piece
    mean: np.ndarray               # [hidden]
    components: np.ndarray         # [hidden, hidden], PCA, largest variance first
    spread: np.ndarray             # [hidden]: std of the teacher's table along each component

    @classmethod
    def from_embeddings(cls, pieces: Sequence[str], embeddings: np.ndarray, vocab: Any) -> "WordpieceInit":
        """From a teacher's input embedding matrix and its piece -> row map."""
        ids = np.array([vocab.get(p, -1) for p in pieces], dtype=np.int64)
        known = ids >= 0
        vectors = np.zeros((len(pieces), embeddings.shape[1]), np.float32)
        vectors[known] = embeddings[ids[known]]
        mean, comps = pca_basis(embeddings, embeddings.shape[1])
        spread = ((embeddings - mean) @ comps).std(axis=0).astype(np.float32)
        return cls(list(pieces), vectors, known, mean, comps, spread)

    @classmethod
    def from_teacher(cls, teacher: Any, pieces: Sequence[str]) -> "WordpieceInit":
        """From a text-transformer teacher (``edge_kd.distill.transfer.is_text_transformer``)."""
        from edge_kd.distill.transfer import teacher_wordpieces

        emb, tok = teacher_wordpieces(teacher)
        return cls.from_embeddings(pieces, emb, tok.get_vocab())

    def rows(self, vocab: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows [vocab + 1, min(dim, hidden)] float32, filled [vocab + 1] bool) for a student keeping the
        first ``vocab`` pieces; row 0 is padding, never filled."""
        if vocab > len(self.pieces):
            raise InputError(f"teacher init: the student has {vocab} pieces, the ranked vocabulary {len(self.pieces)}")
        width = min(dim, self.components.shape[1])
        z = (self.vectors[:vocab] - self.mean) @ self.components[:, :width]
        # One scale for every column: the first components keep their larger spread, as in the teacher.
        z *= INIT_STD / max(float(np.sqrt(np.mean(self.spread[:width] ** 2))), 1e-8)
        rows = np.zeros((vocab + 1, width), np.float32)
        filled = np.zeros(vocab + 1, bool)
        filled[1:] = self.known[:vocab]
        rows[1:][self.known[:vocab]] = z[self.known[:vocab]]
        return rows, filled

    def apply(self, student: Any) -> dict[str, Any]:
        """Overwrite a ``WordpieceConvStudent``'s embedding rows in place; returns what it did."""
        table = _embedding_table(student, "vocab", "wordpiece teacher init needs a wordpiece student")
        vocab, dim = int(student.vocab), int(table.shape[1])
        rows, filled = self.rows(vocab, dim)
        _write_rows(table, rows, filled)
        return {"init": "teacher", "pieces": vocab, "pieces_from_teacher": int(filled.sum()),
                "columns_from_teacher": int(rows.shape[1]), "dim": dim}


def _embedding_table(student: Any, size_attr: str, need: str) -> Any:
    """The student's ``embed.weight``, or exit 2 saying which student kind the init needs."""
    table = getattr(getattr(student, "embed", None), "weight", None)
    if table is None or not hasattr(student, size_attr):
        raise InputError(f"{need} (an 'embed' table); got {type(student).__name__}")
    return table


def _write_rows(table: Any, rows: np.ndarray, filled: np.ndarray) -> None:
    """Overwrite the ``filled`` rows of an embedding ``table`` (its first ``rows.shape[1]`` columns: a
    wider student keeps random values in the others) and keep the padding row zero."""
    import torch

    with torch.no_grad():
        mask = torch.from_numpy(filled)
        table[mask, :rows.shape[1]] = torch.from_numpy(rows[filled]).to(table.dtype)
        table[0].zero_()
