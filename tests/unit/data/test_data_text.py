from pathlib import Path

import numpy as np
import pytest

from edge_kd.data import iter_batches, load_text_csv, parse_data_spec
from edge_kd.errors import InputError

FIX = Path(__file__).resolve().parents[2] / "fixtures"
REPO = Path(__file__).resolve().parents[3]


def test_load_text_csv_sorted_labels_and_inputs():
    ds = load_text_csv(FIX / "intents_small.csv", "instruction", "intent")
    assert len(ds) == 40
    assert ds.label_names == ["cancel_order", "change_shipping_address", "get_refund", "track_order"]
    assert ds.num_classes == 4 and ds.task == "classification"
    assert ds.labels.dtype == np.int64
    assert ds.class_counts().tolist() == [10, 10, 10, 10]
    (texts,) = ds.inputs([0, 1])
    assert texts.tolist() == ds.texts[:2]
    assert ds.label_names[ds.labels[0]] == "cancel_order"  # first row of the fixture


def test_given_label_list_fixes_codes_and_rejects_unknown():
    order = ["track_order", "get_refund", "change_shipping_address", "cancel_order"]
    ds = load_text_csv(FIX / "intents_small.csv", "instruction", "intent", labels=order)
    assert ds.label_names == order
    assert ds.labels[0] == 3
    with pytest.raises(InputError, match="'cancel_order' is not one of the known labels"):
        load_text_csv(FIX / "intents_small.csv", "instruction", "intent", labels=["track_order", "get_refund"])


def test_missing_column_names_existing_columns():
    with pytest.raises(InputError, match=r"label column 'label' does not exist; columns are: instruction, intent, category"):
        load_text_csv(FIX / "intents_small.csv", "instruction", "label")


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_text_csv(tmp_path / "nope.csv", "text", "label")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        load_text_csv(tmp_path / "empty.csv", "text", "label")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(InputError, match="no rows"):
        load_text_csv(tmp_path / "header.csv", "text", "label")


def test_multiline_quoted_fields_and_empty_label(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('text,label\n"line one\nline two, with comma",a\nplain,b\n', encoding="utf-8")
    ds = load_text_csv(p, "text", "label")
    assert ds.texts[0] == "line one\nline two, with comma"
    p.write_text("text,label\nx,a\ny,\n")
    with pytest.raises(InputError, match="row 3 has an empty label"):
        load_text_csv(p, "text", "label")


def test_tokenized_view_and_subset():
    ds = load_text_csv(FIX / "intents_small.csv", "instruction", "intent")
    calls = []

    def tok(texts):
        calls.append(len(texts))
        ids = np.array([[len(t), 1] for t in texts], dtype=np.int64)
        return ids, np.ones_like(ids)

    view = ds.tokenized(tok, name="len")
    ids, mask = view.inputs([2, 3])
    assert ids[:, 0].tolist() == [len(ds.texts[2]), len(ds.texts[3])]
    sub = view.subset([3])
    assert sub.inputs()[0][0, 0] == len(ds.texts[3])
    assert calls == [40]  # tokenised once, subsets reuse the arrays
    assert view.fingerprint() != ds.fingerprint()


def test_iter_batches_covers_every_row_once():
    ds = load_text_csv(FIX / "intents_small.csv", "instruction", "intent")
    seen = []
    for (texts,), labels in iter_batches(ds, 16, shuffle=True, seed=1):
        assert len(texts) == len(labels) <= 16
        seen.extend(texts.tolist())
    assert sorted(seen) == sorted(ds.texts)


def test_bundled_example_data_loads():
    ds = parse_data_spec("csv:examples/data/bitext-customer-support/customer_support.csv?text=instruction&label=intent",
                         base_dir=REPO)
    assert len(ds) == 4514 and ds.num_classes == 27
