"""Static int8 per target, accuracy-aware: calibrate, quantize, check accuracy in the runtime, fall back.

One entry point for every runtime, :func:`quantize_model`. It reads the scheme and the range method from
the target profile (``[quantization]``), calibrates on the given samples, builds the int8 artifact with
the runtime's own quantizer (ExecuTorch: PT2E + XNNPACK quantizer; ONNX Runtime: QDQ via
``quantize_static``; LiteRT: PT2E via litert-torch), measures accuracy of the int8 **and** the fp32
artifact through the runtime, and when the drop is larger than the profile allows, keeps the most
sensitive layers in float one at a time until it fits. It always writes its best candidate and a
report, also when the budget cannot be met (``report["fallback"]["met_budget"]`` is then False and
``missed_by_pt`` says by how much).

    from edge_kd.quantize import quantize_model
    result = quantize_model(model, (torch.rand(1, 3, 224, 224),), load_target("tflite-int8"),
                            calibration=samples, out_dir=Path("build/q"), eval_samples=eval_set)
    result.primary           # build/q/model.int8.tflite
    result.report["accuracy"]

Guards that keep real models from silently breaking (each found on MiniLM/EfficientNet in
benchmarks/int8.py): the model's outputs keep min/max ranges (clipping the top logits changes the
argmax); attention-mask arithmetic (``scores + mask`` with -3.4e38 sentinels) stays float and sentinels
never enter a range; embedding tables are stored per ``[quantization] embeddings`` (int8 rows by
default, see edge_kd.quantize.embeddings); integer ``x + 1`` stays integer (the stock XNNPACK/litert transforms make it
float and crash on index ops); on every runtime, models with LayerNorm get their weighted ops (and
embedding tables) quantized only: their residual adds carry outlier channels of +-200, and int8 adds,
attention products and softmax lost 3.5 pt of MiniLM's accuracy on ONNX Runtime
(edge_kd.quantize.sensitivity.is_transformer).

Importing this package is light; torch and the runtimes are imported when quantize_model runs.
"""
from __future__ import annotations

import logging
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from edge_kd.errors import InputError
from edge_kd.quantize.calibration import (MIN_CALIBRATION_SAMPLES, RANGE_METHODS, check_calibration,
                                          select_calibration)

if TYPE_CHECKING:
    from edge_kd.targets import TargetProfile

__all__ = ["QuantizeResult", "quantize_model", "backend_for", "RANGE_METHODS", "AUTO_ORDER"]

log = logging.getLogger("edge_kd.quantize")

#: Methods ``auto`` tries, in order of preference when two tie on accuracy and output SQNR.
AUTO_ORDER = ("minmax", "percentile", "mse", "entropy", "moving_average")
#: How many layers the fallback may keep in float before it gives up (each step re-exports the model).
MAX_FALLBACK_LAYERS = 8
#: Samples of the evaluation set ``auto`` uses to pick the method (the full set judges the result).
SELECTION_SAMPLES = 200
#: How many methods (highest output SQNR on those rows) ``auto`` judges again on the whole evaluation set.
FINALISTS = 3
#: Output SQNRs closer than this (dB) count as equally faithful; the metric then decides.
SQNR_TIE_DB = 0.5


@dataclass
class QuantizeResult:
    """What quantize_model wrote: the artifact the app ships, every file, and the report."""

    primary: Path
    artifacts: list[Path]
    report: dict[str, Any]
    fp32_artifacts: list[Path] = field(default_factory=list)
    #: The fp32 file built by the same exporter (the reference the accuracy drop is measured against).
    fp32_primary: Path | None = None
    #: Which candidate ``primary`` is: "int8" (static), "fp32", or a runtime's other scheme
    #: (report["selection"] says why).
    shipped: str = "int8"
    #: Files of every candidate built, by name (the shipped one included).
    candidates: dict[str, list[Path]] = field(default_factory=dict)


def backend_for(target: "TargetProfile") -> Any:
    """The backend object that builds int8 artifacts for ``target``'s runtime (its registry spec's)."""
    from edge_kd.runtimes.registry import runtime_spec

    spec = runtime_spec(target.runtime.name)
    if spec.int8_backend is None:
        raise InputError(f"target {target.name!r}: no int8 backend for runtime {spec.name!r}")
    return spec.backend(target.quantization)


# ------------------------------------------------------------------------------------------------
# Running artifacts
# ------------------------------------------------------------------------------------------------
def open_artifact(path: Path, runtime: str, threads: int = 1) -> Any:
    """A runner taking float inputs (LiteRT full-integer models get quantized I/O on the way)."""
    from edge_kd.runtimes import open_runner

    return open_runner(path, threads=threads, runtime=runtime)


def _outputs(runner: Any, inputs: Sequence[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    return [np.asarray(runner.run(list(x))[0], dtype=np.float32) for x in inputs]


def _sqnr_db(ref: list[np.ndarray], out: list[np.ndarray]) -> float:
    signal = sum(float((r.astype(np.float64) ** 2).sum()) for r in ref)
    noise = sum(float(((r.astype(np.float64) - o) ** 2).sum()) for r, o in zip(ref, out))
    if noise == 0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def _significantly_better(a: dict[str, Any], b: dict[str, Any], higher: bool) -> bool:
    """Is candidate ``a`` more accurate than ``b`` beyond row-sampling noise? Top-1 tasks compare row by
    row (the rows only one of them gets right: wins - losses > 2 sqrt(wins + losses)); other metrics
    (WAPE, recall@10) by the metric itself."""
    if a.get("_correct") is not None and b.get("_correct") is not None:
        from edge_kd.metrics import significantly_more_correct

        return significantly_more_correct(a["_correct"], b["_correct"])
    return _metric_beats(a["metric"], b["metric"], higher)


def _metric_beats(a: float, b: float, higher: bool) -> bool:
    """Is metric value ``a`` strictly better than ``b`` (beyond float noise)?"""
    return a > b + 1e-12 if higher else a < b - 1e-12


def _top1(outputs: list[np.ndarray]) -> np.ndarray:
    return np.array([int(np.argmax(o.reshape(-1))) for o in outputs])


def _judge(outputs: list[np.ndarray], reference: np.ndarray, task: str) -> float:
    """The accuracy-check metric: top-1 accuracy (or agreement), or recall@10 of next-purchase target sets."""
    if task == "ranking":
        from edge_kd.metrics import recall_at_k

        return recall_at_k(reference, np.stack([o.reshape(-1) for o in outputs]), 10)
    return float((_top1(outputs) == reference).mean())


def _p50_ms(runner: Any, sample: tuple[np.ndarray, ...], runs: int = 30, warmup: int = 3) -> float:
    """A quick median: enough to price a fallback; edge_kd.bench measures release numbers."""
    for _ in range(warmup):
        runner.run(list(sample))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run(list(sample))
        times.append((time.perf_counter() - start) * 1000.0)
    return round(statistics.median(times), 4)


def _allowed_metric(target: "TargetProfile", fp32_metric: float, max_accuracy_drop: Any,
                    higher: bool = True) -> tuple[float, str]:
    """The worst metric int8 may reach: the lowest accuracy, or (``higher`` False) the highest error."""
    if max_accuracy_drop is None:
        drop = target.budgets.accuracy_drop
        return drop.limit(fp32_metric, higher), str(drop)
    if isinstance(max_accuracy_drop, str):
        from edge_kd.units import parse_accuracy_drop

        try:
            drop = parse_accuracy_drop(max_accuracy_drop)
        except ValueError as exc:
            raise InputError(f"max_accuracy_drop: {exc}") from None
        return drop.limit(fp32_metric, higher), str(drop)
    if hasattr(max_accuracy_drop, "limit"):
        return max_accuracy_drop.limit(fp32_metric, higher), str(max_accuracy_drop)
    value = float(max_accuracy_drop)
    if value < 0:
        raise InputError(f"max_accuracy_drop must not be negative, got {value}")
    return (fp32_metric - value if higher else fp32_metric + value), f"{value * 100:g}pt"


def _normalise_eval(eval_samples: Any, example_inputs: tuple) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray | None]:
    """eval_samples: a sequence of (inputs_tuple, label) pairs, or (list of inputs, labels)."""
    if eval_samples is None:
        return [], None
    if isinstance(eval_samples, tuple) and len(eval_samples) == 2 and not isinstance(eval_samples[1], tuple) \
            and len(eval_samples[0]) == len(eval_samples[1]) and not np.isscalar(eval_samples[1]):
        inputs, labels = list(eval_samples[0]), np.asarray(eval_samples[1])
    else:
        pairs = list(eval_samples)
        inputs, labels = [p[0] for p in pairs], np.asarray([p[1] for p in pairs])
    checked = check_calibration(inputs, example_inputs, source="evaluation data", min_samples=1)
    return checked, labels


# ------------------------------------------------------------------------------------------------
# The entry point
# ------------------------------------------------------------------------------------------------
def quantize_model(model: Any, example_inputs: tuple, target: "TargetProfile", calibration: Sequence[Any],
                   out_dir: Path, *, method: str | None = None, eval_samples: Any = None,
                   task: str = "classification", max_accuracy_drop: Any = None, name: str = "model",
                   calibration_labels: Sequence[Any] | None = None, num_samples: int | None = None,
                   seed: int = 0, max_fallback_layers: int = MAX_FALLBACK_LAYERS,
                   auto_methods: Sequence[str] = AUTO_ORDER, ship: str | None = None,
                   bundle_extra_bytes: tuple[int, int] = (0, 0), reference_metric: float | None = None,
                   latency_fn: Callable[..., dict[str, dict[str, Any]]] | None = None,
                   emulate_fn: Callable[[Path, tuple], dict[str, Any]] | None = None,
                   ship_from: str | None = None) -> QuantizeResult:
    """Static int8 for ``target``, checked in its runtime against the fp32 artifact.

    ``calibration``: samples, each a tuple with one array/tensor per model input shaped like
    ``example_inputs`` (batch 1); drawn from training data. When there are more than the profile's
    ``calibration_samples`` (or ``num_samples``), a seeded subset is taken, stratified by
    ``calibration_labels`` when given. ``method``: a range method or ``auto`` (default: the profile's).
    ``eval_samples``: ``[(inputs_tuple, label), ...]`` judged by top-1 accuracy through the runtime;
    without it, the calibration samples are judged by top-1 agreement with the fp32 artifact.
    ``max_accuracy_drop``: overrides the profile's ``budgets.accuracy_drop`` ("0.5pt", "2%", or a
    float in metric units). ``auto_methods``: the candidates ``auto`` builds and measures (each is one
    export and one evaluation in the runtime).

    ``reference_metric``: the teacher's metric on the same evaluation rows; a candidate must then also stay
    within the accuracy budget of it (the gate's contract), not only of the fp32 artifact.

    ``ship`` (default: the profile's ``quantization.ship``): which artifact becomes ``primary``;
    ``ship_from`` says who chose it, for the record (default: the profile, or the caller when ``ship``
    is given).
    ``fastest-within-budget`` (and ``smallest-within-budget``, which ships the smallest instead) also
    builds the runtime's other schemes (:mod:`edge_kd.quantize.schemes`),
    times every candidate interleaved in one process, and ships the fastest that meets the size
    budgets (``bundle_extra_bytes``: bytes and gzip bytes of the files shipped beside the model), the
    accuracy budget and the op policy; ``int8`` / ``fp32`` ship that one. ``report["selection"]``
    records every candidate and the decision. ``latency_fn(paths, inputs=..., threads=...)`` replaces
    the interleaved measurement (:func:`edge_kd.bench.compare.interleaved_latency`, same return shape).
    When the profile's ship choice is emulated (:meth:`TargetProfile.ship_core`), each candidate is also
    counted on that ARM core and the estimates decide; ``emulate_fn(path, inputs)`` replaces
    :func:`edge_kd.emulate.emulate_artifact` (same return shape).

    >>> result = quantize_model(tiny_cnn(), (torch.rand(1, 3, 32, 32),), load_target("ort-mobile"),
    ...                         [(np.random.rand(1, 3, 32, 32).astype("float32"),) for _ in range(32)],
    ...                         Path("build/q"))                                   # doctest: +SKIP
    >>> result.primary.name                                                         # doctest: +SKIP
    'model.int8.ort'
    """
    import torch

    from edge_kd.quantize.sensitivity import layer_sensitivity, quantizable_layers

    started = time.perf_counter()
    settings = target.quantization
    if settings.mode != "int8":
        raise InputError(f"target {target.name!r} has quantization.mode = {settings.mode!r}; nothing to quantize")
    if task not in ("classification", "regression", "ranking"):
        raise InputError(f"task {task!r}: the int8 accuracy check supports 'classification' (top-1), "
                         "'regression' (WAPE of the one output) and 'ranking' (recall@10)")
    regression = task == "regression"
    method = method or settings.calibration_method
    from edge_kd.quantize.selection import CHOOSING_POLICIES, SHIP_POLICIES

    policy = ship or getattr(settings, "ship", "fastest-within-budget")
    if policy not in SHIP_POLICIES:
        raise InputError(f"ship {policy!r} is unknown; known: {', '.join(SHIP_POLICIES)}")
    if method != "auto" and method not in RANGE_METHODS:
        raise InputError(f"unknown calibration method {method!r}; known: auto, {', '.join(RANGE_METHODS)}")
    bad = [m for m in auto_methods if m not in RANGE_METHODS]
    if bad or not auto_methods:
        raise InputError(f"auto_methods: {bad or 'empty'}; known: {', '.join(RANGE_METHODS)}")
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"expected a torch nn.Module, got {type(model).__name__}")
    model = model.eval()
    example_inputs = tuple(example_inputs)
    if not quantizable_layers(model):
        raise InputError(f"{type(model).__name__}: the model has no quantizable layers (Conv1d/Conv2d/Linear); "
                         "int8 would not change it")
    samples = check_calibration(calibration, example_inputs)
    want = num_samples or settings.calibration_samples
    if want < MIN_CALIBRATION_SAMPLES:
        raise InputError(f"calibration_samples = {want} is too few; use at least {MIN_CALIBRATION_SAMPLES}")
    if calibration_labels is not None and len(calibration_labels) != len(samples):
        raise InputError(f"calibration labels: {len(calibration_labels)} labels for {len(samples)} samples")
    plan = select_calibration(samples, calibration_labels, want, seed)
    calib = plan.calibration
    eval_inputs, eval_labels = _normalise_eval(eval_samples, example_inputs)
    if not eval_inputs:
        eval_inputs, eval_labels = samples, None
    torch_example = tuple(torch.as_tensor(np.ascontiguousarray(a)) if not torch.is_tensor(a) else a
                          for a in example_inputs)

    backend = backend_for(target)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".quantize-work-", dir=out_dir))
    ext = backend.extension
    try:
        # ---- fp32 reference through the runtime ---------------------------------------------
        fp32_files = backend.export_fp32(model, torch_example, work / "fp32" / f"{name}.fp32.{ext}")
        fp32_primary = _primary(fp32_files, target)
        fp32_runner = open_artifact(fp32_primary, backend.runtime)
        fp32_out = _outputs(fp32_runner, eval_inputs)
        top1_task = False  # top-1 tasks also compare candidates row by row (``_significantly_better``)
        if regression:
            # An int8 forecast is judged by the error that matters (WAPE in units), not by SQNR alone.
            from edge_kd.metrics import wape

            reference_labels = (np.asarray(eval_labels, dtype=np.float64) if eval_labels is not None
                                else np.array([float(o.reshape(-1)[0]) for o in fp32_out]))
            metric_name = "wape" if eval_labels is not None else "wape_vs_fp32"

            def score(out: list[np.ndarray], n: int) -> float:
                return wape(reference_labels[:n], np.array([float(o.reshape(-1)[0]) for o in out]))
        elif task == "ranking" and eval_labels is not None:
            # Next-purchase: int8 is judged by recall@10 of the true next items, like the student.
            reference_labels = eval_labels
            metric_name = "recall@10"

            def score(out: list[np.ndarray], n: int) -> float:
                return _judge(out, reference_labels[:n], "ranking")
        else:
            top1_task = True
            fp32_pred = _top1(fp32_out)
            reference_labels = eval_labels if eval_labels is not None else fp32_pred
            metric_name = "top1" if eval_labels is not None else "top1_agreement_with_fp32"

            def score(out: list[np.ndarray], n: int) -> float:
                return float((_top1(out) == reference_labels[:n]).mean())
        higher = not regression
        fp32_metric = score(fp32_out, len(fp32_out))
        min_allowed, allowed_text = _allowed_metric(target, fp32_metric, max_accuracy_drop, higher)
        budget_reference = "fp32"
        if reference_metric is not None and eval_labels is not None and math.isfinite(reference_metric):
            # The stricter of the two lines: the fp32 student may already use part of the drop the gate
            # allows below the teacher, and int8 gets only what is left.
            teacher_line, _ = _allowed_metric(target, reference_metric, max_accuracy_drop, higher)
            if (teacher_line > min_allowed) if higher else (teacher_line < min_allowed):
                min_allowed, budget_reference = teacher_line, "teacher"

        def ok(metric: float) -> bool:
            return metric >= min_allowed - 1e-12 if higher else metric <= min_allowed + 1e-12

        def beats(a: float, b: float) -> bool:
            return _metric_beats(a, b, higher)
        fp32_p50 = _p50_ms(fp32_runner, eval_inputs[0])
        del fp32_runner
        log.info("%s: fp32 %s %.4f on %d samples", target.name, metric_name, fp32_metric, len(eval_inputs))

        # ---- sensitivity (also the per-layer SQNR of the report) ----------------------------
        probe_method = method if method != "auto" else "minmax"
        with torch.no_grad():
            ranking = layer_sensitivity(model, calib, method=probe_method, percentile=settings.percentile,
                                        per_channel=settings.weights == "per-channel-symmetric",
                                        symmetric_activations=settings.activations == "per-tensor-symmetric")

        def evaluate(files: list[Path], subset: int | None = None) -> dict[str, Any]:
            primary = _primary(files, target)
            runner = open_artifact(primary, backend.runtime)
            n = len(eval_inputs) if subset is None else min(subset, len(eval_inputs))
            out = _outputs(runner, eval_inputs[:n])
            # Per-row correctness (top-1 tasks): lets two candidates be compared row by row.
            correct = (_top1(out) == reference_labels[:n]) if top1_task else None
            return {"metric": float(correct.mean()) if correct is not None else score(out, n),
                    "output_sqnr_db": _rounded(_sqnr_db(fp32_out[:n], out)),
                    "bytes": primary.stat().st_size, "_runner": runner, "_correct": correct}

        candidates = 0

        def build(calibrated: Any, m: str) -> tuple[list[Path], list[dict[str, Any]]]:
            nonlocal candidates
            candidates += 1
            return backend.build(calibrated, m, torch_example, work / f"c{candidates}" / f"{name}.int8.{ext}")

        # Modules the model itself asks to keep in float under every int8 scheme (``float_modules``, e.g.
        # the forecasting student's multiply by the product's level, which works in units).
        always_float = tuple(getattr(model, "float_modules", ()) or ())

        def calibrate(exclude: Sequence[str] = ()) -> Any:
            exclude = [*always_float, *exclude]
            if backend.runtime == "onnxruntime":
                return backend.calibrate(model, torch_example, calib, exclude, ranking)
            return backend.calibrate(model, torch_example, calib, exclude)

        # ---- range method -------------------------------------------------------------------
        calibrated = calibrate()
        if backend.runtime != "onnxruntime" and calibrated.quantized_layers == 0:
            raise InputError(f"{type(model).__name__}: the {target.runtime.name} quantizer found no layer to "
                             "quantize")
        search: list[dict[str, Any]] = []
        if method == "auto":
            # Every method is built and judged on the first SELECTION_SAMPLES rows. The FINALISTS with the
            # highest output SQNR against the fp32 artifact are judged again on every evaluation row, and
            # the most faithful of them ships (of those within SQNR_TIE_DB, the most accurate) unless
            # another is *significantly* more accurate row by row (wins - losses > 2 sqrt(wins + losses),
            # a McNemar-style z > 2). Why not the top metric: on a few hundred rows methods swap places
            # by noise. EfficientNet-Lite0 on XNNPACK (1,000 rows):
            # entropy ranges 18.9 dB and 64.9%, min-max 29.1 dB and 64.5%; on 300 other rows entropy lost
            # 1.3 pt. SQNR is a dense, low-noise signal of the same thing.
            cands: list[dict[str, Any]] = []
            for k, m in enumerate(auto_methods):
                files_m, ranges_m = build(calibrated, m)
                ev = evaluate(files_m, SELECTION_SAMPLES)
                ev.pop("_runner")
                search.append({"method": m, "metric": ev["metric"], "output_sqnr_db": ev["output_sqnr_db"],
                               "bytes": ev["bytes"], "rows": min(SELECTION_SAMPLES, len(eval_inputs))})
                log.info("%s: auto candidate %s -> %s", target.name, m, search[-1])
                cands.append({"k": k, "method": m, "files": files_m, "ranges": ranges_m, "record": search[-1],
                              "ev": ev})

            def fidelity(c: dict[str, Any]) -> tuple:
                sqnr = c["ev"]["output_sqnr_db"]
                return (sqnr if sqnr is not None and not math.isnan(sqnr) else -math.inf,
                        c["ev"]["metric"] if higher else -c["ev"]["metric"], -c["k"])

            finalists = sorted(cands, key=fidelity, reverse=True)[:FINALISTS]
            if len(eval_inputs) > SELECTION_SAMPLES:
                for c in finalists:
                    c["ev"] = evaluate(c["files"])
                    c["ev"].pop("_runner")
                    c["record"]["all_rows"] = {"metric": c["ev"]["metric"],
                                               "output_sqnr_db": c["ev"]["output_sqnr_db"], "rows": len(eval_inputs)}
                finalists.sort(key=fidelity, reverse=True)
            # Within SQNR_TIE_DB of the most faithful, SQNR does not tell methods apart (it moves by 0.2-0.3 dB
            # between two row samples): the better metric decides among those.
            top = fidelity(finalists[0])[0]
            tied = [c for c in finalists if fidelity(c)[0] >= top - SQNR_TIE_DB]
            pick = max(tied, key=lambda c: (c["ev"]["metric"] if higher else -c["ev"]["metric"], fidelity(c)))
            for c in finalists:
                if c is not pick and _significantly_better(c["ev"], pick["ev"], higher):
                    pick = c
            for c in finalists:
                c["record"]["finalist"] = True
            chosen, files, ranges = pick["method"], pick["files"], pick["ranges"]
        else:
            chosen = method
            files, ranges = build(calibrated, chosen)
        if hasattr(calibrated, "workdir") and calibrated.workdir is not None:
            calibrated.workdir.cleanup()
        ev = evaluate(files)
        int8_p50 = _p50_ms(ev.pop("_runner"), eval_inputs[0])
        all_int8 = {"float_layers": [], "metric": ev["metric"], "output_sqnr_db": ev["output_sqnr_db"],
                    "bytes": ev["bytes"], "p50_ms": int8_p50}
        best_candidate = (all_int8, files, ranges)

        # ---- accuracy-aware fallback ----------------------------------------------------------
        steps = [all_int8]
        if not ok(ev["metric"]):
            order = [r["layer"] for r in ranking]
            for k in range(1, min(max_fallback_layers, len(order)) + 1):
                exclude = order[:k]
                cal_k = calibrate(exclude)
                files_k, ranges_k = build(cal_k, chosen)
                if getattr(cal_k, "workdir", None) is not None:
                    cal_k.workdir.cleanup()
                ev_k = evaluate(files_k)
                step = {"float_layers": exclude, "metric": ev_k["metric"], "output_sqnr_db": ev_k["output_sqnr_db"],
                        "bytes": ev_k["bytes"], "p50_ms": _p50_ms(ev_k.pop("_runner"), eval_inputs[0])}
                steps.append(step)
                log.info("%s: fallback step %s", target.name, step)
                if beats(step["metric"], best_candidate[0]["metric"]):
                    best_candidate = (step, files_k, ranges_k)
                if ok(step["metric"]):
                    best_candidate = (step, files_k, ranges_k)
                    break
        final, final_files, final_ranges = best_candidate
        met = ok(final["metric"])
        # Lost metric in points: accuracy that went down, or error that went up.
        lost = (fp32_metric - final["metric"]) if higher else (final["metric"] - fp32_metric)

        # ---- int8 only where it pays: fp32, static int8 and the runtime's other schemes ------------
        built = {"fp32": ("fp32 artifact of the same exporter", fp32_files,
                          {"metric": fp32_metric, "output_sqnr_db": None}),
                 "int8": (f"static int8 ({chosen} ranges" + (f", {len(final['float_layers'])} layer(s) float)"
                                                             if final["float_layers"] else ")"), final_files,
                          {"metric": final["metric"], "output_sqnr_db": final["output_sqnr_db"]})}
        skipped: list[dict[str, str]] = []
        if policy in CHOOSING_POLICIES:
            from edge_kd.quantize.schemes import alternative_schemes

            for scheme in alternative_schemes(backend.runtime):
                # An optional candidate: one that fails to build or to run is skipped with its reason
                # (static int8 and fp32 remain).
                failure = "build failed"
                try:
                    alt = scheme.build(model, torch_example, calib, fp32_files,
                                       work / scheme.name / f"{name}.{scheme.name}.{ext}",
                                       embeddings=getattr(settings, "embeddings", "int8"))
                    if alt is None:
                        skipped.append({"name": scheme.name, "reason": "does not apply to this model"})
                        continue
                    failure = f"does not run in {backend.runtime}"
                    ev_alt = evaluate(alt)
                except Exception as exc:  # noqa: BLE001
                    log.warning("%s: %s candidate: %s: %s", target.name, scheme.name, failure, exc)
                    skipped.append({"name": scheme.name, "reason": f"{failure}: {type(exc).__name__}: {exc}"[:300]})
                    continue
                ev_alt.pop("_runner")
                built[scheme.name] = (scheme.description, alt, ev_alt)
        selection, shipped_name = _select(built, target, policy, min_allowed, bundle_extra_bytes, eval_inputs[0],
                                          latency_fn, higher, emulate_fn=emulate_fn)
        selection["skipped"] = skipped
        selection["policy_from"] = ship_from or ("the caller" if ship else f"profile {target.name}")

        # ---- write the candidates' files; ``primary`` is the shipped one ----------------------
        moved = {cname: [_move(f, out_dir) for f in files] for cname, (_, files, _) in built.items()}
        shipped = moved["int8"]
        fp32_shipped = moved["fp32"]
        primary = _primary(moved[shipped_name], target)
        weights = backend.weight_dtypes(shipped[0])
        float_layers = set(final["float_layers"])
        report = {
            "target": target.name,
            "runtime": backend.runtime,
            "scheme": {"weights": settings.weights, "activations": settings.activations, "dtype": "int8",
                       "percentile": settings.percentile, "embeddings": settings.embeddings},
            # How each embedding table is stored in the shipped file ([quantization] embeddings).
            "embedding_tables": list(getattr(backend, "embedding_tables", []) or []),
            "calibration": {"samples": len(calib), "available": len(samples), "seed": seed,
                            "stratified": plan.labels is not None},
            "method_requested": method,
            "method": chosen,
            "method_search": search,
            "accuracy": {"metric": metric_name, "eval_samples": len(eval_inputs), "fp32": fp32_metric,
                         "int8": final["metric"], "drop_pt": round(lost * 100, 4), "higher_is_better": higher,
                         "allowed_drop": allowed_text, "min_allowed": min_allowed,
                         "teacher_metric": reference_metric, "budget_reference": budget_reference,
                         "within_budget": met,
                         "output_sqnr_db": final["output_sqnr_db"]},
            "size": {"fp32_bytes": fp32_primary_size(fp32_shipped, target),
                     "int8_bytes": _primary(shipped, target).stat().st_size},
            "latency_ms": _latency_summary(selection, fp32_p50, final["p50_ms"]),
            "selection": selection,
            "weights_storage": weights,
            "layers": [{**{k: r[k] for k in ("layer", "type", "sqnr_db", "params", "input_range")},
                        "method": chosen, "quantized": r["layer"] not in float_layers} for r in ranking],
            "activation_ranges": final_ranges,
            "float_modules": list(always_float),
            "fallback": {"needed": len(steps) > 1, "float_layers": final["float_layers"], "steps": steps,
                         "met_budget": met,
                         "missed_by_pt": 0.0 if met else round(abs(min_allowed - final["metric"]) * 100, 4),
                         "cost": {"bytes": final["bytes"] - all_int8["bytes"],
                                  "p50_ms": round(final["p50_ms"] - all_int8["p50_ms"], 4)}},
            "seconds": round(time.perf_counter() - started, 2),
        }
        report["size"]["ratio"] = round(report["size"]["int8_bytes"] / max(report["size"]["fp32_bytes"], 1), 4)
        report["size"]["shipped_bytes"] = primary.stat().st_size
        from edge_kd.pipeline.atomic import atomic_write_json

        report_path = atomic_write_json(out_dir / f"{name}.quantize.json", report)
        return QuantizeResult(primary, moved[shipped_name] + [report_path], report, fp32_shipped,
                              _primary(fp32_shipped, target), shipped=shipped_name, candidates=moved)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _select(built: dict[str, tuple[str, list[Path], dict[str, Any]]], target: "TargetProfile", policy: str,
            min_allowed: float, extra: tuple[int, int], sample: tuple[np.ndarray, ...],
            latency_fn: Callable[..., dict[str, dict[str, Any]]] | None, higher: bool = True, *,
            emulate_fn: Callable[[Path, tuple], dict[str, Any]] | None = None) -> tuple[dict[str, Any], str]:
    """Measure every built candidate (size, op policy, interleaved latency; the ARM estimate when the
    profile's ship choice is emulated) and pick the one to ship."""
    from edge_kd.bench.compare import interleaved_latency
    from edge_kd.pipeline.files import file_facts
    from edge_kd.quantize.selection import Budgets, Candidate, choose, selection_record, use_arm_estimates
    from edge_kd.runtimes import open_runner

    candidates = []
    for cname, (description, files, ev) in built.items():
        primary = _primary(files, target)
        facts = file_facts(primary)
        try:
            ops = open_runner(primary).ops(target.ops.policy)
            violations = [str(v.get("op", v) if isinstance(v, dict) else v) for v in ops.get("violations") or []]
        except Exception as exc:  # noqa: BLE001 - an artifact whose ops cannot be listed cannot pass the gate
            violations = [f"ops not readable: {exc}"[:120]]
        candidates.append(Candidate(cname, description, list(files), primary, int(facts["bytes"]),
                                    int(facts["gzip_bytes"]), metric=ev.get("metric"),
                                    output_sqnr_db=_rounded(ev["output_sqnr_db"]) if ev.get("output_sqnr_db")
                                    is not None else None, violations=violations))
    measure = latency_fn or interleaved_latency
    timed = measure({c.name: c.primary for c in candidates}, inputs=list(sample), threads=target.runtime.threads)
    for c in candidates:
        if c.name in timed:
            c.p50_ms, c.rounds_ms = timed[c.name]["p50_ms"], list(timed[c.name]["rounds_ms"])
    meta = {**(timed.get("_meta") or {}), "source": "host"}
    core = target.ship_core
    if core is not None:
        estimates = _arm_estimates({c.name: c.primary for c in candidates}, core, target, sample, emulate_fn)
        use_arm_estimates(candidates, estimates, core)
        meta.update({"source": "emulated", "core": core})
    budgets = Budgets(target.budgets.artifact_size, target.budgets.download_size, min_allowed,
                      int(extra[0]), int(extra[1]), higher)
    shipped, why = choose(candidates, policy, budgets, latency=f"{core} estimate" if core else "p50")
    log.info("%s: ships %s: %s", target.name, shipped.name, why)
    return selection_record(candidates, shipped, policy, why, budgets, meta), shipped.name


def _arm_estimates(paths: dict[str, Path], core: str, target: "TargetProfile", sample: tuple[np.ndarray, ...],
                   emulate_fn: Callable[[Path, tuple], dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Each candidate counted on the emulated ``core`` (``edge_kd.emulate``): name -> figures, or
    ``{"error": ...}`` for one its aarch64 runtime cannot run (that candidate then cannot ship). A missing
    emulation environment is the user's to fix (InputError saying how), not a candidate's failure."""
    if emulate_fn is None:
        from edge_kd.emulate import emulate_artifact, environment

        env = environment()  # InputError: how to build it

        def emulate_fn(path: Path, inputs: tuple) -> dict[str, Any]:
            return emulate_artifact(path, core, threads=target.runtime.threads, inputs=inputs, env=env)
    out: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        try:
            out[name] = emulate_fn(path, sample)
        except InputError as exc:
            out[name] = {"error": str(exc)}
        log.info("%s: %s on %s: %s", target.name, name, core,
                 out[name].get("error") or f"{out[name]['estimate_ms']:.4g} ms estimated")
    return out


def _latency_summary(selection: dict[str, Any], quick_fp32: float, quick_int8: float) -> dict[str, Any]:
    by_name = {c["name"]: c for c in selection["candidates"]}
    out: dict[str, Any] = {"fp32_p50": by_name["fp32"]["p50_ms"], "int8_p50": by_name["int8"]["p50_ms"],
                           "shipped_p50": by_name[selection["shipped"]]["p50_ms"]}
    if out["fp32_p50"] is None or out["int8_p50"] is None:
        out.update({"fp32_p50": quick_fp32, "int8_p50": quick_int8})
        out["note"] = "quick median of 30 runs, one thread; use edge-kd bench for release numbers"
    else:
        out["note"] = ("candidates timed interleaved in one process on one core (median of per-run times); "
                       "use edge-kd bench for release numbers")
    return out


def fp32_primary_size(files: list[Path], target: "TargetProfile") -> int:
    return _primary(files, target).stat().st_size


def _primary(files: list[Path], target: "TargetProfile") -> Path:
    """The file the app ships: the .ort for ONNX Runtime Mobile, else the single artifact."""
    want = "." + target.primary_format
    for f in files:
        if f.suffix == want:
            return f
    return files[0]


def _move(path: Path, out_dir: Path) -> Path:
    final = out_dir / path.name
    path.replace(final)  # same filesystem (the work dir is inside out_dir): atomic
    return final


def _rounded(v: float) -> float:
    return round(v, 3) if math.isfinite(v) else v
