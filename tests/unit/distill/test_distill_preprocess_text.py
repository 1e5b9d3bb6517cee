"""The text preprocessing spec: published FNV-1a vectors, exact features, JSON round trip."""
import json

import numpy as np
import pytest

from edge_kd.errors import InputError
from edge_kd.preprocess.text import TextPreprocessSpec, fnv1a_32, hash_texts, ids_from_hashes


def test_fnv1a_test_vectors():
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_features_in_documented_order():
    spec = TextPreprocessSpec(buckets=100, max_ids=40)
    assert spec.features("My card?") == ["w1:my", "w1:card", "w1:?", "w2:my card", "w2:card ?",
                                         "c3:<my", "c3:my>", "c3:<ca", "c3:car", "c3:ard", "c3:rd>"]


def test_encode_ids_padding_truncation():
    spec = TextPreprocessSpec(buckets=100, max_ids=8)
    ids = spec.encode("My card?")
    expected = [1 + fnv1a_32(f.encode()) % 100 for f in spec.features("My card?")][:8]
    assert ids == expected and len(ids) == 8
    short = TextPreprocessSpec(buckets=100, max_ids=16).encode("hi")
    assert short[:3] == [1 + fnv1a_32(b"w1:hi") % 100, 1 + fnv1a_32(b"c3:<hi") % 100, 1 + fnv1a_32(b"c3:hi>") % 100]
    assert short[3:] == [0] * 13
    batch = spec.encode_batch(["My card?", "hi"])
    assert batch.dtype == np.int64 and batch.shape == (2, 8) and list(batch[0]) == ids
    assert np.array_equal(ids_from_hashes(hash_texts(spec, ["My card?"]), 100, 8), batch[:1])


def test_json_round_trip_and_bytes(tmp_path):
    spec = TextPreprocessSpec(buckets=4096, max_ids=64, labels=("refund", "track_order"))
    path = spec.save(tmp_path / "pre.json")
    assert path.stat().st_size == spec.spec_bytes()
    data = json.loads(path.read_text())
    assert data["format"] == "edge_kd.text.hashed_ngrams" and data["labels"] == ["refund", "track_order"]
    assert data["input"] == {"name": "input_ids", "dtype": "int64", "shape": [1, 64]}
    assert TextPreprocessSpec.load(path) == spec
    data["version"] = 9
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="version 9 is not supported"):
        TextPreprocessSpec.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="buckets must be >= 1"):
        TextPreprocessSpec(buckets=0)
