"""Retail transactions -> next-purchase ranking examples (task ``"ranking"``).

One example per invoice of a known customer: the input is the customer's history of earlier products,
the target is the set of products in that invoice; a model scores every product of the catalog and is
judged by recall@10 / NDCG@10 of its top-10 against that set (``edge_kd.metrics``).

    transactions:online_retail.csv.gz?task=next-purchase&history=50&split=train

reads a CSV (or its gzip) with the UCI Online Retail columns (``InvoiceNo, StockCode, Quantity,
InvoiceDate, CustomerID``; other names through the ``invoice=``, ``item=``, ``quantity=``, ``date=``,
``customer=`` options). The rules, each counted in ``facts`` (and so in the build's data record):

* **Rows used.** Rows without a customer id are dropped (no history to read). Cancellations (invoice
  number starting with ``C``) and rows with quantity <= 0 (returns, damages, stock adjustments) are not
  purchases: they never become targets, and a returned product stays in the history (the customer
  bought it, so it still says what they want). Non-product codes (postage ``POST``/``DOT``/``C2``,
  manual entries ``M``, discounts ``D``, samples ``S``, ``BANK CHARGES``, ``AMAZONFEE``, ``CRUK``,
  ``PADS``, ``B`` and gift vouchers ``gift_*``; ``non_products=`` replaces the list) are dropped.
* **Catalog.** Every product code of the file, sorted: the model has one output per product
  (``label_names``). Input id of a product = 1 + its output index; 0 is padding.
* **Time split.** By invoice date: ``test`` = invoices in the last ``test_days`` days (default 30),
  ``val`` = the ``val_days`` (30) before them, ``train`` = everything earlier. The history of an
  example holds only invoices dated strictly before it (earlier test-period invoices of the same
  customer included: they happened before); nothing of the val/test periods is trained on.
* **History** (the padding rule). The customer's products from earlier invoices, each product once,
  at the time of its latest purchase, oldest first; products never bought in the training period are
  dropped (their embeddings are untrained); the last ``history`` (default 50) are kept and the row is
  left-padded with 0, so the newest product is always the last position.
* **Cold start.** An invoice whose customer has no usable history (a first purchase, or only
  products unseen in training) is not an example: a history model has nothing to read, and an app
  shows the popularity list there. Counted per split (``cold_customers``). Target products never
  bought in training stay in the target set (counted, ``cold_targets``): they count as misses, so the
  metrics are not flattered. A split that ends up with no example is an InputError.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_kd.data.base import Dataset, as_indices
from edge_kd.data.csvio import open_text
from edge_kd.errors import InputError

SPLITS = ("train", "val", "test")
#: Stock codes that are not products (postage, fees, manual entries, vouchers) in the Online Retail file.
NON_PRODUCTS = ("POST", "DOT", "C2", "M", "D", "S", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "B")
NON_PRODUCT_PREFIXES = ("gift_",)
DEFAULT_COLUMNS = {"invoice": "InvoiceNo", "item": "StockCode", "quantity": "Quantity", "date": "InvoiceDate",
                   "customer": "CustomerID"}
_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M")


@dataclass(frozen=True)
class NextPurchaseOptions:
    """The data spec's options (see the module doc)."""

    history: int = 50
    test_days: int = 30
    val_days: int = 30
    non_products: tuple[str, ...] = NON_PRODUCTS
    columns: tuple[tuple[str, str], ...] = tuple(DEFAULT_COLUMNS.items())

    def __post_init__(self) -> None:
        if self.history < 1:
            raise InputError(f"transactions: history must be >= 1, got {self.history}")
        if self.test_days < 1 or self.val_days < 1:
            raise InputError("transactions: test_days and val_days must be >= 1")


def is_product(code: str, non_products: Sequence[str] = NON_PRODUCTS) -> bool:
    c = code.strip()
    if not c:
        return False
    upper = {n.upper() for n in non_products}
    return c.upper() not in upper and not any(c.lower().startswith(p) for p in NON_PRODUCT_PREFIXES)


def _parse_date(text: str, where: str) -> datetime:
    t = text.strip()
    try:
        return datetime.fromisoformat(t)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(t, fmt)
        except ValueError:
            continue
    raise InputError(f"{where}: invoice date {text!r} is not a date (expected YYYY-MM-DD HH:MM:SS)")


def _customer(text: str) -> str:
    t = text.strip()
    return t[:-2] if t.endswith(".0") else t  # the Spark export writes ids as floats


@dataclass
class _Parsed:
    """Purchases per customer in time order, the catalog and the row counts."""

    catalog: list[str]
    #: customer -> list of (datetime, invoice, [catalog index, ...]) in date order
    invoices: dict[str, list[tuple[datetime, str, list[int]]]]
    facts: dict[str, int]
    last: datetime


def _read(path: Path, opts: NextPurchaseOptions) -> _Parsed:
    cols = dict(opts.columns)
    try:
        f = open_text(path)
        reader = csv.reader(f)
        header = next(reader, None)
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read the transactions file ({type(exc).__name__}: {exc})") from None
    if header is None:
        raise InputError(f"{path}: the file is empty (expected a header row)")
    header = [h.strip() for h in header]
    idx: dict[str, int] = {}
    for role in ("date", "customer", "item", "quantity", "invoice"):
        name = cols[role]
        if name not in header:
            raise InputError(f"{path}: no {role} column {name!r} (columns: {', '.join(header)}); "
                             f"name it with the data spec option {role}=COLUMN")
        idx[role] = header.index(name)
    facts = {"rows": 0, "rows_without_customer": 0, "cancellation_rows": 0, "non_positive_quantity_rows": 0,
             "non_product_rows": 0}
    rows: list[tuple[datetime, str, str, str, bool]] = []  # (date, customer, invoice, code, purchase)
    codes: set[str] = set()
    width = len(header)
    date_cache: dict[str, datetime] = {}
    try:
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != width:
                raise InputError(f"{path}: line {line_no} has {len(row)} fields, the header {width}")
            facts["rows"] += 1
            code = row[idx["item"]].strip()
            if not is_product(code, opts.non_products):
                facts["non_product_rows"] += 1
                continue
            codes.add(code)
            cust = _customer(row[idx["customer"]])
            if not cust:
                facts["rows_without_customer"] += 1
                continue
            raw_date = row[idx["date"]]
            date = date_cache.get(raw_date)
            if date is None:
                date = date_cache[raw_date] = _parse_date(raw_date, f"{path}: line {line_no}")
            invoice = row[idx["invoice"]].strip()
            try:
                qty = float(row[idx["quantity"]])
            except ValueError:
                raise InputError(f"{path}: line {line_no}: quantity {row[idx['quantity']]!r} is not a number") from None
            purchase = True
            if invoice.upper().startswith("C"):
                facts["cancellation_rows"] += 1
                purchase = False
            elif not qty > 0:
                facts["non_positive_quantity_rows"] += 1
                purchase = False
            rows.append((date, cust, invoice, code, purchase))
    except csv.Error as exc:
        raise InputError(f"{path}: not a valid CSV file ({exc})") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the transactions file ({type(exc).__name__}: {exc})") from None
    finally:
        f.close()
    if not rows:
        raise InputError(f"{path}: no product rows with a customer id")
    catalog = sorted(codes)
    index = {c: i for i, c in enumerate(catalog)}
    grouped: dict[tuple[str, str], tuple[datetime, list[int]]] = {}
    for date, cust, invoice, code, purchase in rows:
        if not purchase:
            continue
        key = (cust, invoice)
        entry = grouped.get(key)
        if entry is None:
            grouped[key] = (date, [index[code]])
        else:
            entry[1].append(index[code])
    invoices: dict[str, list[tuple[datetime, str, list[int]]]] = {}
    for (cust, invoice), (date, items) in grouped.items():
        invoices.setdefault(cust, []).append((date, invoice, list(dict.fromkeys(items))))
    for lst in invoices.values():
        lst.sort(key=lambda t: (t[0], t[1]))
    facts.update(customers=len(invoices), purchase_invoices=len(grouped), catalog_products=len(catalog))
    if not grouped:
        raise InputError(f"{path}: no purchases (every row with a customer is a cancellation or a return)")
    return _Parsed(catalog, invoices, facts, max(r[0] for r in rows))


@dataclass
class _Examples:
    history: np.ndarray        # int64 [N, L]
    targets: np.ndarray        # int64 [N, K], -1 padded
    raw: list[np.ndarray]      # per row: every earlier product (catalog indices), oldest first, untruncated
    facts: dict[str, Any]


def _build(parsed: _Parsed, opts: NextPurchaseOptions, split: str) -> tuple[_Examples, dict[str, Any]]:
    test_start = parsed.last - timedelta(days=opts.test_days)
    val_start = test_start - timedelta(days=opts.val_days)
    bounds = {"train": (datetime.min, val_start), "val": (val_start, test_start), "test": (test_start, datetime.max)}
    # Products bought in the training period: only those have trained embeddings.
    trained = np.zeros(len(parsed.catalog), dtype=bool)
    for lst in parsed.invoices.values():
        for date, _, items in lst:
            if date < val_start:
                trained[items] = True
    lo, hi = bounds[split]
    L = opts.history
    histories: list[np.ndarray] = []
    raws: list[np.ndarray] = []
    targets: list[list[int]] = []
    facts = {"invoices": 0, "examples": 0, "cold_customers": 0, "cold_targets": 0, "target_items": 0,
             "history_items_dropped_untrained": 0}
    for cust in sorted(parsed.invoices):
        last_seen: dict[int, int] = {}  # product -> order of its latest purchase
        order = 0
        pending: list[list[int]] = []    # invoices at the current timestamp: not history for each other
        pending_date = None
        for date, _, items in parsed.invoices[cust]:
            if date != pending_date:
                for its in pending:
                    for k in its:
                        last_seen[k] = order
                        order += 1
                pending, pending_date = [], date
            if lo <= date < hi:
                facts["invoices"] += 1
                usable = sorted((k for k in last_seen if trained[k]), key=last_seen.__getitem__)
                facts["history_items_dropped_untrained"] += len(last_seen) - len(usable)
                if not usable:
                    facts["cold_customers"] += 1
                else:
                    h = np.zeros(L, dtype=np.int64)
                    kept = np.asarray(usable[-L:], dtype=np.int64) + 1
                    h[L - len(kept):] = kept
                    histories.append(h)
                    raws.append(np.asarray(sorted(last_seen, key=last_seen.__getitem__), dtype=np.int32))
                    targets.append(items)
                    facts["target_items"] += len(items)
                    facts["cold_targets"] += int((~trained[items]).sum())
            if date >= hi:
                break
            pending.append(items)
    facts["examples"] = len(histories)
    k = max((len(t) for t in targets), default=1)
    tgt = np.full((len(targets), k), -1, dtype=np.int64)
    for i, t in enumerate(targets):
        tgt[i, :len(t)] = t
    hist = np.stack(histories) if histories else np.zeros((0, L), dtype=np.int64)
    period = {"from": None if lo == datetime.min else lo.isoformat(sep=" "),
              "to": None if hi == datetime.max else hi.isoformat(sep=" ")}
    facts["period"] = period
    return _Examples(hist, tgt, raws, facts), {"trained_products": int(trained.sum()),
                                               "untrained": [parsed.catalog[i] for i in np.flatnonzero(~trained)]}


class NextPurchaseDataset(Dataset):
    """Histories ``int64 [N, history]`` (input ``history``) and target sets ``int64 [N, K]`` (catalog
    indices, -1 padded) as ``labels``; ``label_names`` is the catalog. See the module doc."""

    task = "ranking"
    input_names = ("history",)

    def __init__(self, history: np.ndarray, labels: np.ndarray, catalog: Sequence[str], raw: list[np.ndarray],
                 *, source: str, facts: dict[str, Any], untrained: Sequence[str], history_length: int):
        self.history = np.ascontiguousarray(history, dtype=np.int64)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.label_names = list(catalog)
        self.raw = raw
        self.source = source
        self.facts = facts
        #: catalog products never bought in the training period (dropped from histories)
        self.untrained = list(untrained)
        self.history_length = int(history_length)

    def inputs(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> tuple[np.ndarray, ...]:
        return (self.history[as_indices(indices, len(self))],)

    def _take(self, idx: np.ndarray) -> "NextPurchaseDataset":
        ds = NextPurchaseDataset(self.history[idx], self.labels[idx], self.label_names, [self.raw[i] for i in idx],
                                 source=self.source, facts=self.facts, untrained=self.untrained,
                                 history_length=self.history_length)
        return ds

    def class_counts(self) -> np.ndarray:
        flat = self.labels[self.labels >= 0]
        return np.bincount(flat, minlength=self.num_classes)

    def target_sets(self) -> list[np.ndarray]:
        return [row[row >= 0] for row in self.labels]

    def raw_history(self, i: int) -> list[str]:
        """Row ``i``'s history as the app keeps it: product codes, oldest first (untruncated)."""
        return [self.label_names[int(k)] for k in self.raw[i]]

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "rows": len(self), "task": self.task, "num_classes": self.num_classes,
                "inputs": list(self.input_names), "history": self.history_length, **self.facts}


_CACHE: dict[tuple, _Parsed] = {}


def load_next_purchase(path: str | os.PathLike[str], split: str, options: NextPurchaseOptions = NextPurchaseOptions()
                       ) -> NextPurchaseDataset:
    """The ``split`` examples of a transactions file (see the module doc).

    >>> ds = load_next_purchase("examples/data/online-retail/next_purchase_slice.csv", "test",
    ...                         NextPurchaseOptions(history=20, test_days=14, val_days=14))
    """
    if split not in SPLITS:
        raise InputError(f"transactions: split must be one of {', '.join(SPLITS)}, got {split!r}")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: transactions file does not exist")
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, opts_key_of(options))
    parsed = _CACHE.get(key)
    if parsed is None:
        parsed = _read(p, options)
        _CACHE.clear()  # one file at a time: the three splits of a recipe share it
        _CACHE[key] = parsed
    ex, info = _build(parsed, options, split)
    if len(ex.history) == 0:
        period = ex.facts["period"]
        raise InputError(f"{p}: the {split} period ({period['from'] or 'start'} .. {period['to'] or 'end'}) has "
                         f"{ex.facts['invoices']} invoice(s) and none with a usable history (cold start: "
                         f"{ex.facts['cold_customers']}); widen test_days/val_days or give more history")
    facts = {**parsed.facts, **ex.facts, "trained_products": info["trained_products"], "split": split}
    return NextPurchaseDataset(ex.history, ex.targets, parsed.catalog, ex.raw, source=f"{p}:{split}",
                               facts=facts, untrained=info["untrained"], history_length=options.history)


def opts_key_of(options: NextPurchaseOptions) -> str:
    return hashlib.sha256(repr((options.non_products, options.columns)).encode()).hexdigest()[:16]


def popularity_scores(train: NextPurchaseDataset) -> np.ndarray:
    """The popularity baseline: one score per product, the number of training examples' next invoices (those
    of customers with a history) that hold it."""
    return train.class_counts().astype(np.float32)


def parse_options(spec: str, opts: dict[str, str]) -> tuple[str, NextPurchaseOptions]:
    """(split, options) from a ``transactions:`` spec's options."""

    def integer(key: str, default: int) -> int:
        if key not in opts:
            return default
        try:
            return int(opts[key])
        except ValueError:
            raise InputError(f"data spec {spec!r}: option {key}={opts[key]!r} is not an integer") from None

    task = opts.get("task", "next-purchase")
    if task != "next-purchase":
        raise InputError(f"data spec {spec!r}: task={task!r} is not a transactions task this version builds "
                         "(known: next-purchase)")
    split = opts.get("split")
    if split is None:
        raise InputError(f"data spec {spec!r}: option split=train|val|test is required (the split is by invoice "
                         "date; give the same file three times in [data] train/val/test)")
    columns = dict(DEFAULT_COLUMNS)
    for role in DEFAULT_COLUMNS:
        if opts.get(role):
            columns[role] = opts[role]
    non_products = tuple(s.strip() for s in opts["non_products"].split(",") if s.strip()) \
        if "non_products" in opts else NON_PRODUCTS
    try:
        options = NextPurchaseOptions(history=integer("history", 50), test_days=integer("test_days", 30),
                                      val_days=integer("val_days", 30), non_products=non_products,
                                      columns=tuple(columns.items()))
    except InputError as exc:
        raise InputError(f"data spec {spec!r}: {exc}") from None
    return split, options

