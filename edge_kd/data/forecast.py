"""Demand forecasting from retail transactions: weekly quantity per product, one row per
(product, target week), with lagged-sales, price and calendar features.

    transactions:online_retail.csv.gz?task=forecast&horizon=1&val_weeks=4&test_weeks=4&min_active=0.75

reads a transaction log (plain or gzip CSV, one line per invoice line: invoice, product id, quantity,
date, unit price, customer) and builds:

* **weeks**: Monday-to-Sunday weeks. A partial first or last week (the log starts after its Monday or
  ends before its Sunday) is dropped whole: a half week would read as a demand drop.
* **products**: ids of the form five digits + optional letters (``85123A``). Other codes are not
  products and are excluded, with their line counts in ``describe()``: postage (POST, DOT, C2),
  manual entries (M), discounts (D), samples (S), fees and charges (BANK CHARGES, AMAZONFEE, CRUK,
  PADS, B), gift vouchers (gift_0001_*) and bundle codes (DCGS*). Of those, the products that sell
  regularly are kept: sales in at least ``min_active`` of the weeks before the validation period (the
  rule reads no validation or test week).
* **demand**: per product and week, quantity sold on sale invoices (quantity > 0, unit price > 0)
  minus quantity cancelled (invoice numbers ``C...``, negative quantities) in that week, floored at 0:
  an order cancelled within the week was never demand (the largest lines of the file, 80,995 and
  74,215 units, were cancelled the same day). Other negative lines (stock adjustments, damages,
  written off at price 0) and zero-price lines are not customer demand and are excluded; every
  exclusion is counted in ``describe()``.
* **features of week t** read only weeks ``<= t - horizon`` (no leakage): log1p quantities at the
  last 4 known weeks, the 4- and 8-week means, the 8-week median, the mean of all known weeks, the
  8-week standard deviation and share of weeks with
  sales, distinct customers and invoices over the last 4 weeks, the last price and its ratio to the
  8-week mean price, the store-wide (kept products) quantity trend, and calendar terms of week t
  (month and day of year as sine/cosine, weeks to Christmas). ``level`` = the 8-week mean quantity
  (at least 1) is a second input: the networks predict a multiple of it, so one model serves
  products selling 5 and 5,000 a week.
* **split by time**: the last ``test_weeks`` target weeks are the test split, the ``val_weeks``
  before them validation, every earlier week with a full history training.
* **seasonal-naive baseline**: the same product's quantity at the last known week (``t - horizon``,
  i.e. one week earlier for horizon 1). A 52-week season is not measurable here: the file holds 53
  weeks, two of them partial, so a year-earlier value exists for at most one test week.
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_kd.data.base import Dataset, as_indices
from edge_kd.data.csvio import open_text
from edge_kd.errors import InputError

#: Weeks of history each feature row reads (lags, means, deviations).
HISTORY_WEEKS = 8
#: At least this many target weeks must remain for training after validation and test.
MIN_TRAIN_WEEKS = 4
PRODUCT_CODE = re.compile(r"\d{5}[A-Za-z]*")
FEATURES = ("lag1", "lag2", "lag3", "lag4", "mean4", "mean8", "median8", "mean_all", "std8", "active8", "customers4", "invoices4",
            "log_price", "price_ratio8", "store_trend", "month_sin", "month_cos", "doy_sin", "doy_cos",
            "weeks_to_christmas")
#: Spec options of ``transactions:...?task=forecast`` (column names default to the UCI Online Retail file's).
OPTIONS = ("task", "horizon", "val_weeks", "test_weeks", "min_active", "date", "quantity", "id", "price",
           "invoice", "customer")
_DEFAULT_COLUMNS = {"date": "InvoiceDate", "quantity": "Quantity", "id": "StockCode", "price": "UnitPrice",
                    "invoice": "InvoiceNo", "customer": "CustomerID"}


@dataclass(frozen=True)
class ForecastOptions:
    horizon: int = 1
    val_weeks: int = 4
    test_weeks: int = 4
    min_active: float = 0.75
    columns: tuple[tuple[str, str], ...] = tuple(_DEFAULT_COLUMNS.items())

    def column(self, role: str) -> str:
        return dict(self.columns)[role]


def parse_options(spec: str, opts: dict[str, str]) -> ForecastOptions:
    unknown = [k for k in opts if k not in OPTIONS]
    if unknown:
        raise InputError(f"data spec {spec!r}: unknown option {unknown[0]!r} for transactions?task=forecast; "
                         f"options: {', '.join(OPTIONS)}")

    def integer(key: str, default: int, low: int) -> int:
        raw = opts.get(key)
        if raw is None or raw == "":
            return default
        try:
            v = int(raw)
        except ValueError:
            raise InputError(f"data spec {spec!r}: option {key}={raw!r} is not an integer") from None
        if v < low:
            raise InputError(f"data spec {spec!r}: option {key}={v} must be >= {low}")
        return v

    raw_active = opts.get("min_active") or "0.75"
    try:
        min_active = float(raw_active)
    except ValueError:
        raise InputError(f"data spec {spec!r}: option min_active={raw_active!r} is not a number") from None
    if not 0.0 < min_active <= 1.0:
        raise InputError(f"data spec {spec!r}: option min_active={min_active} must be in (0, 1]")
    columns = tuple((role, opts.get(role) or default) for role, default in _DEFAULT_COLUMNS.items())
    return ForecastOptions(integer("horizon", 1, 1), integer("val_weeks", 4, 1), integer("test_weeks", 4, 1),
                           min_active, columns)


# ---- reading the transaction log -------------------------------------------------------------------
@dataclass
class WeeklyDemand:
    """Per product (rows) and full week (columns): net quantity, distinct customers, invoices, and
    quantity-weighted price sums; plus what was excluded and why."""

    products: list[str]
    week_starts: list[dt.date]
    quantity: np.ndarray
    customers: np.ndarray
    invoices: np.ndarray
    revenue: np.ndarray
    sold: np.ndarray
    counts: dict[str, Any]


def read_weekly_demand(path: str | os.PathLike[str], options: ForecastOptions = ForecastOptions()) -> WeeklyDemand:
    """Aggregate a transaction log into weekly demand per product (see the module doc for the rules)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: transactions file does not exist")
    lines: list[tuple[int, int, float, float, str, str, bool]] = []  # day, product, qty, price, customer, invoice, cancel
    counts = {"lines": 0, "cancellation_lines": 0, "adjustment_lines": 0, "zero_price_lines": 0,
              "non_product_lines": 0, "non_product_codes": {}, "partial_week_lines": 0}
    product_index: dict[str, int] = {}
    try:
        with open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: the file is empty (expected a header row)")
            header = [h.strip() for h in header]
            idx = {}
            for role in ("date", "quantity", "id", "price", "invoice", "customer"):
                name = options.column(role)
                if name not in header:
                    raise InputError(f"{path}: no {role} column {name!r} (columns: {', '.join(header[:12])}); "
                                     f"name it with the spec option {role}=COLUMN")
                idx[role] = header.index(name)
            need = max(idx.values())
            day0 = dt.date(1970, 1, 1)
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) <= need:
                    raise InputError(f"{path}: line {line_no} has {len(row)} fields, the header has {len(header)}")
                counts["lines"] += 1
                code = row[idx["id"]].strip()
                invoice = row[idx["invoice"]].strip()
                try:
                    qty = float(row[idx["quantity"]])
                    price = float(row[idx["price"]] or 0.0)
                    day = (dt.date.fromisoformat(row[idx["date"]].strip()[:10]) - day0).days
                except ValueError:
                    raise InputError(f"{path}: line {line_no}: quantity {row[idx['quantity']]!r}, price "
                                     f"{row[idx['price']]!r} or date {row[idx['date']]!r} does not parse "
                                     "(dates are YYYY-MM-DD[ HH:MM:SS])") from None
                if not (math.isfinite(qty) and math.isfinite(price)):
                    raise InputError(f"{path}: line {line_no}: quantity or price is not a finite number")
                if not PRODUCT_CODE.fullmatch(code):
                    counts["non_product_lines"] += 1
                    counts["non_product_codes"][code] = counts["non_product_codes"].get(code, 0) + 1
                    continue
                cancel = invoice.upper().startswith("C")
                if cancel:
                    counts["cancellation_lines"] += 1
                elif qty <= 0:
                    counts["adjustment_lines"] += 1
                    continue
                elif price <= 0:
                    counts["zero_price_lines"] += 1
                    continue
                p = product_index.setdefault(code, len(product_index))
                lines.append((day, p, qty, price, row[idx["customer"]].strip(), invoice, cancel))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except (OSError, EOFError, csv.Error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{path}: not a readable CSV or gzip CSV ({exc})") from None
    if not lines:
        raise InputError(f"{path}: no product sales lines (after excluding non-product codes, adjustments and "
                         "zero prices)")
    days = np.array([ln[0] for ln in lines], dtype=np.int64)
    first, last = int(days.min()), int(days.max())
    # 1970-01-01 was a Thursday: weekday = (day + 3) % 7 with Monday = 0.
    start = first - (first + 3) % 7
    if (first + 3) % 7 != 0:
        start += 7  # the first week is partial: drop it
    end = last - (last + 3) % 7  # Monday of the last week
    if (last + 3) % 7 != 6:
        end -= 7  # the last week ends before its Sunday: drop it
    n_weeks = (end - start) // 7 + 1 if end >= start else 0
    if n_weeks <= 0:
        raise InputError(f"{path}: the transactions cover no full Monday-Sunday week")
    n_products = len(product_index)
    qty = np.zeros((n_products, n_weeks))
    cancelled = np.zeros((n_products, n_weeks))
    revenue = np.zeros((n_products, n_weeks))
    custs: dict[tuple[int, int], set[str]] = {}
    invs: dict[tuple[int, int], set[str]] = {}
    for day, p, q, price, customer, invoice, cancel in lines:
        w = (day - start) // 7
        if w < 0 or w >= n_weeks:
            counts["partial_week_lines"] += 1
            continue
        if cancel:
            cancelled[p, w] += abs(q)
            continue
        qty[p, w] += q
        revenue[p, w] += q * price
        if customer:
            custs.setdefault((p, w), set()).add(customer)
        invs.setdefault((p, w), set()).add(invoice)
    customers = np.zeros((n_products, n_weeks))
    invoices = np.zeros((n_products, n_weeks))
    for (p, w), s in custs.items():
        customers[p, w] = len(s)
    for (p, w), s in invs.items():
        invoices[p, w] = len(s)
    counts["cancelled_units"] = float(cancelled.sum())
    counts["sold_units"] = float(qty.sum())
    net = np.maximum(qty - cancelled, 0.0)
    counts["non_product_codes"] = dict(sorted(counts["non_product_codes"].items(), key=lambda kv: -kv[1]))
    products = [""] * n_products
    for code, i in product_index.items():
        products[i] = code
    week_starts = [dt.date(1970, 1, 1) + dt.timedelta(days=start + 7 * k) for k in range(n_weeks)]
    return WeeklyDemand(products, week_starts, net, customers, invoices, revenue, qty, counts)


# ---- features --------------------------------------------------------------------------------------
def _calendar(monday: dt.date) -> list[float]:
    doy = monday.timetuple().tm_yday
    christmas = dt.date(monday.year, 12, 25)
    weeks_to = (christmas - monday).days / 7.0
    return [math.sin(2 * math.pi * (monday.month - 1) / 12), math.cos(2 * math.pi * (monday.month - 1) / 12),
            math.sin(2 * math.pi * doy / 365.25), math.cos(2 * math.pi * doy / 365.25), weeks_to]


def _prices(weekly: WeeklyDemand) -> np.ndarray:
    """Average selling price per product and week, carried forward over weeks without sales (and back
    from the first sale: before it the product's first price is the best guess)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        price = np.where(weekly.sold > 0, weekly.revenue / np.maximum(weekly.sold, 1e-12), np.nan)
    for p in range(price.shape[0]):
        row = price[p]
        known = np.flatnonzero(~np.isnan(row))
        if not known.size:
            row[:] = 1.0
            continue
        row[:known[0]] = row[known[0]]
        for w in range(known[0] + 1, len(row)):
            if np.isnan(row[w]):
                row[w] = row[w - 1]
    return price


def feature_row(q: np.ndarray, customers: np.ndarray, invoices: np.ndarray, price: np.ndarray,
                store: np.ndarray, last: int, target_monday: dt.date) -> tuple[list[float], float]:
    """Features of one product for a target week whose latest known week is ``last`` (= t - horizon);
    reads only weeks ``last - 7 .. last``. Returns (features in ``FEATURES`` order, level)."""
    hist = q[last - HISTORY_WEEKS + 1:last + 1]
    mean4, mean8 = float(hist[-4:].mean()), float(hist.mean())
    level = max(mean8, 1.0)
    p_hist = price[last - HISTORY_WEEKS + 1:last + 1]
    s_hist = store[last - HISTORY_WEEKS + 1:last + 1]
    row = [math.log1p(q[last]), math.log1p(q[last - 1]), math.log1p(q[last - 2]), math.log1p(q[last - 3]),
           math.log1p(mean4), math.log1p(mean8), math.log1p(float(np.median(hist))),
           math.log1p(float(q[:last + 1].mean())), math.log1p(float(hist.std())), float((hist > 0).mean()),
           math.log1p(float(customers[last - 3:last + 1].sum())), math.log1p(float(invoices[last - 3:last + 1].sum())),
           math.log(max(float(p_hist[-1]), 1e-3)), math.log(max(float(p_hist[-1]), 1e-3) / max(float(p_hist.mean()), 1e-3)),
           math.log((float(s_hist[-1]) + 1.0) / (float(s_hist.mean()) + 1.0))]
    row += _calendar(target_monday)
    return row, level


@dataclass(frozen=True)
class ForecastPreprocessor:
    """Standardisation of the features, fitted on the training split (plain data, JSON-ready)."""

    features: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    horizon: int

    @classmethod
    def fit(cls, x: np.ndarray, horizon: int) -> "ForecastPreprocessor":
        std = x.std(0)
        return cls(FEATURES, tuple(float(v) for v in x.mean(0)),
                   tuple(float(s) if s > 1e-12 else 1.0 for s in std), horizon)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - np.asarray(self.means)) / np.asarray(self.stds)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "forecast", "features": list(self.features), "means": list(self.means),
                "stds": list(self.stds), "horizon": self.horizon, "history_weeks": HISTORY_WEEKS,
                "level": f"max(mean quantity of the last {HISTORY_WEEKS} known weeks, 1)",
                "output": "forecast quantity of the target week (units)"}


class ForecastDataset(Dataset):
    """One row per (product, target week): raw features, level, the quantity (the label, float) and
    the baselines' forecasts. ``inputs()`` gives ``(features standardised float32 [N, F], level float32
    [N, 1])``; trees read ``raw_inputs()`` (unscaled features and level)."""

    task = "regression"
    input_names = ("features", "level")

    def __init__(self, x: np.ndarray, level: np.ndarray, y: np.ndarray, product: np.ndarray, week: np.ndarray,
                 naive: np.ndarray, *, options: ForecastOptions, split_weeks: tuple[int, int],
                 weekly_facts: dict[str, Any], source: str = "", preprocessor: ForecastPreprocessor | None = None):
        self.raw_x = x
        self.level = level
        self.labels = y
        self.product = product
        self.week = week
        self.naive = naive
        self.options = options
        self.split_weeks = split_weeks
        self.weekly_facts = weekly_facts
        self.label_names = ["quantity"]
        self.source = source
        self.preprocessor = preprocessor

    # -- the Dataset interface
    def inputs(self, indices=None) -> tuple[np.ndarray, ...]:
        idx = as_indices(indices, len(self))
        prep = self.preprocessor
        if prep is None:
            raise InputError(f"{self.source}: forecast features are not fitted; call .fit() on the training split")
        return prep.transform(self.raw_x[idx]), self.level[idx].astype(np.float32).reshape(-1, 1)

    def raw_inputs(self, indices=None) -> np.ndarray:
        """Unscaled features with the level as the last column (what a tree model reads)."""
        idx = as_indices(indices, len(self))
        return np.concatenate([self.raw_x[idx], self.level[idx].reshape(-1, 1)], axis=1)

    def _copy(self, idx: np.ndarray | None, preprocessor: ForecastPreprocessor | None) -> "ForecastDataset":
        sl = slice(None) if idx is None else idx
        return ForecastDataset(self.raw_x[sl], self.level[sl], self.labels[sl], self.product[sl], self.week[sl],
                               self.naive[sl], options=self.options, split_weeks=self.split_weeks,
                               weekly_facts=self.weekly_facts, source=self.source, preprocessor=preprocessor)

    def _take(self, idx: np.ndarray) -> "ForecastDataset":
        return self._copy(idx, self.preprocessor)

    def fit(self) -> "ForecastDataset":
        if len(self) == 0:
            raise InputError(f"{self.source}: cannot fit the feature scaling on an empty split")
        return self._copy(None, ForecastPreprocessor.fit(self.raw_x, self.options.horizon))

    def fitted_like(self, train: Dataset) -> "ForecastDataset":
        if not isinstance(train, ForecastDataset) or train.preprocessor is None:
            raise InputError("fitted_like needs a fitted ForecastDataset")
        return self._copy(None, train.preprocessor)

    def class_counts(self) -> np.ndarray:
        return np.array([len(self)])

    @property
    def strata(self) -> np.ndarray:
        """Quantity deciles: calibration rows cover small and large sellers alike."""
        if len(self) == 0:
            return np.zeros(0, np.int64)
        edges = np.quantile(self.labels, np.linspace(0, 1, 11)[1:-1])
        return np.searchsorted(edges, self.labels, side="right").astype(np.int64)

    def split_indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train, val, test) rows by target week: test = the last ``test_weeks``, val the weeks before."""
        first_val, first_test = self.split_weeks
        return (np.flatnonzero(self.week < first_val), np.flatnonzero((self.week >= first_val) & (self.week < first_test)),
                np.flatnonzero(self.week >= first_test))

    def baselines(self) -> dict[str, np.ndarray]:
        """Forecasts of the naive baselines per row: ``seasonal_naive`` (the last known week's quantity)."""
        return {"seasonal_naive": self.naive.astype(np.float64)}

    def _update_fingerprint(self, h: Any) -> None:
        h.update(repr(self.options).encode())
        for a in (self.raw_x, self.level, self.product, self.week):
            h.update(np.ascontiguousarray(a).tobytes())

    def describe(self) -> dict[str, Any]:
        weeks = sorted(set(self.week.tolist()))
        return {"source": self.source, "rows": len(self), "task": self.task, "num_classes": 1,
                "inputs": list(self.input_names), "features": list(FEATURES),
                "products": int(len(set(self.product.tolist()))), "target_weeks": len(weeks),
                "quantity_sum": float(self.labels.sum()), "horizon": self.options.horizon,
                "data": self.weekly_facts}


def build_forecast_dataset(weekly: WeeklyDemand, options: ForecastOptions, *, source: str = "") -> ForecastDataset:
    """Feature rows from weekly demand (see the module doc); raises InputError when the history is
    too short for the horizon, the history window and the splits."""
    n_weeks = len(weekly.week_starts)
    h = options.horizon
    first_target = HISTORY_WEEKS - 1 + h
    if h >= n_weeks:
        raise InputError(f"{source}: horizon={h} weeks is not shorter than the history ({n_weeks} full weeks)")
    need = first_target + MIN_TRAIN_WEEKS + options.val_weeks + options.test_weeks
    if n_weeks < need:
        raise InputError(f"{source}: {n_weeks} full weeks of transactions are too few for horizon={h}: "
                         f"{HISTORY_WEEKS} weeks of history + {MIN_TRAIN_WEEKS} training + {options.val_weeks} "
                         f"validation + {options.test_weeks} test target weeks need {need}")
    first_test = n_weeks - options.test_weeks
    first_val = first_test - options.val_weeks
    selection_weeks = weekly.quantity[:, :first_val]
    active = (selection_weeks > 0).mean(axis=1)
    keep = np.flatnonzero(active >= options.min_active)
    if keep.size == 0:
        raise InputError(f"{source}: no product sells in at least {options.min_active:.0%} of the "
                         f"{first_val} weeks before the validation period (lower min_active)")
    q = weekly.quantity[keep]
    customers = weekly.customers[keep]
    invoices = weekly.invoices[keep]
    price = _prices(weekly)[keep]
    store = q.sum(axis=0)
    rows, levels, ys, prods, weeks, naive = [], [], [], [], [], []
    for t in range(first_target, n_weeks):
        last = t - h
        for i in range(len(keep)):
            row, level = feature_row(q[i], customers[i], invoices[i], price[i], store, last, weekly.week_starts[t])
            rows.append(row)
            levels.append(level)
            ys.append(q[i, t])
            prods.append(i)
            weeks.append(t)
            naive.append(q[i, last])
    facts = {**weekly.counts, "full_weeks": n_weeks, "first_week": str(weekly.week_starts[0]),
             "last_week": str(weekly.week_starts[-1]), "products_seen": len(weekly.products),
             "products_kept": int(keep.size), "min_active": options.min_active,
             "train_weeks": [str(weekly.week_starts[first_target]), str(weekly.week_starts[first_val - 1])],
             "val_weeks": [str(weekly.week_starts[first_val]), str(weekly.week_starts[first_test - 1])],
             "test_weeks": [str(weekly.week_starts[first_test]), str(weekly.week_starts[-1])],
             "seasonal_naive": f"quantity of the same product {h} week(s) earlier (the last known week)",
             "kept_products": [weekly.products[i] for i in keep[:20]] + (["..."] if keep.size > 20 else [])}
    ds = ForecastDataset(np.asarray(rows, dtype=np.float64), np.asarray(levels, dtype=np.float64),
                         np.asarray(ys, dtype=np.float32), np.asarray(prods, dtype=np.int64),
                         np.asarray(weeks, dtype=np.int64), np.asarray(naive, dtype=np.float32), options=options,
                         split_weeks=(first_val, first_test), weekly_facts=facts, source=source)
    return ds.fit()


def load_forecast(path: str | os.PathLike[str], spec: str, opts: dict[str, str]) -> ForecastDataset:
    """The data set a ``transactions:PATH?task=forecast&...`` spec names."""
    options = parse_options(spec, opts)
    weekly = read_weekly_demand(path, options)
    return build_forecast_dataset(weekly, options, source=str(path))
