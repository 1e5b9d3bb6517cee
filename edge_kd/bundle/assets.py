"""The preprocessing asset an app ships with each artifact (``bundle/preprocess.json``) and the
reference implementation of each, raw input -> the exact tensors of the artifact's contract.

One format per kind of data, each carrying the ``contract`` of its own artifact (so a .tflite
bundle says int32 ids where a .pte bundle says int64) and the ``labels`` in output order:

``edge_kd.text.hashed_ngrams``
    the text spec of :mod:`edge_kd.preprocess.text` (algorithm in that module's doc); ``input`` is
    the artifact's first input.
``edge_kd.text.wordpiece``
    the wordpiece spec of :mod:`edge_kd.preprocess.wordpiece` (the vocabulary is one string, pieces
    joined by single spaces; algorithm in that module's doc); ``input`` is the artifact's first input.
``edge_kd.tabular``
    a raw row ``{column: value}`` -> ``numeric`` float32 ``[1, len(numeric)]`` and ``categorical``
    ``[1, len(categorical)]`` codes, in the order of ``inputs``:

    1. a value is missing when it is null or, trimmed and lower-cased, one of ``missing_tokens``;
    2. numeric column j: missing -> ``medians[j]``; when ``log_numeric``, ``x = sign(x) * log1p(|x|)``
       (before the median fill; the medians are of transformed values); then
       ``(x - means[j]) / stds[j]`` in float64, stored as float32;
    3. categorical column j: the trimmed string (missing -> ``missing_category``); with
       ``hash_buckets`` null, code = 1 + its index in ``vocabularies[j]`` (0 for a value not in it);
       else code = ``crc32(utf8(column + "\\0" + value)) % hash_buckets``.
``edge_kd.image``
    decode to RGB, resize to ``resize.width`` x ``resize.height`` (PIL bilinear with antialiasing,
    no crop), then per channel c ``x = (p / divide - mean[c]) / std[c]`` in float32, layout NCHW.
``edge_kd.items`` (next-purchase)
    ``labels`` are the catalog's product codes in output order; the input ``history`` ``[1, history]``
    is made from the customer's earlier products (codes, each once at its latest purchase, oldest
    first): drop codes not in ``labels`` or in ``untrained`` (never bought in training), keep the last
    ``history``, map a code to 1 + its index in ``labels``, left-pad with 0 (newest product last).
``edge_kd.arrays``
    the model's inputs are the app's own arrays (a custom student): only labels and the contract.

A float model input whose contract entry has ``quantization`` is quantized last:
``clamp(round(x / scale) + zero_point, dtype range)`` (round half to even, as numpy does).
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_kd.errors import InputError

ASSET_VERSION = 1
TEXT_FORMAT = "edge_kd.text.hashed_ngrams"
WORDPIECE_FORMAT = "edge_kd.text.wordpiece"
TABULAR_FORMAT = "edge_kd.tabular"
IMAGE_FORMAT = "edge_kd.image"
ARRAYS_FORMAT = "edge_kd.arrays"
FORECAST_FORMAT = "edge_kd.forecast"
ITEMS_FORMAT = "edge_kd.items"
FORMATS = (TEXT_FORMAT, WORDPIECE_FORMAT, TABULAR_FORMAT, IMAGE_FORMAT, ARRAYS_FORMAT, FORECAST_FORMAT, ITEMS_FORMAT)


# ---- writing the asset ---------------------------------------------------------------------------
def text_asset(spec: Any, contract: Mapping[str, Any]) -> dict[str, Any]:
    """The text spec with the artifact's own input (dtype and all) and its contract."""
    d = spec.to_dict()
    first = contract["inputs"][0]
    d["input"] = {k: first[k] for k in ("name", "dtype", "shape")}
    d["contract"] = dict(contract)
    return d


def tabular_asset(preprocessor: Any, input_names: Sequence[str], labels: Sequence[str],
                  contract: Mapping[str, Any]) -> dict[str, Any]:
    from edge_kd.data.tabular import MISSING_CATEGORY, MISSING_TOKENS

    return {"format": TABULAR_FORMAT, "version": ASSET_VERSION, "labels": list(labels), "inputs": list(input_names),
            "missing_tokens": sorted(MISSING_TOKENS), "missing_category": MISSING_CATEGORY,
            **preprocessor.to_dict(), "contract": dict(contract)}


def image_asset(size: int, preprocessing: str, labels: Sequence[str], contract: Mapping[str, Any]) -> dict[str, Any]:
    from edge_kd.data.images import IMAGENET_MEAN, IMAGENET_STD

    if preprocessing == "tf":
        normalize = {"divide": 1.0, "mean": [127.0] * 3, "std": [128.0] * 3}
    elif preprocessing == "imagenet":
        normalize = {"divide": 255.0, "mean": [float(v) for v in IMAGENET_MEAN], "std": [float(v) for v in IMAGENET_STD]}
    else:
        raise InputError(f"unknown image preprocessing {preprocessing!r}; known: tf, imagenet")
    return {"format": IMAGE_FORMAT, "version": ASSET_VERSION, "labels": list(labels), "color": "RGB",
            "resize": {"width": int(size), "height": int(size), "filter": "bilinear", "antialias": True, "crop": None},
            "normalize": normalize, "layout": "NCHW", "contract": dict(contract)}


def forecast_asset(preprocessor: Any, labels: Sequence[str], contract: Mapping[str, Any]) -> dict[str, Any]:
    """Demand forecasting: the features the app computes from a product's weekly sales (names in
    order, how ``level`` is defined), their standardisation, and that the output is units."""
    return {"format": FORECAST_FORMAT, "version": ASSET_VERSION, "labels": list(labels), **preprocessor.to_dict(),
            "contract": dict(contract)}


def forecast_inputs(asset: Mapping[str, Any], raw: Mapping[str, Any]) -> list[np.ndarray]:
    """(standardised features [1, F] float32, level [1, 1] float32) from a vector's raw feature values."""
    names = list(asset["features"])
    missing = [n for n in names if n not in raw["features"]]
    if missing:
        raise InputError(f"forecast vector: raw features {missing[:3]} are missing")
    x = np.asarray([[float(raw["features"][n]) for n in names]], dtype=np.float64)
    scaled = ((x - np.asarray(asset["means"], dtype=np.float64)) / np.asarray(asset["stds"], dtype=np.float64))
    return [scaled.astype(np.float32), np.asarray([[float(raw["level"])]], dtype=np.float32)]


def items_asset(labels: Sequence[str], untrained: Sequence[str], history: int,
                contract: Mapping[str, Any]) -> dict[str, Any]:
    """The item-id map of a next-purchase model (see the module doc for the rule)."""
    return {"format": ITEMS_FORMAT, "version": ASSET_VERSION, "labels": list(labels), "untrained": list(untrained),
            "history": int(history), "padding_id": 0, "padding": "left", "contract": dict(contract)}


def items_inputs(asset: Mapping[str, Any], codes: Sequence[str]) -> list[np.ndarray]:
    """A customer's earlier product codes (oldest first) -> ``[int64 [1, history]]`` (the module doc's rule)."""
    index = {c: i for i, c in enumerate(asset["labels"])}
    skip = set(asset["untrained"])
    ids = [index[c] + 1 for c in codes if c in index and c not in skip][-int(asset["history"]):]
    out = np.zeros((1, int(asset["history"])), dtype=np.int64)
    if ids:
        out[0, -len(ids):] = ids
    return [out]


def arrays_asset(labels: Sequence[str], contract: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": ARRAYS_FORMAT, "version": ASSET_VERSION, "labels": list(labels), "contract": dict(contract)}


# ---- the reference implementation (what an app does) -----------------------------------------------
def to_contract(array: np.ndarray, entry: Mapping[str, Any], what: str) -> np.ndarray:
    """``array`` as the tensor the contract entry declares (shape, dtype; float -> int8 via its scale)."""
    dtype = np.dtype(entry["dtype"])
    shape = tuple(entry["shape"])
    array = np.asarray(array)
    if array.size != int(np.prod(shape)):
        raise InputError(f"{what}: {array.size} values, the contract's {entry.get('name')!r} takes shape {list(shape)}")
    array = array.reshape(shape)
    q = entry.get("quantization")
    if q is not None and array.dtype.kind == "f" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.round(array.astype(np.float32) / np.float32(q["scale"])) + int(q["zero_point"]),
                       info.min, info.max).astype(dtype)
    if array.dtype.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InputError(f"{what}: values do not fit the contract's {dtype.name}")
    elif array.dtype.kind != dtype.kind:
        raise InputError(f"{what}: {array.dtype.name} values for a {dtype.name} input")
    return np.ascontiguousarray(array.astype(dtype))


def _missing(value: Any, tokens: Sequence[str]) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        str(value).strip().lower() in set(tokens)


def tabular_inputs(asset: Mapping[str, Any], row: Mapping[str, Any]) -> list[np.ndarray]:
    """A raw row -> ``[numeric float32 [1, n], categorical int64 [1, k]]`` (groups in ``asset['inputs']``)."""
    tokens = asset["missing_tokens"]
    numeric_names, categorical_names = asset["numeric"], asset["categorical"]
    for name in (*numeric_names, *categorical_names):
        if name not in row:
            raise InputError(f"raw row has no column {name!r}")
    x = np.array([math.nan if _missing(row[n], tokens) else float(row[n]) for n in numeric_names], dtype=np.float64)
    if asset.get("log_numeric"):
        x = np.sign(x) * np.log1p(np.abs(x))
    x = np.where(np.isnan(x), np.asarray(asset["medians"], dtype=np.float64), x)
    x = ((x - np.asarray(asset["means"], dtype=np.float64)) / np.asarray(asset["stds"], dtype=np.float64))
    codes = []
    for j, name in enumerate(categorical_names):
        value = asset["missing_category"] if _missing(row[name], tokens) else str(row[name]).strip()
        if asset.get("hash_buckets") is not None:
            codes.append(zlib.crc32(f"{name}\x00{value}".encode("utf-8")) % int(asset["hash_buckets"]))
        else:
            vocab = asset["vocabularies"][j]
            codes.append(vocab.index(value) + 1 if value in vocab else 0)
    groups = {"numeric": x.astype(np.float32)[None, :], "categorical": np.asarray(codes, dtype=np.int64)[None, :]}
    return [groups[g] for g in asset["inputs"]]


def image_inputs(asset: Mapping[str, Any], pixels: np.ndarray) -> list[np.ndarray]:
    """uint8 RGB pixels ``[H, W, 3]`` (already resized) -> ``[float32 [1, 3, H, W]]``."""
    want = (asset["resize"]["height"], asset["resize"]["width"], 3)
    if pixels.shape != want or pixels.dtype != np.uint8:
        raise InputError(f"image pixels are {pixels.dtype.name} {list(pixels.shape)}, expected uint8 {list(want)}")
    n = asset["normalize"]
    x = pixels.astype(np.float32)
    if float(n["divide"]) != 1.0:
        x = x / np.float32(n["divide"])
    x = (x - np.asarray(n["mean"], dtype=np.float32)) / np.asarray(n["std"], dtype=np.float32)
    return [np.ascontiguousarray(x.transpose(2, 0, 1)[None])]


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def raw_to_inputs(asset: Mapping[str, Any], raw: Mapping[str, Any], root: Path) -> list[np.ndarray]:
    """A vector's raw input -> the artifact's input tensors, through the shipped asset only."""
    fmt = asset.get("format")
    if fmt in (TEXT_FORMAT, WORDPIECE_FORMAT):
        from edge_kd.preprocess.wordpiece import spec_from_asset

        arrays = [np.asarray([spec_from_asset(asset).encode(raw["text"])], dtype=np.int64)]
    elif fmt == TABULAR_FORMAT:
        arrays = tabular_inputs(asset, raw["row"])
    elif fmt == IMAGE_FORMAT:
        arrays = image_inputs(asset, read_png(root / raw["pixels"]))
    elif fmt == FORECAST_FORMAT:
        arrays = forecast_inputs(asset, raw)
    elif fmt == ITEMS_FORMAT:
        arrays = items_inputs(asset, raw["history"])
    else:
        raise InputError(f"asset format {fmt!r} has no raw-input reference (known: {', '.join(f for f in FORMATS if f != ARRAYS_FORMAT)})")
    entries = asset["contract"]["inputs"]
    if len(arrays) != len(entries):
        raise InputError(f"the {fmt} preprocessing makes {len(arrays)} tensor(s), the contract declares {len(entries)}")
    return [to_contract(a, e, f"input {e.get('name')!r}") for a, e in zip(arrays, entries)]
