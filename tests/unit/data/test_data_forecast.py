"""Demand forecasting data (edge_kd.data.forecast): weekly demand rules, features without leakage,
the time split, the seasonal-naive baseline, and bad input (exit 2 before any training)."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from edge_kd.data import parse_data_spec
from edge_kd.data.forecast import FEATURES, HISTORY_WEEKS, ForecastOptions, build_forecast_dataset, read_weekly_demand
from edge_kd.errors import InputError

REPO = Path(__file__).resolve().parents[3]
SLICE = REPO / "examples" / "data" / "online-retail" / "forecast_slice.csv"
HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
MONDAY = dt.date(2011, 1, 3)


def _write(path: Path, rows: list[list], header=HEADER, gz: bool = False) -> Path:
    opener = (lambda: gzip.open(path, "wt", newline="")) if gz else (lambda: open(path, "w", newline=""))
    with opener() as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _weeks(n: int, products=("11111", "22222A"), qty=lambda p, w: 10 + w) -> list[list]:
    """Two sale lines a week (Monday, Sunday) per product for ``n`` full weeks."""
    rows = []
    for w in range(n):
        for k, p in enumerate(products):
            for day in (0, 6):
                d = MONDAY + dt.timedelta(days=7 * w + day)
                rows.append([f"5{w:03d}{k}{day}", p, "X", qty(k, w), f"{d} 10:00:00", "2.5", "12345.0", "UK"])
    return rows


def test_slice_builds_rows_and_time_split():
    ds = parse_data_spec(f"transactions:{SLICE}?task=forecast&val_weeks=2&test_weeks=2")
    facts = ds.describe()["data"]
    assert facts["full_weeks"] == 20 and facts["first_week"] == "2011-05-02"
    assert facts["partial_week_lines"] == 3 and facts["non_product_codes"] == {"POST": 5, "M": 1}
    assert facts["cancellation_lines"] == 2 and facts["products_kept"] == 5
    tr, va, te = ds.split_indices()
    assert (len(tr), len(va), len(te)) == (40, 10, 10)
    # time order: every training week precedes every validation week, which precede the test weeks
    assert ds.week[tr].max() < ds.week[va].min() and ds.week[va].max() < ds.week[te].min()
    assert ds.task == "regression" and ds.label_names == ["quantity"]
    x, level = ds.inputs([0, 1])
    assert x.shape == (2, len(FEATURES)) and x.dtype == np.float32 and level.shape == (2, 1)


def test_gzip_and_plain_read_alike(tmp_path):
    rows = _weeks(16)
    a = read_weekly_demand(_write(tmp_path / "t.csv", rows))
    b = read_weekly_demand(_write(tmp_path / "t.csv.gz", rows, gz=True))
    assert np.array_equal(a.quantity, b.quantity) and a.products == b.products


def test_cancellations_net_out_and_exclusions_are_counted(tmp_path):
    rows = _weeks(16)
    d = f"{MONDAY + dt.timedelta(days=1)} 11:00:00"
    rows += [["C5999", "11111", "X", -4, d, "2.5", "12345.0", "UK"],          # cancels 4 of week 0
             ["C5998", "11111", "X", -500, d, "2.5", "12345.0", "UK"],        # more than sold: floored at 0
             ["5997", "11111", "X", -7, d, "0", "", "UK"],                    # stock adjustment: not demand
             ["5996", "22222A", "X", 3, d, "0", "", "UK"],                    # free / zero price: not demand
             ["5995", "POST", "POSTAGE", 1, d, "18", "12345.0", "UK"]]        # not a product
    weekly = read_weekly_demand(_write(tmp_path / "t.csv", rows))
    i = weekly.products.index("11111")
    assert weekly.quantity[i, 0] == 0.0  # 20 sold - 504 cancelled, floored
    assert weekly.counts["cancellation_lines"] == 2 and weekly.counts["adjustment_lines"] == 1
    assert weekly.counts["zero_price_lines"] == 1 and weekly.counts["non_product_codes"] == {"POST": 1}
    assert weekly.quantity[weekly.products.index("22222A"), 0] == 20.0


def test_partial_weeks_are_dropped(tmp_path):
    rows = _weeks(16)
    before = MONDAY - dt.timedelta(days=2)  # a Saturday: the week before is partial
    after = MONDAY + dt.timedelta(days=7 * 16 + 2)  # a Wednesday: the week after is partial
    rows = [["4000", "11111", "X", 99, f"{before} 09:00:00", "2.5", "1.0", "UK"]] + rows + \
           [["6000", "11111", "X", 99, f"{after} 09:00:00", "2.5", "1.0", "UK"]]
    weekly = read_weekly_demand(_write(tmp_path / "t.csv", rows))
    assert len(weekly.week_starts) == 16 and weekly.week_starts[0] == MONDAY
    assert weekly.counts["partial_week_lines"] == 2


def test_features_of_week_t_read_only_earlier_weeks(tmp_path):
    """No leakage: changing the sales of week t and later changes no feature of week t's row."""
    n = 16
    base = read_weekly_demand(_write(tmp_path / "a.csv", _weeks(n)))
    opts = ForecastOptions(val_weeks=2, test_weeks=2)
    ds = build_forecast_dataset(base, opts)
    t = 12
    changed = read_weekly_demand(_write(tmp_path / "b.csv", _weeks(n, qty=lambda p, w: 10 + w if w < t else 999)))
    ds2 = build_forecast_dataset(changed, opts)
    rows_t = np.flatnonzero(ds.week == t)
    assert np.array_equal(ds.raw_x[rows_t], ds2.raw_x[rows_t]) and np.array_equal(ds.level[rows_t], ds2.level[rows_t])
    assert not np.array_equal(ds.labels[rows_t], ds2.labels[rows_t])  # the target itself did change
    # and the seasonal-naive forecast is the last known week's quantity
    i = int(rows_t[0])
    assert ds.naive[i] == base.quantity[ds.product[i], t - 1]
    # lag1 = log1p(quantity at t - 1); with horizon 2 the last known week is t - 2
    assert ds.raw_x[i, FEATURES.index("lag1")] == pytest.approx(np.log1p(base.quantity[ds.product[i], t - 1]))
    ds_h2 = build_forecast_dataset(base, ForecastOptions(horizon=2, val_weeks=2, test_weeks=1))
    j = int(np.flatnonzero((ds_h2.week == t) & (ds_h2.product == ds.product[i]))[0])
    assert ds_h2.naive[j] == base.quantity[ds.product[i], t - 2]
    assert ds_h2.week.min() == HISTORY_WEEKS - 1 + 2


def test_standardisation_fitted_on_train_only(tmp_path):
    ds = build_forecast_dataset(read_weekly_demand(_write(tmp_path / "a.csv", _weeks(16))),
                                ForecastOptions(val_weeks=2, test_weeks=2))
    tr, va, _ = ds.split_indices()
    train = ds.subset(tr).fit()
    val = ds.subset(va).fitted_like(train)
    assert np.allclose(train.inputs()[0].mean(0), 0, atol=1e-5)
    assert val.preprocessor == train.preprocessor


@pytest.mark.parametrize("header,match", [
    ([h for h in HEADER if h != "InvoiceDate"], "no date column 'InvoiceDate'"),
    ([h for h in HEADER if h != "Quantity"], "no quantity column 'Quantity'"),
    ([h for h in HEADER if h != "StockCode"], "no id column 'StockCode'"),
])
def test_missing_columns(tmp_path, header, match):
    path = _write(tmp_path / "t.csv", [], header=header)
    with pytest.raises(InputError, match=match):
        parse_data_spec(f"transactions:{path}?task=forecast")


def test_horizon_longer_than_history_and_too_few_weeks(tmp_path):
    path = _write(tmp_path / "t.csv", _weeks(16))
    with pytest.raises(InputError, match="horizon=40 weeks is not shorter than the history"):
        parse_data_spec(f"transactions:{path}?task=forecast&horizon=40")
    with pytest.raises(InputError, match="too few for horizon=1"):
        parse_data_spec(f"transactions:{path}?task=forecast&val_weeks=4&test_weeks=4")
    assert len(parse_data_spec(f"transactions:{path}?task=forecast&val_weeks=2&test_weeks=2")) > 0


@pytest.mark.parametrize("query,match", [
    ("task=forecast&horizon=0", "horizon=0 must be >= 1"),
    ("task=forecast&horizon=x", "not an integer"),
    ("task=forecast&min_active=2", "must be in"),
    ("task=forecast&colour=red", "unknown option 'colour'"),
    ("task=recommend", "need task=forecast"),
])
def test_bad_options(tmp_path, query, match):
    path = _write(tmp_path / "t.csv", _weeks(16))
    with pytest.raises(InputError, match=match):
        parse_data_spec(f"transactions:{path}?{query}")


def test_bad_values_name_the_line(tmp_path):
    rows = _weeks(16)
    rows[3][3] = "many"
    with pytest.raises(InputError, match="line 5"):
        read_weekly_demand(_write(tmp_path / "t.csv", rows))
    (tmp_path / "bin.csv.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    with pytest.raises(InputError, match="not a readable"):
        read_weekly_demand(tmp_path / "bin.csv.gz")
