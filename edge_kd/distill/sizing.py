"""Budget-driven sizing: the largest student of a family whose shipped bundle fits the profile.

The bundle is the int8 artifact plus its preprocessing assets (e.g. the text spec with the label
names); both its raw bytes (``budgets.artifact_size``) and its gzip bytes (``budgets.download_size``)
must fit. The search:

1. **Calibrate** with one real export of the smallest student: ``overhead = bytes - params * bpw``
   (bytes per weight: 1 for int8, 4 for fp32). If even that bundle is over budget, stop with an
   InputError that names the smallest achievable size.
2. **Predict** ``bytes(knob) = overhead + params(knob) * bpw`` (parameter counts come from a meta-device
   build, free even for big embedding tables) and **binary-search** the monotone knob for the largest
   value under ``budget * (1 - margin)``.
3. **Verify** with a real export of that student. Each measurement refits the line through the
   smallest and the latest point (so a runtime that keeps some tensors in float, e.g. embedding
   tables, is learned from data); over budget -> shrink and retry, automatically.

The measurer is injectable (``measure(model, example_inputs, target) -> Measurement``). The default
one builds the int8 artifact with ``edge_kd.quantize.quantize_model`` when the profile is int8; if
int8 export is unavailable it exports fp32 with ``edge_kd.export.export_model`` and divides by 4,
and says so (``method = "fp32-export/4 (estimate)"``) in the decision it records.

    decision = choose_student(make_family("text_hashed", num_classes=77), load_target("ort-mobile"),
                              extra_bytes=spec.spec_bytes())
    decision.value, decision.real_bytes, decision.to_dict()
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edge_kd.errors import InputError
from edge_kd.pipeline.files import gzip_size
from edge_kd.units import format_bytes

if TYPE_CHECKING:
    from edge_kd.models.students.base import StudentFamily
    from edge_kd.targets import TargetProfile


@dataclass(frozen=True)
class Measurement:
    """Bytes of the artifact the app ships, raw and gzip, and how they were obtained."""

    bytes: int
    gzip_bytes: int
    method: str = "measured"


Measurer = Callable[[Any, tuple, "TargetProfile"], Measurement]


@dataclass(frozen=True)
class SizeBudget:
    """Limits on the bundle: raw bytes and gzip (download) bytes; ``None`` = unlimited."""

    artifact_size: int | None
    download_size: int | None = None
    margin: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin < 0.5:
            raise InputError(f"sizing margin must be in [0, 0.5), got {self.margin}")
        if self.artifact_size is None and self.download_size is None:
            raise InputError("sizing needs a size budget: set budgets.artifact_size or budgets.download_size")

    @classmethod
    def from_target(cls, target: "TargetProfile", margin: float = 0.05) -> "SizeBudget":
        return cls(target.budgets.artifact_size, target.budgets.download_size, margin)

    def fits(self, raw: float, gz: float, *, with_margin: bool) -> bool:
        scale = (1.0 - self.margin) if with_margin else 1.0
        ok = self.artifact_size is None or raw <= self.artifact_size * scale
        return ok and (self.download_size is None or gz <= self.download_size * scale)

    def describe(self) -> str:
        parts = []
        if self.artifact_size is not None:
            parts.append(f"{format_bytes(self.artifact_size)} raw")
        if self.download_size is not None:
            parts.append(f"{format_bytes(self.download_size)} gzip")
        return " and ".join(parts)


@dataclass
class SizingDecision:
    """What the search chose and why; recorded in the build manifest's distill stage details."""

    family: str
    knob: str
    value: Any
    params: int
    predicted_bytes: int
    predicted_gzip_bytes: int
    real_bytes: int
    real_gzip_bytes: int
    extra_bytes: int
    budget_bytes: int | None
    budget_gzip_bytes: int | None
    margin: float
    method: str
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bundle_bytes(self) -> int:
        return self.real_bytes + self.extra_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bundle_bytes": self.bundle_bytes,
                "bundle_gzip_bytes": self.real_gzip_bytes + self.extra_bytes}


def _nominal_bytes_per_weight(target: "TargetProfile") -> float:
    return 1.0 if target.quantization.mode == "int8" else 4.0


def choose_student(family: "StudentFamily", target: "TargetProfile", *, measure: Measurer | None = None,
                   budget: SizeBudget | None = None, extra_bytes: int | Callable[[Any], int] = 0,
                   max_attempts: int = 6, log: Callable[[str], None] | None = None) -> SizingDecision:
    """The largest knob value of ``family`` whose bundle fits ``target``'s size budget, verified
    by a real export. ``extra_bytes`` are the bundle's other files (preprocessing spec, labels): a
    number, or a function of the knob value when they grow with it (a wordpiece student's vocabulary).

    Raises InputError when even the smallest student does not fit (naming its size).

    >>> decision = choose_student(family, load_target("tflite-int8"), extra_bytes=1200)  # doctest: +SKIP
    """
    budget = budget or SizeBudget.from_target(target)
    measure = measure or default_measurer()
    log = log or (lambda msg: None)
    values = list(family.values)
    attempts: list[dict[str, Any]] = []
    extra_of = _extra_of(extra_bytes)

    def real(index: int) -> Measurement:
        model = family.build(values[index]).eval()
        m = measure(model, family.example_inputs(values[index]), target)
        attempts.append({"value": values[index], "params": family.num_params(values[index]), "bytes": m.bytes,
                         "gzip_bytes": m.gzip_bytes, "bundle_bytes": m.bytes + extra_of(values[index]),
                         "method": m.method})
        log(f"sizing: {family.knob}={values[index]} -> {format_bytes(m.bytes)} ({m.method})")
        return m

    params_cache: dict[int, int] = {}

    def params(index: int) -> int:
        if index not in params_cache:
            params_cache[index] = family.num_params(values[index])
        return params_cache[index]

    small = real(0)
    extra_bytes = extra_of(values[0])
    if not budget.fits(small.bytes + extra_bytes, small.gzip_bytes + extra_bytes, with_margin=False):
        if budget.artifact_size is not None:
            from edge_kd.quantize.embeddings import budget_error

            # The tables alone are over budget: say which [quantization] embeddings scheme would fit.
            why = budget_error(family.build(values[0]), target, budget.artifact_size - extra_bytes)
            if why:
                raise InputError(f"target {target.name!r}, smallest {family.name} student "
                                 f"({family.knob}={values[0]}): {why}")
        raise InputError(
            f"size budget {budget.describe()} of target {target.name!r} is smaller than the smallest "
            f"{family.name} student: {family.knob}={values[0]} gives a bundle of "
            f"{format_bytes(small.bytes + extra_bytes)} ({format_bytes(small.gzip_bytes + extra_bytes)} gzip); "
            f"the smallest achievable size is {format_bytes(small.bytes + extra_bytes)}")
    bpw = _nominal_bytes_per_weight(target)
    gzip_ratio = small.gzip_bytes / max(small.bytes, 1)
    best_ok = 0  # the largest index verified to fit
    best_m = small
    upper = len(values) - 1  # the largest index not yet proven too big
    predicted = (small.bytes, small.gzip_bytes)
    for _ in range(max_attempts):
        def predict(i: int) -> tuple[float, float]:
            raw = small.bytes + (params(i) - params(0)) * bpw
            return raw + extra_of(values[i]), raw * gzip_ratio + extra_of(values[i])

        lo, hi = best_ok, upper  # invariant: lo fits (verified); search the largest predicted fit in (lo, hi]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if budget.fits(*predict(mid), with_margin=True):
                lo = mid
            else:
                hi = mid - 1
        if lo == best_ok:
            break
        candidate = lo
        p_raw, p_gz = predict(candidate)
        m = real(candidate)
        attempts[-1].update(predicted_bundle_bytes=int(p_raw), predicted_bundle_gzip_bytes=int(p_gz))
        if params(candidate) > params(0):
            bpw = max((m.bytes - small.bytes) / (params(candidate) - params(0)), 1e-6)
        gzip_ratio = max(gzip_ratio, m.gzip_bytes / max(m.bytes, 1))
        extra_bytes = extra_of(values[candidate])
        if budget.fits(m.bytes + extra_bytes, m.gzip_bytes + extra_bytes, with_margin=False):
            best_ok, best_m, predicted = candidate, m, (int(p_raw) - extra_bytes, int(p_gz) - extra_bytes)
            if not budget.fits(m.bytes + extra_bytes, m.gzip_bytes + extra_bytes, with_margin=True):
                break  # fits, inside the margin band: larger students would not
        else:
            log(f"sizing: {family.knob}={values[candidate]} is over budget after export; shrinking")
            upper = candidate - 1
    value = values[best_ok]
    return SizingDecision(family.name, family.knob, value, params(best_ok), int(predicted[0]), int(predicted[1]),
                          best_m.bytes, best_m.gzip_bytes, int(extra_of(value)), budget.artifact_size,
                          budget.download_size, budget.margin, best_m.method, attempts)


def _extra_of(extra_bytes: int | Callable[[Any], int]) -> Callable[[Any], int]:
    """The bundle's other bytes as a function of the knob value."""
    if callable(extra_bytes):
        return lambda value: int(extra_bytes(value))
    return lambda value: int(extra_bytes)


# ---- measurers ---------------------------------------------------------------------------------
def export_measurer(*, scale_int8_estimate: bool = True, work_dir: str | None = None) -> Measurer:
    """Measure with a real fp32 export (``edge_kd.export.export_model``). For an int8 profile the
    bytes are divided by 4 and the method says "estimate" (used until int8 export is available)."""

    def measure(model: Any, example_inputs: tuple, target: "TargetProfile") -> Measurement:
        from edge_kd.export import export_model

        tmp = Path(tempfile.mkdtemp(prefix="edge_kd-size-", dir=work_dir))
        try:
            result = export_model(model, example_inputs, target, tmp, check_parity=False)
            raw, gz = result.primary.stat().st_size, gzip_size(result.primary)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if scale_int8_estimate and target.quantization.mode == "int8":
            return Measurement(raw // 4, gz // 4, "fp32-export/4 (estimate)")
        return Measurement(raw, gz, "fp32-export")

    return measure


def int8_measurer(*, work_dir: str | None = None, calibration_samples: int = 8) -> Measurer:
    """Measure the real int8 artifact (``edge_kd.quantize.quantize_model``) built from random
    calibration inputs (sizes do not depend on calibration values); no accuracy fallback."""

    def measure(model: Any, example_inputs: tuple, target: "TargetProfile") -> Measurement:
        from edge_kd.quantize import quantize_model

        calib = [tuple(_random_like(x, seed=i) for x in example_inputs) for i in range(calibration_samples)]
        tmp = Path(tempfile.mkdtemp(prefix="edge_kd-size-", dir=work_dir))
        try:
            result = quantize_model(model, example_inputs, target, calib, tmp, method="minmax",
                                    max_fallback_layers=0, ship="int8")
            raw, gz = result.primary.stat().st_size, gzip_size(result.primary)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Measurement(raw, gz, "int8-export")

    return measure


def _random_like(x: Any, seed: int) -> Any:
    import numpy as np
    import torch

    t = torch.as_tensor(x)
    gen = torch.Generator().manual_seed(seed)
    if t.dtype.is_floating_point:
        lo, hi = float(t.min()), float(t.max())
        out = torch.rand(t.shape, generator=gen) * max(hi - lo, 1.0) + min(lo, 0.0)
    else:
        out = torch.randint(0, max(int(t.max()) + 1, 2), t.shape, generator=gen, dtype=t.dtype)
    return np.asarray(out.numpy())


def default_measurer(*, work_dir: str | None = None) -> Measurer:
    """int8 via quantize_model for int8 profiles when importable (fp32 export bytes / 4, marked as an
    estimate, when it is not). When the runtime's quantizer rejects the model, the real fp32 file
    is measured and the method records why."""
    int8 = int8_measurer(work_dir=work_dir)
    fp32 = export_measurer(work_dir=work_dir)

    def measure(model: Any, example_inputs: tuple, target: "TargetProfile") -> Measurement:
        if target.quantization.mode == "int8":
            try:
                import edge_kd.quantize as q

                available = hasattr(q, "quantize_model")
            except ImportError:
                available = False
            if available:
                try:
                    return int8(model, example_inputs, target)
                except InputError as exc:
                    # The runtime's quantizer cannot build this model: the app would ship the fp32
                    # file, so size that one (real bytes, no scaling) and say why.
                    m = export_measurer(scale_int8_estimate=False, work_dir=work_dir)(model, example_inputs, target)
                    return Measurement(m.bytes, m.gzip_bytes, f"fp32-export (int8 failed: {exc})")
        return fp32(model, example_inputs, target)

    return measure


# ---- objectives ----------------------------------------------------------------------------------
#: ``[student] objective``: "best-under-budget" = the largest student that fits (``choose_student``);
#: "smallest-within-drop" = the smallest one whose validation metric is within the profile's
#: ``budgets.accuracy_drop`` of the teacher's (``smallest_within_drop``).
OBJECTIVES = ("best-under-budget", "smallest-within-drop")


def smallest_within_drop(family: "StudentFamily", target: "TargetProfile", upper: SizingDecision, *,
                         evaluate: Callable[[Any], float], min_allowed: float, measure: Measurer | None = None,
                         extra_bytes: int | Callable[[Any], int] = 0, max_trainings: int = 8,
                         log: Callable[[str], None] | None = None) -> tuple[SizingDecision, list[dict[str, Any]]]:
    """The smallest knob value of ``family`` (up to ``upper``, the best-under-budget choice) whose
    validation metric ``evaluate(value)`` is ``>= min_allowed``; each candidate tried is exported for
    real (its bytes) and evaluated (one training each). Returns the decision and every candidate
    (``value``, ``params``, ``bytes``, ``gzip_bytes``, ``bundle_bytes``, ``bundle_gzip_bytes``,
    ``val_metric``, ``within_drop``) in the order tried.

    The metric is assumed to grow with the knob (a bisection); when even ``upper`` misses the drop,
    ``upper`` is returned (the best the budget allows) with ``within_drop`` false, so the gate says by
    how much it missed instead of the build stopping. ``max_trainings`` bounds the bisection (the
    smallest value proven good so far wins).

    >>> decision, tried = smallest_within_drop(family, target, choose_student(family, target),  # doctest: +SKIP
    ...                                        evaluate=train_and_validate, min_allowed=0.95)
    """
    measure = measure or default_measurer()
    log = log or (lambda msg: None)
    values = list(family.values)
    measured = {a["value"]: a for a in upper.attempts}  # bytes already known from the size search
    candidates: list[dict[str, Any]] = []
    extra_of = _extra_of(extra_bytes)

    def tried(index: int) -> dict[str, Any]:
        value = values[index]
        if value in measured:
            raw, gz, method = measured[value]["bytes"], measured[value]["gzip_bytes"], measured[value]["method"]
        else:
            m = measure(family.build(value).eval(), family.example_inputs(value), target)
            raw, gz, method = m.bytes, m.gzip_bytes, m.method
        metric = float(evaluate(value))
        extra_bytes = extra_of(value)
        c = {"value": value, "params": family.num_params(value), "bytes": int(raw), "gzip_bytes": int(gz),
             "bundle_bytes": int(raw) + extra_bytes, "bundle_gzip_bytes": int(gz) + extra_bytes,
             "val_metric": metric, "within_drop": metric >= min_allowed, "method": method}
        candidates.append(c)
        log(f"sizing: {family.knob}={value} -> bundle {format_bytes(c['bundle_bytes'])}, val metric "
            f"{metric:.4f} ({'within' if c['within_drop'] else 'outside'} the drop, needs >= {min_allowed:.4f})")
        return c

    hi = values.index(upper.value)
    best = tried(hi)
    if best["within_drop"]:
        lo = 0
        while lo < hi and len(candidates) < max_trainings:
            mid = (lo + hi) // 2
            c = tried(mid)
            if c["within_drop"]:
                hi, best = mid, c
            else:
                lo = mid + 1
    else:
        log(f"sizing: even {family.knob}={upper.value}, the largest student under the budget, misses the "
            f"allowed drop; keeping it")
    decision = SizingDecision(family.name, family.knob, best["value"], best["params"], best["bytes"],
                              best["gzip_bytes"], best["bytes"], best["gzip_bytes"], int(extra_of(best["value"])),
                              upper.budget_bytes, upper.budget_gzip_bytes, upper.margin, best["method"],
                              list(upper.attempts))
    return decision, candidates
