"""Data specs: one string that names a data set on the command line.

    csv:PATH?text=instruction&label=intent           texts with labels (labels=a,b,c fixes the order)
    images:ROOT?split=test&label=fine&size=224&preprocessing=tf
    tabular:PATH?label=Revenue&categorical=Month,VisitorType&positive=TRUE&drop=id
    ctr:PATH?label=label&buckets=10000
    npz:PATH
    transactions:PATH?task=forecast&horizon=1&val_weeks=4&test_weeks=4   (plain or .gz CSV; edge_kd.data.forecast)
    transactions:PATH?task=next-purchase&history=50&split=test   retail transactions -> next-purchase ranking
                                                                (edge_kd.data.transactions; .csv or .csv.gz)

A relative PATH is taken relative to ``base_dir`` (a recipe's folder) or the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qsl

from edge_kd.data.base import Dataset
from edge_kd.errors import InputError

KINDS = ("csv", "images", "tabular", "ctr", "npz", "transactions")


def split_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``kind:PATH?k=v&...`` -> (kind, path, options). Repeated keys are an error."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS:
        raise InputError(f"data spec {spec!r}: expected KIND:PATH[?options] with KIND one of {', '.join(KINDS)}, "
                         f"e.g. csv:tickets.csv?text=text&label=intent")
    path, _, query = rest.partition("?")
    if not path:
        raise InputError(f"data spec {spec!r}: the path is missing")
    options: dict[str, str] = {}
    for k, v in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if k in options:
            raise InputError(f"data spec {spec!r}: option {k!r} is given twice")
        options[k] = v
    return kind, path, options


def _list(v: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in v.split(",") if s.strip()) if v else ()


def _int(spec: str, key: str, v: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise InputError(f"data spec {spec!r}: option {key}={v!r} is not an integer") from None


_ALLOWED: dict[str, tuple[str, ...]] = {
    "csv": ("text", "label", "labels"),
    "images": ("split", "label", "size", "preprocessing", "cache"),
    "tabular": ("label", "numeric", "categorical", "positive", "drop", "buckets", "delimiter"),
    "ctr": ("label", "buckets", "numeric", "categorical", "drop"),
    "npz": (),
    # transactions: each task checks its own options (one loader per task below)
    "transactions": ("task",),
}

#: Options of ``transactions:...?task=next-purchase`` (edge_kd.data.transactions.parse_options reads them).
_NEXT_PURCHASE_OPTIONS = ("task", "split", "history", "test_days", "val_days", "non_products", "invoice", "item",
                          "quantity", "date", "customer")


def parse_data_spec(spec: str, *, base_dir: str | os.PathLike[str] | None = None,
                    cache_dir: str | os.PathLike[str] | None = None,
                    label_names: Sequence[str] | None = None) -> Dataset:
    """Load the data set a spec names (see the module doc for the forms).

    ``label_names`` fixes the class list of text and image data (a test split is encoded with the
    training split's classes); the spec's own ``labels=`` option wins over it.

    >>> ds = parse_data_spec("csv:examples/data/bitext-customer-support/customer_support.csv?text=instruction&label=intent")
    >>> ds.num_classes
    27
    """
    kind, raw_path, opts = split_spec(spec)
    unknown = [k for k in opts if k not in _ALLOWED[kind]] if kind != "transactions" else []
    if unknown:
        allowed = ", ".join(_ALLOWED[kind]) or "none"
        raise InputError(f"data spec {spec!r}: unknown option {unknown[0]!r} for {kind}; options: {allowed}")
    path = Path(os.path.expanduser(raw_path))
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.exists():
        raise InputError(f"{path}: data {'folder' if kind == 'images' else 'file'} does not exist (from data spec {spec!r})")
    if kind == "csv":
        from edge_kd.data.text import load_text_csv

        for key in ("text", "label"):
            if not opts.get(key):
                raise InputError(f"data spec {spec!r}: option {key}=COLUMN is required for csv")
        labels = _list(opts.get("labels")) or (list(label_names) if label_names is not None else None)
        return load_text_csv(path, opts["text"], opts["label"], labels=labels)
    if kind == "images":
        from edge_kd.data.images import load_image_list

        label = opts.get("label", "fine")
        if label not in ("fine", "coarse"):
            raise InputError(f"data spec {spec!r}: label must be fine or coarse, got {label!r}")
        size = _int(spec, "size", opts.get("size", "224"))
        return load_image_list(path, opts.get("split", "train"), label=label, size=size,  # type: ignore[arg-type]
                               preprocessing=opts.get("preprocessing", "tf"),  # type: ignore[arg-type]
                               cache_dir=opts.get("cache") or cache_dir, label_names=label_names)
    if kind == "tabular":
        from edge_kd.data.tabular import TabularSchema, load_tabular_csv

        if not opts.get("label"):
            raise InputError(f"data spec {spec!r}: option label=COLUMN is required for tabular")
        buckets = _int(spec, "buckets", opts["buckets"]) if opts.get("buckets") else None
        schema = TabularSchema(label=opts["label"], numeric=_list(opts.get("numeric")),
                               categorical=_list(opts.get("categorical")), positive=opts.get("positive") or None,
                               drop=_list(opts.get("drop")), hash_buckets=buckets)
        return load_tabular_csv(path, schema, delimiter=opts.get("delimiter", ","))
    if kind == "ctr":
        from edge_kd.data.tabular import load_ctr_csv

        kwargs: dict[str, Any] = {"label": opts.get("label", "label")}
        if opts.get("buckets"):
            kwargs["buckets"] = _int(spec, "buckets", opts["buckets"])
        if "numeric" in opts:
            kwargs["numeric"] = _list(opts["numeric"])
        if "categorical" in opts:
            kwargs["categorical"] = _list(opts["categorical"])
        if "drop" in opts:
            kwargs["drop"] = _list(opts["drop"])
        return load_ctr_csv(path, **kwargs)
    if kind == "transactions":
        task = opts.get("task")
        # ---- task=forecast: weekly demand per product (edge_kd.data.forecast) ----
        if task == "forecast":
            from edge_kd.data.forecast import load_forecast

            return load_forecast(path, spec, opts)
        # ---- end task=forecast ----
        # ---- task=next-purchase (the default): next-purchase ranking (edge_kd.data.transactions) ----
        if task in (None, "next-purchase"):
            unknown = [k for k in opts if k not in _NEXT_PURCHASE_OPTIONS]
            if unknown:
                raise InputError(f"data spec {spec!r}: unknown option {unknown[0]!r} for transactions with "
                                 f"task=next-purchase; options: {', '.join(_NEXT_PURCHASE_OPTIONS)}")
            from edge_kd.data.transactions import load_next_purchase, parse_options

            split, options = parse_options(spec, opts)
            return load_next_purchase(path, split, options)
        # ---- end task=next-purchase ----
        raise InputError(f"data spec {spec!r}: task={task!r} is unknown; transactions need task=forecast or "
                         "task=next-purchase")
    from edge_kd.data.arrays import load_npz

    return load_npz(path)
