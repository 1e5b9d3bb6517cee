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


# ---- several ids per n-gram (version 2) ----------------------------------------------------------
def test_two_hashes_emit_the_documented_ids_feature_by_feature():
    spec = TextPreprocessSpec(buckets=1000, max_ids=7, hashes_per_feature=2)
    want = []
    for f in TextPreprocessSpec(buckets=1000).features("My card?"):
        want += [1 + fnv1a_32(f.encode()) % 1000, 1 + fnv1a_32(f"1|{f}".encode()) % 1000]
    assert spec.encode("My card?") == want[:7]  # truncation may split a feature's ids
    assert want[0::2] == TextPreprocessSpec(buckets=1000, max_ids=40).encode("My card?")[:len(want) // 2]
    assert spec.feature_hashes("w1:my") == [fnv1a_32(b"w1:my"), fnv1a_32(b"1|w1:my")]
    assert np.array_equal(spec.encode_batch(["My card?"])[0], want[:7])


def test_one_hash_writes_the_version_1_file_unchanged_and_two_hashes_version_2(tmp_path):
    one = json.loads(TextPreprocessSpec(buckets=64, max_ids=8).to_json())
    assert one["version"] == 1 and "hashes_per_feature" not in one
    spec = TextPreprocessSpec(buckets=64, max_ids=16, hashes_per_feature=3, labels=("a", "b"))
    data = json.loads(spec.to_json())
    assert data["version"] == 2 and data["hashes_per_feature"] == 3
    assert TextPreprocessSpec.load(spec.save(tmp_path / "pre.json")) == spec


@pytest.mark.parametrize("edit, message", [
    ({"version": 1}, "hashes_per_feature belongs to version 2"),            # an app reading v1 would be wrong
    ({"hashes_per_feature": None}, "hashes_per_feature belongs to version 2"),  # v2 without the field
    ({"hashes_per_feature": 0}, "hashes_per_feature must be an integer 1..8, got 0"),
    ({"hashes_per_feature": "2"}, "hashes_per_feature must be an integer 1..8, got '2'"),
    ({"hashes_per_feature": 2.0}, "hashes_per_feature must be an integer 1..8, got 2.0"),
])
def test_spec_version_and_hashes_must_agree(edit, message):
    data = TextPreprocessSpec(buckets=64, max_ids=16, hashes_per_feature=2).to_dict()
    for key, value in edit.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    with pytest.raises(InputError, match=message):
        TextPreprocessSpec.from_dict(data, source="pre.json")


def test_family_passes_hashes_to_the_spec_and_sizes_max_ids_per_hash():
    from edge_kd.models.students import make_family

    family = make_family("text_hashed", num_classes=3, dim=8, hashes_per_feature=2)
    assert family.kwargs["max_ids"] == 256 and family.kwargs["hashes_per_feature"] == 2
    assert make_family("text_hashed", num_classes=3, dim=8).kwargs["max_ids"] == 128
    assert make_family("text_hashed", num_classes=3, dim=8, hashes_per_feature=2, max_ids=64).kwargs["max_ids"] == 64
    assert family.build(100).hashes_per_feature == 2
    for bad in (9, 0, True, 2.0):
        with pytest.raises(InputError, match="hashes_per_feature must be an integer 1..8"):
            make_family("text_hashed", num_classes=3, dim=8, hashes_per_feature=bad)
