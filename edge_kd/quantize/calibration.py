"""Calibration data and range estimation, implemented once for every backend.

Two halves:

* **Samples**: :func:`stratified_indices` / :func:`select_calibration` draw a deterministic (seeded),
  label-stratified subset of training data; :func:`check_calibration` rejects what would silently give a
  bad int8 model (empty or tiny sets, wrong shape or dtype, NaN/inf).
* **Ranges**: :class:`RangeStats` watches one tensor over the calibration samples and answers every
  range method from one pass: ``minmax``, ``moving_average`` (min/max with an EMA, like torch's
  MovingAverageMinMaxObserver), and three histogram methods, ``percentile``, ``entropy`` (KL
  divergence, TensorRT style) and ``mse`` (search for the clip range with the least expected
  quantization error). The histogram has a fixed bin count and is updated in a streaming way (re-binned
  when the range grows), so memory stays ``O(bins)`` per tensor whatever the number or size of the
  samples -- onnxruntime's own entropy/percentile calibrators keep every activation and run out of
  memory on real models.

The PT2E observers (ExecuTorch, LiteRT) and the ONNX Runtime path both feed :class:`RangeStats`, so a
method behaves identically on every target::

    stats = RangeStats()
    for x in activations:
        stats.update(x)
    lo, hi = stats.compute("percentile", percentile=99.99)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edge_kd.errors import InputError
from edge_kd.registry import Registry

#: Range methods by name: ``fn(stats, percentile, symmetric) -> (lo, hi)``. A new method is one function
#: registered with ``@range_method(NAME)`` below; list its name in the runtime specs that support it
#: (``edge_kd.runtimes.registry.STANDARD_RANGE_METHODS`` for every shipped runtime).
RANGE_METHOD_FUNCS: Registry[Callable[..., tuple[float, float]]] = Registry("range method")
#: Fewer samples than this give ranges that depend on which images happened to be drawn.
MIN_CALIBRATION_SAMPLES = 8
DEFAULT_BINS = 2048
#: Magnitudes at or above this are masking sentinels (finfo(float32).min is -3.4e38), not activations.
SENTINEL = 1e30


# ------------------------------------------------------------------------------------------------
# Quantization parameters
# ------------------------------------------------------------------------------------------------
def qparams(lo: float, hi: float, *, symmetric: bool = False, qmin: int = -128, qmax: int = 127,
            eps: float = 2.0 ** -12) -> tuple[float, int]:
    """Scale and zero point for the real range [lo, hi], the way torch/XNNPACK/TFLite compute them.

    The range is widened to include 0 (zero must be exact: padding, ReLU).

    >>> qparams(0.0, 2.55, qmin=0, qmax=255)
    (0.01, 0)
    """
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        bound = max(-lo, hi)
        scale = max(bound / ((qmax - qmin) / 2.0), eps)
        return scale, 0
    scale = max((hi - lo) / float(qmax - qmin), eps)
    zero_point = int(np.clip(qmin - round(lo / scale), qmin, qmax))
    return scale, zero_point


def fake_quantize(x: np.ndarray, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """Quantize then dequantize (round half to even, as the runtimes do)."""
    q = np.clip(np.round(x / scale) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Streaming statistics of one tensor
# ------------------------------------------------------------------------------------------------
class StreamingHistogram:
    """A histogram with a fixed number of bins over a range that grows as data arrives.

    When new data falls outside the current range, the range is widened and the old counts are moved
    into the new bins at their bin centres: memory is ``bins`` floats, never the activations.
    """

    def __init__(self, bins: int = DEFAULT_BINS):
        if bins < 16:
            raise ValueError("a histogram needs at least 16 bins")
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.float64)
        self.lo = 0.0
        self.hi = 0.0
        self.empty = True

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.bins + 1)

    @property
    def centers(self) -> np.ndarray:
        e = self.edges
        return (e[:-1] + e[1:]) / 2.0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32).ravel()
        if x.size == 0:
            return
        x_lo, x_hi = float(x.min()), float(x.max())
        if self.empty:
            lo, hi = x_lo, x_hi
            if hi <= lo:  # a constant tensor: give the bins a width
                lo, hi = lo - 0.5 * max(abs(lo), 1e-8), hi + 0.5 * max(abs(hi), 1e-8)
            self.lo, self.hi, self.empty = lo, hi, False
        elif x_lo < self.lo or x_hi > self.hi:
            new_lo, new_hi = min(self.lo, x_lo), max(self.hi, x_hi)
            # Widen a little beyond what is needed so that slowly growing ranges do not re-bin every step.
            pad = 0.05 * (new_hi - new_lo)
            new_lo = new_lo - pad if x_lo < self.lo else new_lo
            new_hi = new_hi + pad if x_hi > self.hi else new_hi
            moved, _ = np.histogram(self.centers, bins=self.bins, range=(new_lo, new_hi), weights=self.counts)
            self.counts = moved.astype(np.float64)
            self.lo, self.hi = new_lo, new_hi
        hist, _ = np.histogram(x, bins=self.bins, range=(self.lo, self.hi))
        self.counts += hist

    def percentile(self, q: float) -> float:
        """The value below which ``q`` percent of the observed mass lies (linear within a bin)."""
        total = self.counts.sum()
        if total == 0:
            return 0.0
        cdf = np.cumsum(self.counts) / total
        target = q / 100.0
        i = int(np.searchsorted(cdf, target, side="left"))
        i = min(i, self.bins - 1)
        prev = cdf[i - 1] if i > 0 else 0.0
        in_bin = self.counts[i] / total
        frac = 0.0 if in_bin <= 0 else (target - prev) / in_bin
        width = (self.hi - self.lo) / self.bins
        return float(self.lo + (i + min(max(frac, 0.0), 1.0)) * width)


class RangeStats:
    """Everything needed to answer each range method for one tensor, gathered in one pass.

    ``update`` takes one calibration batch (one sample in edge_kd's calibration loops).
    """

    def __init__(self, bins: int = DEFAULT_BINS, averaging_constant: float = 0.01):
        self.min = math.inf
        self.max = -math.inf
        self.ema_min = math.nan
        self.ema_max = math.nan
        self.averaging_constant = averaging_constant
        self.hist = StreamingHistogram(bins)
        self.batches = 0
        self.sentinels = 0

    def update(self, x: Any) -> None:
        x = np.asarray(x, dtype=np.float32)
        if x.size == 0:
            return
        finite = np.isfinite(x) & (np.abs(x) < SENTINEL)
        if not finite.all():
            # inf and mask sentinels (transformers add finfo(float32).min to masked attention scores)
            # are not data: they would stretch the range over 1e38 and zero every real value.
            self.sentinels += int(x.size - finite.sum())
            x = x[finite]
            if x.size == 0:
                return
        b_min, b_max = float(x.min()), float(x.max())
        self.min, self.max = min(self.min, b_min), max(self.max, b_max)
        if self.batches == 0:
            self.ema_min, self.ema_max = b_min, b_max
        else:
            c = self.averaging_constant
            self.ema_min += c * (b_min - self.ema_min)
            self.ema_max += c * (b_max - self.ema_max)
        self.hist.update(x)
        self.batches += 1

    @property
    def observed(self) -> bool:
        return self.batches > 0

    def compute(self, method: str, *, percentile: float = 99.99, symmetric: bool = False) -> tuple[float, float]:
        """The real range [lo, hi] to quantize to, by ``method``. Never wider than what was observed."""
        if not self.observed:
            return 0.0, 0.0
        if method not in RANGE_METHOD_FUNCS:
            raise ValueError(f"unknown range method {method!r}; known: {', '.join(RANGE_METHODS)}")
        lo, hi = RANGE_METHOD_FUNCS.get(method)(self, percentile, symmetric)
        lo, hi = max(float(lo), self.min), min(float(hi), self.max)
        if hi < lo:
            lo, hi = self.min, self.max
        return lo, hi

    def summary(self) -> dict[str, float]:
        return {"min": self.min, "max": self.max, "batches": self.batches, "sentinels": self.sentinels}


def percentile_range(hist: StreamingHistogram, percentile: float) -> tuple[float, float]:
    """Clip both tails at ``percentile`` (a one-sided tensor such as a ReLU output keeps its 0)."""
    hi = hist.percentile(percentile)
    lo = hist.percentile(100.0 - percentile)
    if hist.lo >= 0.0:
        lo = hist.lo
    return lo, hi


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    if q.sum() <= 0 or p.sum() <= 0:
        return math.inf
    p = p / p.sum()
    q = q / q.sum()
    q = np.where(mask & (q <= 0), 1e-12, q)
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _best_kl_threshold(counts: np.ndarray, levels: int) -> int:
    """TensorRT's entropy calibration on a one-sided histogram: the bin index to clip at.

    For each candidate threshold i, P is the histogram clipped at i (outliers folded into the last
    bin) and Q the same mass quantized to ``levels`` levels then expanded back onto the non-empty
    bins; the threshold with the smallest KL(P || Q) wins.
    """
    n = len(counts)
    if n <= levels:
        return n
    # TensorRT's lower bound: fewer than `levels` bins would make Q equal P and reward any clipping.
    start = levels
    best_i, best_kl = n, math.inf
    # Coarser steps on large histograms keep the search O(n * levels / step).
    step = max(1, (n - start) // 512)
    for i in range(start, n + 1, step):
        p = counts[:i].astype(np.float64).copy()
        p[i - 1] += counts[i:].sum()
        if p.sum() == 0:
            continue
        src = counts[:i].astype(np.float64)
        nonzero = src > 0
        group = (np.arange(i) * levels) // i  # i bins merged into `levels` groups of near-equal width
        group_mass = np.bincount(group, weights=src, minlength=levels)
        group_nonzero = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
        per_bin = np.divide(group_mass, group_nonzero, out=np.zeros(levels), where=group_nonzero > 0)
        q = np.where(nonzero, per_bin[group], 0.0)
        kl = _kl_divergence(p, q)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def entropy_range(hist: StreamingHistogram, observed_min: float, observed_max: float) -> tuple[float, float]:
    """Entropy (KL) calibration. One-sided tensors search the upper clip over 255 levels; two-sided
    tensors fold the histogram onto |x| and search a symmetric clip over 128 levels per side."""
    if hist.empty or hist.counts.sum() == 0:
        return observed_min, observed_max
    # Exact zeros (ReLU outputs, padding) are representable exactly whatever the clip; left in, their
    # spike dominates P and the search clips the informative tail far too hard.
    if hist.lo >= 0.0:
        counts = hist.counts.copy()
        counts[0] = 0.0
        i = _best_kl_threshold(counts, 255)
        hi = hist.lo + i * (hist.hi - hist.lo) / hist.bins
        return observed_min, hi
    bound = max(abs(hist.lo), abs(hist.hi))
    folded, _ = np.histogram(np.abs(hist.centers), bins=hist.bins, range=(0.0, bound), weights=hist.counts)
    folded[0] = 0.0
    i = _best_kl_threshold(folded, 128)
    t = i * bound / hist.bins
    return max(observed_min, -t), min(observed_max, t)


def mse_range(hist: StreamingHistogram, observed_min: float, observed_max: float, *,
              symmetric: bool = False, steps: int = 100) -> tuple[float, float]:
    """Search the clip range (the observed range shrunk by a factor in (0, 1]) that minimises the
    expected squared quantization error over the histogram (bin centres weighted by counts)."""
    if hist.empty or hist.counts.sum() == 0:
        return observed_min, observed_max
    x, w = hist.centers, hist.counts
    keep = w > 0
    x, w = x[keep], w[keep]
    best = (math.inf, observed_min, observed_max)
    for alpha in np.linspace(1.0, 1.0 / steps, steps):
        lo, hi = observed_min * alpha, observed_max * alpha
        scale, zp = qparams(lo, hi, symmetric=symmetric)
        err = float(np.sum(w * (x - fake_quantize(x, scale, zp)) ** 2))
        # A strictly smaller error (relative margin) is needed to shrink: ties keep the wider range.
        if not math.isfinite(best[0]) or err < best[0] * (1.0 - 1e-9):
            best = (err, lo, hi)
    return best[1], best[2]


def range_method(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(stats: RangeStats, percentile, symmetric) -> (lo, hi)`` as ``name``."""
    return RANGE_METHOD_FUNCS.register(name)


@range_method("minmax")
def _minmax(stats: RangeStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    return stats.min, stats.max


@range_method("moving_average")
def _moving_average(stats: RangeStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    return stats.ema_min, stats.ema_max


@range_method("percentile")
def _percentile(stats: RangeStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    return percentile_range(stats.hist, percentile)


@range_method("entropy")
def _entropy(stats: RangeStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    return entropy_range(stats.hist, stats.min, stats.max)


@range_method("mse")
def _mse(stats: RangeStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    return mse_range(stats.hist, stats.min, stats.max, symmetric=symmetric)


#: Range methods a user can name, in registration order (``auto`` picks among them through the runtime).
RANGE_METHODS = tuple(RANGE_METHOD_FUNCS.names_in_order())


# ------------------------------------------------------------------------------------------------
# Calibration samples
# ------------------------------------------------------------------------------------------------
def stratified_indices(labels: Sequence[Any] | None, n: int, seed: int = 0, *, total: int | None = None) -> list[int]:
    """``n`` indices drawn deterministically; with labels, each label gets a share proportional to its
    frequency (at least one while ``n`` allows), so rare classes are not left out of the ranges.

    >>> stratified_indices([0, 0, 0, 1], 2, seed=0)
    [1, 3]
    """
    rng = np.random.default_rng(seed)
    size = len(labels) if labels is not None else int(total or 0)
    if n >= size:
        return list(range(size))
    if labels is None:
        return sorted(int(i) for i in rng.choice(size, size=n, replace=False))
    labels_arr = np.asarray(labels)
    classes, inverse = np.unique(labels_arr, return_inverse=True)
    per_class = [np.flatnonzero(inverse == k) for k in range(len(classes))]
    for idx in per_class:
        rng.shuffle(idx)
    sizes = np.array([len(i) for i in per_class])
    if n < len(classes):
        # Fewer samples than classes: one sample each from n classes picked at random.
        quota = np.zeros(len(classes), dtype=int)
        quota[rng.choice(len(classes), size=n, replace=False)] = 1
    else:
        # One per class first (rare classes must shape the ranges too), the rest proportional to size.
        quota = np.ones(len(classes), dtype=int)
        rest = n - len(classes)
        quota += np.minimum(np.floor(rest * (sizes - 1) / max(int((sizes - 1).sum()), 1)).astype(int), sizes - 1)
        order = sorted(range(len(classes)), key=lambda c: (-(sizes[c] - quota[c]), c))
        k = 0
        while quota.sum() < n:
            c = order[k % len(order)]
            if quota[c] < sizes[c]:
                quota[c] += 1
            k += 1
    chosen = np.concatenate([per_class[c][: quota[c]] for c in range(len(classes))])
    return sorted(int(i) for i in chosen)


def to_numpy_sample(sample: Any) -> tuple[np.ndarray, ...]:
    items = sample if isinstance(sample, (tuple, list)) else (sample,)
    out = []
    for item in items:
        if hasattr(item, "detach"):
            item = item.detach().cpu().numpy()
        out.append(np.asarray(item))
    return tuple(out)


def check_calibration(samples: Sequence[Any], example_inputs: Sequence[Any], *, source: str = "calibration data",
                      min_samples: int = MIN_CALIBRATION_SAMPLES) -> list[tuple[np.ndarray, ...]]:
    """Validate calibration samples against the model's example inputs; return them as numpy tuples.

    Each sample is a tuple with one array per model input, shaped like the example input (batch 1).
    Float inputs given as float64 are cast to float32; an integer/float mismatch, another shape, a
    NaN/inf or too few samples is an InputError naming ``source``.
    """
    examples = to_numpy_sample(tuple(example_inputs))
    if samples is None or len(samples) == 0:
        raise InputError(f"{source}: calibration set is empty")
    if len(samples) < min_samples:
        raise InputError(f"{source}: {len(samples)} calibration sample(s) is too few for stable int8 ranges; "
                         f"give at least {min_samples}")
    checked: list[tuple[np.ndarray, ...]] = []
    for n, sample in enumerate(samples):
        arrays = to_numpy_sample(sample)
        if len(arrays) != len(examples):
            raise InputError(f"{source}: sample {n} has {len(arrays)} input(s), the model takes {len(examples)}")
        fixed = []
        for k, (a, ex) in enumerate(zip(arrays, examples)):
            if tuple(a.shape) != tuple(ex.shape):
                raise InputError(f"{source}: sample {n} input {k} has shape {tuple(a.shape)}, the model takes "
                                 f"{tuple(ex.shape)}")
            ex_float = np.issubdtype(ex.dtype, np.floating)
            a_float = np.issubdtype(a.dtype, np.floating)
            if ex_float != a_float or (not ex_float and not np.issubdtype(a.dtype, np.integer)):
                raise InputError(f"{source}: sample {n} input {k} has dtype {a.dtype}, the model takes {ex.dtype}")
            if a_float and not np.isfinite(a).all():
                raise InputError(f"{source}: sample {n} input {k} contains NaN or inf")
            fixed.append(a.astype(ex.dtype, copy=False))
        checked.append(tuple(fixed))
    return checked


def load_npz_calibration(path: str, example_inputs: Sequence[Any] | None = None) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray | None]:
    """Read ``npz:PATH`` data: arrays ``x0``, ``x1``, ... (one per model input, first axis = samples)
    and an optional ``y`` of labels. Returns (samples with a batch axis of 1, labels or None)."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: calibration file does not exist")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise InputError(f"{p}: not a readable .npz file ({exc})") from None
    xs = []
    k = 0
    while f"x{k}" in arrays:
        xs.append(arrays[f"x{k}"])
        k += 1
    if not xs:
        raise InputError(f"{p}: no arrays named x0, x1, ... (found: {', '.join(sorted(arrays)) or 'none'})")
    count = xs[0].shape[0] if xs[0].ndim else 0
    if any(x.ndim == 0 or x.shape[0] != count for x in xs):
        raise InputError(f"{p}: arrays x0.. must share their first (sample) axis")
    labels = arrays.get("y")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != count):
        raise InputError(f"{p}: 'y' must hold one label per sample ({count}), got shape {labels.shape}")
    samples = [tuple(x[i:i + 1] for x in xs) for i in range(count)]
    return samples, labels


@dataclass(frozen=True)
class CalibrationPlan:
    """Which samples calibrate and which (if any) judge the methods."""

    calibration: list[tuple[np.ndarray, ...]]
    labels: np.ndarray | None = None


def select_calibration(samples: Sequence[tuple[np.ndarray, ...]], labels: Iterable[Any] | None, n: int,
                       seed: int = 0) -> CalibrationPlan:
    """Draw ``n`` samples (stratified by label when labels exist), deterministic for a seed."""
    labels_list = list(labels) if labels is not None else None
    idx = stratified_indices(labels_list, n, seed, total=len(samples))
    chosen = [samples[i] for i in idx]
    chosen_labels = np.asarray([labels_list[i] for i in idx]) if labels_list is not None else None
    return CalibrationPlan(chosen, chosen_labels)
