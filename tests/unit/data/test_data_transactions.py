"""Next-purchase data (edge_kd.data.transactions): the time split has no leakage, the row rules and
cold-start rule are counted, the padding rule holds, and bad input exits 2 with one line."""
from __future__ import annotations

import csv
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_kd.data.spec import parse_data_spec
from edge_kd.data.transactions import NextPurchaseOptions, is_product, load_next_purchase
from edge_kd.errors import InputError

REPO = Path(__file__).resolve().parents[3]
SLICE = REPO / "examples" / "data" / "online-retail" / "next_purchase_slice.csv"
HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]


def _write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _row(inv: str, code: str, qty: int, date: str, cust: str) -> list[str]:
    return [inv, code, "x", str(qty), date, "1.0", cust, "UK"]


# Customer 1: A,B (Jan) -> C (Feb, train) -> A,D (Mar 20, val) -> E (Apr 20, test, E never bought in training)
# Customer 2: first invoice in the test period only (cold start). POST and a cancellation are not purchases.
ROWS = [
    _row("1", "AA", 1, "2011-01-05 10:00:00", "1.0"), _row("1", "BB", 2, "2011-01-05 10:00:00", "1.0"),
    _row("1", "POST", 1, "2011-01-05 10:00:00", "1.0"),
    _row("2", "CC", 1, "2011-02-05 10:00:00", "1.0"),
    _row("C3", "BB", -2, "2011-02-06 10:00:00", "1.0"),
    _row("4", "AA", 1, "2011-03-20 10:00:00", "1.0"), _row("4", "DD", 1, "2011-03-20 10:00:00", "1.0"),
    _row("5", "EE", 1, "2011-04-20 10:00:00", "1.0"), _row("5", "CC", 1, "2011-04-20 10:00:00", "1.0"),
    _row("6", "AA", 1, "2011-04-21 10:00:00", "2.0"),
    _row("7", "BB", 1, "2011-04-22 10:00:00", ""),
    _row("8", "EE", 1, "2011-04-30 10:00:00", "2.0"),
]
OPTS = NextPurchaseOptions(history=4, test_days=20, val_days=30)


def test_time_split_no_leakage_and_padding_rule(tmp_path):
    path = _write(tmp_path / "t.csv", ROWS)
    train, val, test = (load_next_purchase(path, s, OPTS) for s in ("train", "val", "test"))
    assert train.label_names == ["AA", "BB", "CC", "DD", "EE"]          # POST is not a product
    ids = {c: i + 1 for i, c in enumerate(train.label_names)}
    # train: invoice 2 (history A, B); invoice 1 has no history (cold start)
    assert train.history.tolist() == [[0, 0, ids["AA"], ids["BB"]]]
    assert train.labels.tolist() == [[2]]
    assert train.facts["cold_customers"] == 1
    # val (Mar 20): history from the train period only, newest last; the cancellation stays a purchase of B
    assert val.history.tolist() == [[0, ids["AA"], ids["BB"], ids["CC"]]]
    assert sorted(val.labels[0][val.labels[0] >= 0].tolist()) == [0, 3]
    # test: customer 1's Apr 20 invoice reads every earlier invoice (A moved to its latest purchase, Mar 20);
    # D was first bought in the val period: never trained on, so dropped from the history (counted)
    assert test.history.tolist()[0] == [0, ids["BB"], ids["CC"], ids["AA"]]
    assert test.facts["history_items_dropped_untrained"] >= 1
    # E is a target never bought in training: kept as a target, counted
    assert test.facts["cold_targets"] == 2
    # customer 2: Apr 21 is a first purchase (cold start); Apr 30 reads A from Apr 21
    assert test.facts["cold_customers"] == 1
    assert len(test) == 2 and test.history.tolist()[1] == [0, 0, 0, ids["AA"]]
    assert test.facts["rows_without_customer"] == 1 and test.facts["cancellation_rows"] == 1
    assert test.facts["non_product_rows"] == 1
    # no example of a split has a history item bought on or after its invoice date
    for ds in (train, val, test):
        assert ds.history.shape[1] == 4 and (ds.history[:, -1] > 0).all()   # newest product last, left-padded


def test_the_bundled_slice_splits_by_date(tmp_path):
    spec = f"transactions:{SLICE}?task=next-purchase&history=16&split="
    train, val, test = (parse_data_spec(spec + s) for s in ("train", "val", "test"))
    assert train.facts["period"]["to"] == val.facts["period"]["from"]
    assert val.facts["period"]["to"] == test.facts["period"]["from"]
    assert len(train) and len(val) and len(test)
    assert train.label_names == test.label_names
    # products never bought in training are never in a history
    untrained = {train.label_names.index(c) + 1 for c in train.untrained}
    for ds in (train, val, test):
        assert not set(np.unique(ds.history).tolist()) & untrained
    assert train.task == "ranking" and train.labels.ndim == 2


def test_gzip_is_read_directly(tmp_path):
    plain = _write(tmp_path / "t.csv", ROWS)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_next_purchase(plain, "test", OPTS), load_next_purchase(gz, "test", OPTS)
    assert np.array_equal(a.history, b.history) and np.array_equal(a.labels, b.labels)


def test_non_products():
    assert not is_product("POST") and not is_product("gift_0001_20") and not is_product("BANK CHARGES")
    assert is_product("85123A") and is_product("DCGSSGIRL")


@pytest.mark.parametrize("drop", ["InvoiceDate", "CustomerID", "Quantity", "StockCode"])
def test_missing_column_is_one_line(tmp_path, drop):
    j = HEADER.index(drop)
    path = _write(tmp_path / "t.csv", [r[:j] + r[j + 1:] for r in ROWS], [h for h in HEADER if h != drop])
    with pytest.raises(InputError, match=f"no .* column '{drop}'"):
        load_next_purchase(path, "train", OPTS)


def test_only_cold_start_rows_in_test_is_an_error(tmp_path):
    rows = [_row("1", "AA", 1, "2011-01-05 10:00:00", "1.0"), _row("2", "BB", 1, "2011-04-20 10:00:00", "2.0")]
    path = _write(tmp_path / "t.csv", rows)
    with pytest.raises(InputError, match="none with a usable history"):
        load_next_purchase(path, "test", OPTS)


def test_spec_needs_a_split_and_a_known_task():
    with pytest.raises(InputError, match="split=train"):
        parse_data_spec(f"transactions:{SLICE}?history=8")
    with pytest.raises(InputError, match="task='demand'"):
        parse_data_spec(f"transactions:{SLICE}?task=demand&split=train")


def test_bad_date_names_the_line(tmp_path):
    path = _write(tmp_path / "t.csv", [_row("1", "AA", 1, "yesterday", "1.0")])
    with pytest.raises(InputError, match="line 2: invoice date 'yesterday'"):
        load_next_purchase(path, "train", OPTS)


def test_cli_exits_2_with_one_line_before_training(tmp_path):
    j = HEADER.index("InvoiceDate")
    data = _write(tmp_path / "t.csv", [r[:j] + r[j + 1:] for r in ROWS], [h for h in HEADER if h != "InvoiceDate"])
    spec = f"transactions:{data}?history=4&split="
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = "np"\n[teacher]\nname = "sasrec"\n[data]\ntrain = "{spec}train"\nval = "{spec}val"\n'
                      f'test = "{spec}test"\n[student]\nfamily = "item_bag"\n')
    proc = subprocess.run([sys.executable, "-m", "edge_kd", "build", str(recipe), "--target", "ort-mobile",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "InvoiceDate" in proc.stderr
    assert not (tmp_path / "out" / "ort-mobile" / "student").exists()


def test_recipe_without_val_and_test_splits_is_refused(tmp_path):
    from edge_kd.recipe import DataConfig, load_splits

    with pytest.raises(InputError, match="split by invoice date"):
        load_splits(DataConfig(train=f"transactions:{SLICE}?split=train"))


def test_invoices_at_the_same_time_are_not_each_others_history(tmp_path):
    rows = [_row("1", "AA", 1, "2011-01-05 10:00:00", "1.0"),
            _row("2", "BB", 1, "2011-02-05 10:00:00", "1.0"), _row("3", "CC", 1, "2011-02-05 10:00:00", "1.0")]
    train = load_next_purchase(_write(tmp_path / "t.csv", rows + ROWS[5:8]), "train", OPTS)
    ids = {c: i + 1 for i, c in enumerate(train.label_names)}
    assert train.history.tolist() == [[0, 0, 0, ids["AA"]], [0, 0, 0, ids["AA"]]]
