"""StudentData caches text hashes per data set: a temporary subset must never be answered with the
hashes of an earlier one (CPython reuses the ids of freed objects)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_kd.data.text import load_text_csv
from edge_kd.distill.run import StudentData
from edge_kd.models.students.base import make_family

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_temporary_subsets_get_their_own_ids():
    ds = load_text_csv(FIXTURES / "intents_small.csv", "instruction", "intent")
    family = make_family("text_hashed", num_classes=ds.num_classes, max_ids=16)
    sdata = StudentData(family, list(ds.label_names), "text")
    value = 512
    spec = sdata.text_spec(value)
    for rows in ([0], [5], [1, 2], [7], [3, 4], [9], [11]):
        sub = ds.subset(np.asarray(rows))
        (got,) = sdata.inputs(sub, value)
        del sub  # freed: the next subset may get the same id
        np.testing.assert_array_equal(got, spec.encode_batch([ds.texts[r] for r in rows]))


def test_wordpiece_inputs_per_vocabulary_size_and_per_data_set():
    from edge_kd.preprocess.wordpiece import WordpiecePreprocessSpec, rank_wordpieces

    ds = load_text_csv(FIXTURES / "intents_small.csv", "instruction", "intent")
    words = sorted({w for t in ds.texts for w in WordpiecePreprocessSpec(vocab=("[UNK]",)).words(t)})
    chars = sorted({c for w in words for c in w})
    teacher = ["[UNK]", *chars, *("##" + c for c in chars), *(w for w in words if len(w) > 1)]
    pieces = rank_wordpieces(ds.texts, {p: i for i, p in enumerate(dict.fromkeys(teacher))})
    family = make_family("text_wordpiece", num_classes=ds.num_classes, max_ids=16, pieces=len(pieces), low=64,
                         step=64)
    sdata = StudentData(family, list(ds.label_names), "text", wordpieces=pieces)
    (small,) = sdata.inputs(ds, 64)
    (large,) = sdata.inputs(ds, 128)
    assert sdata.text_spec(64).vocab == tuple(pieces[:64]) and sdata.text_spec(64).labels == tuple(ds.label_names)
    np.testing.assert_array_equal(small, sdata.text_spec(64).encode_batch(ds.texts))
    np.testing.assert_array_equal(large, sdata.text_spec(128).encode_batch(ds.texts))
    assert (small > 0).sum() > (large > 0).sum()  # fewer pieces: words split into more of them
    assert sdata.extra_bytes(128) > sdata.extra_bytes(64)  # the vocabulary ships in the bundle
    for rows in ([0], [5], [1, 2], [7]):
        sub = ds.subset(np.asarray(rows))
        (got,) = sdata.inputs(sub, 64)
        del sub
        np.testing.assert_array_equal(got, sdata.text_spec(64).encode_batch([ds.texts[r] for r in rows]))


def test_hashes_per_feature_reach_the_spec_and_the_ids():
    """``[student] options = { hashes_per_feature = 2 }``: the shipped spec (version 2) and the training ids agree."""
    ds = load_text_csv(FIXTURES / "intents_small.csv", "instruction", "intent")
    family = make_family("text_hashed", num_classes=ds.num_classes, hashes_per_feature=2)
    sdata = StudentData(family, list(ds.label_names), "text")
    spec = sdata.text_spec(512)
    assert spec.hashes_per_feature == 2 and spec.max_ids == 256 and spec.to_dict()["version"] == 2
    (ids,) = sdata.inputs(ds, 512)
    np.testing.assert_array_equal(ids, spec.encode_batch(ds.texts))
    one = make_family("text_hashed", num_classes=ds.num_classes)
    (ids_one,) = StudentData(one, list(ds.label_names), "text").inputs(ds, 512)
    assert ((ids > 0).sum(axis=1) == 2 * (ids_one > 0).sum(axis=1)).all()  # no text here reaches 128 features
    np.testing.assert_array_equal(ids[:, 0::2][:, :128], ids_one)  # hash 0 of each n-gram is version 1's id
