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
