"""Text preprocessing that an app can reimplement byte for byte: the spec and its reference code.

A hashed n-gram student never sees words, only integer ids. The app must turn a user's text into
exactly the ids the student was trained on, so the recipe lives in a small JSON file shipped in the
bundle (its bytes count against the size budget) and this module is the reference implementation
that the benchmarks use. The algorithm, in the order an app must follow:

1. ``text = text.lower()`` when ``lowercase`` (Python ``str.lower``; ASCII-only apps can use
   ASCII lowering for English data).
2. ``tokens = re.findall(token_pattern, text)`` (default ``[a-z0-9]+|[^\\sa-z0-9]``: runs of letters
   and digits, and each other non-space character on its own).
3. Features, in this order, each a string:
   - for n in ``word_ngrams`` (default ``[1, 2]``), every run of n consecutive tokens joined by one
     space, prefixed ``"w{n}:"``; e.g. ``"w1:card"``, ``"w2:my card"``;
   - for n in ``char_ngrams`` (default ``[3]``), for every token ``t`` with ``len(t) >= 2``, every
     n-character window of ``"<" + t + ">"``, prefixed ``"c{n}:"``; e.g. ``"c3:<ca"``.
4. ``h = fnv1a_32(feature.encode("utf-8"))`` (offset basis 2166136261, prime 16777619, xor then
   multiply, modulo 2**32), ``id = 1 + h % buckets``. Id 0 is padding. With ``hashes_per_feature``
   k > 1 (spec version 2), each feature emits k ids in a row: the one above, then for j = 1 .. k-1
   ``1 + fnv1a_32(f"{j}|{feature}".encode("utf-8")) % buckets`` (e.g. ``"1|w1:card"``).
5. Keep the first ``max_ids`` ids; pad with 0 up to ``max_ids``. The model input is one integer
   tensor of shape ``[1, max_ids]``; the model averages the embeddings of the non-zero ids. Its dtype
   is the artifact's: the ``input`` (and ``contract``) of the shipped ``bundle/preprocess.json`` say it
   (int32 for a LiteRT ``.tflite``, int64 for ``.pte``/``.ort``; see :mod:`edge_kd.bundle`). The
   spec this module writes for the PyTorch student says int64.

``labels`` lists the class names in output order, so the app can name the prediction.

Why several ids per feature: a small table has far fewer rows than the text has features (Banking77's
10,003 training sentences: 25,545 distinct n-grams, into ~7,000 rows at 256 KiB), so many share a row. With k ids per
feature, two features that share one row rarely share the others, and the model learns rows that
tell them apart (the Bloom-filter idea of spaCy's ``HashEmbed`` and Svenstrup et al.'s hash
embeddings, 2017). The table and the model are unchanged; the mean runs over k times as many ids.
Measured on Banking77's validation split (benchmarks/distill.py ``--hashes``): two ids per n-gram paid
at 256 KiB (~7,000 rows) and not at 1 MiB (~15,000 rows) or 64 KiB (~1,150 rows, where every row is
already shared by many n-grams); see the README.

    spec = TextPreprocessSpec(buckets=4096, max_ids=64, labels=["refund", "track_order"])
    ids = spec.encode("Where is my order?")          # list of 64 ints
    spec.save("preprocess.json")
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from edge_kd.errors import InputError

SPEC_FORMAT = "edge_kd.text.hashed_ngrams"
#: Version 1: one id per feature. Version 2 adds ``hashes_per_feature``; a spec with one hash per feature is
#: still written as version 1, byte for byte as before, so apps that read version 1 keep working.
SPEC_VERSION = 1
SPEC_VERSION_HASHES = 2
MAX_HASHES_PER_FEATURE = 8
FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
DEFAULT_TOKEN_PATTERN = r"[a-z0-9]+|[^\sa-z0-9]"


def check_hashes_per_feature(value: Any, who: str) -> int:
    """``value`` if it is a whole number 1..MAX_HASHES_PER_FEATURE (not a bool, not 2.0), else an
    ``InputError`` naming ``who``: the one check of the spec and of the student family's option."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HASHES_PER_FEATURE:
        raise InputError(f"{who}: hashes_per_feature must be an integer 1..{MAX_HASHES_PER_FEATURE}, got {value!r}")
    return value


def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bits. ``fnv1a_32(b"a") == 0xE40C292C`` (the published test vector)."""
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return h


class ShippedSpec:
    """The file a preprocessing spec ships as: its ``to_dict()`` as compact JSON, written atomically;
    its bytes count against the bundle's size budget. Subclasses name their ``format`` and ``version``
    (the first two keys of the file) and what they are, for the errors of ``check_header``."""

    spec_format: ClassVar[str]
    spec_version: ClassVar[int]
    spec_kind: ClassVar[str]
    #: Versions this edge_kd reads (default: ``spec_version`` only).
    readable_versions: ClassVar[tuple[int, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def check_header(cls, d: Mapping[str, Any], source: str) -> None:
        """Exit 2 on a file of another kind or of a version this edge_kd cannot read (an app bundle from
        a newer edge_kd, say), before any field is trusted."""
        if d.get("format") != cls.spec_format:
            raise InputError(f"{source}: not a {cls.spec_kind} spec (format {d.get('format')!r}, "
                             f"expected {cls.spec_format!r})")
        readable = cls.readable_versions or (cls.spec_version,)
        if d.get("version") not in readable:
            raise InputError(f"{source}: {cls.spec_kind} spec version {d.get('version')!r} is not supported "
                             f"(this edge_kd reads version {' and '.join(map(str, readable))})")

    def to_json(self) -> str:
        # Compact separators: these bytes ship in the app and count against the size budget.
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        from edge_kd.pipeline.atomic import atomic_write_text

        return atomic_write_text(path, self.to_json())

    def spec_bytes(self) -> int:
        """Bytes of the shipped JSON (part of the bundle size)."""
        return len(self.to_json().encode("utf-8"))


@dataclass(frozen=True)
class TextPreprocessSpec(ShippedSpec):
    """The hashed word/bigram/char-n-gram featurizer of the text students (see the module doc)."""

    spec_format: ClassVar[str] = SPEC_FORMAT
    spec_version: ClassVar[int] = SPEC_VERSION
    spec_kind: ClassVar[str] = "text preprocessing"
    readable_versions: ClassVar[tuple[int, ...]] = (SPEC_VERSION, SPEC_VERSION_HASHES)

    buckets: int = 8192
    max_ids: int = 128
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    word_ngrams: tuple[int, ...] = (1, 2)
    char_ngrams: tuple[int, ...] = (3,)
    labels: tuple[str, ...] = ()
    hash: str = "fnv1a_32"
    pad_id: int = 0
    hashes_per_feature: int = 1

    def __post_init__(self) -> None:
        if self.buckets < 1:
            raise InputError(f"text preprocessing: buckets must be >= 1, got {self.buckets}")
        if self.max_ids < 1:
            raise InputError(f"text preprocessing: max_ids must be >= 1, got {self.max_ids}")
        if self.hash != "fnv1a_32":
            raise InputError(f"text preprocessing: unknown hash {self.hash!r}; known: fnv1a_32")
        check_hashes_per_feature(self.hashes_per_feature, "text preprocessing")
        if self.pad_id != 0:
            raise InputError("text preprocessing: pad_id must be 0 (ids are 1 + hash % buckets)")
        if any(n < 1 for n in (*self.word_ngrams, *self.char_ngrams)):
            raise InputError("text preprocessing: n-gram orders must be >= 1")
        try:
            re.compile(self.token_pattern)
        except re.error as exc:
            raise InputError(f"text preprocessing: bad token_pattern {self.token_pattern!r}: {exc}") from None
        object.__setattr__(self, "word_ngrams", tuple(int(n) for n in self.word_ngrams))
        object.__setattr__(self, "char_ngrams", tuple(int(n) for n in self.char_ngrams))
        object.__setattr__(self, "labels", tuple(str(s) for s in self.labels))

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table: the buckets plus the padding row."""
        return self.buckets + 1

    # ---- the algorithm ------------------------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return re.findall(self.token_pattern, text)

    def features(self, text: str) -> list[str]:
        """The feature strings of ``text``, in the order their ids are emitted (step 3)."""
        toks = self.tokens(text)
        out: list[str] = []
        for n in self.word_ngrams:
            out.extend(f"w{n}:" + " ".join(toks[i:i + n]) for i in range(len(toks) - n + 1))
        for n in self.char_ngrams:
            for tok in toks:
                if len(tok) < 2:
                    continue
                padded = f"<{tok}>"
                out.extend(f"c{n}:" + padded[i:i + n] for i in range(len(padded) - n + 1))
        return out

    def hashes(self, text: str) -> list[int]:
        """The 32-bit hashes of the features, ``hashes_per_feature`` per feature in a row (step 4), before
        ``% buckets`` (lets a size search re-bucket cheaply)."""
        return [h for f in self.features(text) for h in self.feature_hashes(f)]

    def feature_hashes(self, feature: str) -> list[int]:
        """The ``hashes_per_feature`` 32-bit hashes of one feature string (step 4)."""
        data = feature.encode("utf-8")
        return [fnv1a_32(f"{j}|".encode("utf-8") + data if j else data) for j in range(self.hashes_per_feature)]

    def encode(self, text: str) -> list[int]:
        """Fixed-length ids for one text: ``1 + hash % buckets``, truncated and zero-padded to max_ids."""
        ids = [1 + h % self.buckets for h in self.hashes(text)[: self.max_ids]]
        return ids + [0] * (self.max_ids - len(ids))

    def encode_batch(self, texts: Iterable[str]) -> np.ndarray:
        """``[N, max_ids]`` int64 ids."""
        return ids_from_hashes(hash_texts(self, texts), self.buckets, self.max_ids)

    # ---- the file the app ships -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["word_ngrams"] = list(self.word_ngrams)
        d["char_ngrams"] = list(self.char_ngrams)
        d["labels"] = list(self.labels)
        version = SPEC_VERSION
        if self.hashes_per_feature == 1:
            d.pop("hashes_per_feature")  # the version 1 file, unchanged
        else:
            version = SPEC_VERSION_HASHES
        return {"format": SPEC_FORMAT, "version": version, **d,
                "input": {"name": "input_ids", "dtype": "int64", "shape": [1, self.max_ids]}}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "<dict>") -> "TextPreprocessSpec":
        cls.check_header(d, source)
        # The version says how many ids a feature emits; the field and the version must agree, so that an app
        # reading version 1 never meets several hashes per feature.
        if (d.get("version") == SPEC_VERSION_HASHES) != ("hashes_per_feature" in d):
            raise InputError(f"{source}: hashes_per_feature belongs to version {SPEC_VERSION_HASHES} text "
                             f"preprocessing specs (version {d.get('version')!r}, hashes_per_feature "
                             f"{d.get('hashes_per_feature', 'missing')})")
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise InputError(f"{source}: bad preprocessing spec: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TextPreprocessSpec":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read preprocessing spec: {exc}") from None
        return cls.from_dict(data, source=str(path))


def hash_texts(spec: TextPreprocessSpec, texts: Iterable[str]) -> list[list[int]]:
    """Feature hashes per text (the slow, pure-Python part; computed once per data set)."""
    return [spec.hashes(t) for t in texts]


def ids_from_hashes(hashes: Sequence[Sequence[int]], buckets: int, max_ids: int) -> np.ndarray:
    """Bucket precomputed hashes: ``[N, max_ids]`` int64, ``1 + h % buckets``, zero-padded."""
    out = np.zeros((len(hashes), max_ids), dtype=np.int64)
    for row, hs in enumerate(hashes):
        hs = hs[:max_ids]
        if hs:
            out[row, : len(hs)] = np.asarray(hs, dtype=np.int64) % buckets + 1
    return out
