"""Which artifact ships: int8 only where it pays.

The quantize stage builds several artifacts of the same model for the target runtime (fp32, static
int8, and the runtime's other schemes, :mod:`edge_kd.quantize.schemes`), measures each one's size,
accuracy through the runtime, operator policy and latency (interleaved in one process,
:mod:`edge_kd.bench.compare`), and ships per the profile's ``[quantization] ship``:

* ``fastest-within-budget`` (default): among the candidates that meet every budget (bundle size,
  download size, accuracy drop vs the fp32 artifact, operator policy), the fastest; candidates within
  the noise margin of the fastest count as equally fast, and the smallest of them ships (fewer bytes
  to download at the same speed). When none meets every budget: the one that fits the size budget
  with the best metric (else the smallest), so the gate reports what is missed;
* ``smallest-within-budget``: among the candidates that meet every budget, the smallest file (gzip
  bytes break ties, then speed): for app teams who pay for every downloaded byte more than for a few
  microseconds. A build whose recipe asks for the smallest student (``[student] objective =
  "smallest-within-drop"``) ships by it unless the profile forces ``int8``/``fp32``;
* ``int8``: static int8 (also when slower; the record shows by how much);
* ``fp32``: the fp32 artifact.

Latency is the host's (interleaved, above) unless the profile's ship choice is emulated
(``[quantization] ship_latency``, :meth:`edge_kd.targets.TargetProfile.ship_core`): then each candidate
is counted on the emulated ARM core and its cost-model estimate decides (:func:`use_arm_estimates`);
the host p50 stays in the record beside it.

Every candidate is recorded (bytes, gzip bytes, metric, p50 and per-round medians, violations,
which budgets it misses, why it was not shipped) with the decision, in the quantize report and so in
build.json, where the gate re-checks it (``artifact.choice``).

Imports nothing heavy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edge_kd.bench.compare import NOISE_MARGIN, slower_beyond_noise

SHIP_POLICIES = ("fastest-within-budget", "smallest-within-budget", "int8", "fp32")
#: Policies that build and measure the runtime's other schemes and choose among every candidate.
CHOOSING_POLICIES = ("fastest-within-budget", "smallest-within-budget")
DEFAULT_SHIP = "fastest-within-budget"


@dataclass
class Candidate:
    """One artifact the stage could ship."""

    name: str
    description: str
    files: list[Path]
    primary: Path
    bytes: int
    gzip_bytes: int
    metric: float | None = None
    output_sqnr_db: float | None = None
    violations: list[str] = field(default_factory=list)
    #: The latency the choice compares: host p50 and per-round medians, or, when the profile's ship choice
    #: is emulated, the ARM estimate (one deterministic figure per candidate: ``rounds_ms == [p50_ms]``).
    p50_ms: float | None = None
    rounds_ms: list[float] = field(default_factory=list)
    #: The host's interleaved p50, kept beside an ARM-decided choice (None when the host decided).
    host_p50_ms: float | None = None
    #: ARM figures of an emulated choice: core, instructions per inference, estimate_ms (or error).
    arm: dict[str, Any] | None = None
    failed_budgets: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def within_budget(self) -> bool:
        return not self.failed_budgets

    def to_dict(self, shipped: bool) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "file": self.primary.name,
                "bytes": self.bytes, "gzip_bytes": self.gzip_bytes, "metric": self.metric,
                "output_sqnr_db": self.output_sqnr_db, "violations": len(self.violations),
                "violation_ops": self.violations[:10], "p50_ms": self.p50_ms, "rounds_ms": self.rounds_ms,
                "within_budget": self.within_budget, "failed_budgets": self.failed_budgets,
                "shipped": shipped, "reason": self.reason,
                **({"host_p50_ms": self.host_p50_ms, "arm": self.arm} if self.arm is not None else {})}


@dataclass(frozen=True)
class Budgets:
    """What a candidate must meet (bytes include the bundle's other files, e.g. preprocessing assets)."""

    artifact_size: int
    download_size: int
    min_metric: float
    extra_bytes: int = 0
    extra_gzip_bytes: int = 0
    #: False for an error metric (WAPE): ``min_metric`` is then the highest error allowed.
    higher_is_better: bool = True

    def metric_ok(self, metric: float) -> bool:
        return metric >= self.min_metric - 1e-12 if self.higher_is_better else metric <= self.min_metric + 1e-12

    def failed(self, c: Candidate) -> list[str]:
        out = []
        if c.bytes + self.extra_bytes > self.artifact_size:
            out.append(f"size: {c.bytes + self.extra_bytes} B bundle > {self.artifact_size} B")
        if c.gzip_bytes + self.extra_gzip_bytes > self.download_size:
            out.append(f"download: {c.gzip_bytes + self.extra_gzip_bytes} B gzip > {self.download_size} B")
        if c.metric is not None and not self.metric_ok(c.metric):
            sign = "<" if self.higher_is_better else ">"
            out.append(f"accuracy: {c.metric:.4f} {sign} {self.min_metric:.4f}")
        if c.violations:
            out.append(f"ops: {len(c.violations)} violation(s) ({', '.join(c.violations[:3])})")
        return out


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g} ms"


def choose(candidates: Sequence[Candidate], policy: str, budgets: Budgets, *,
           margin: float = NOISE_MARGIN, latency: str = "p50") -> tuple[Candidate, str]:
    """The candidate to ship and why; fills each candidate's ``failed_budgets`` and ``reason``.

    ``candidates`` must include ``fp32`` and ``int8`` (static); ``p50_ms``/``rounds_ms`` come from one
    interleaved measurement, or are ARM estimates (:func:`use_arm_estimates`; ``latency`` then names
    them in the reasons, e.g. ``"cortex-a76 estimate"``).
    """
    if policy not in SHIP_POLICIES:
        raise ValueError(f"unknown ship policy {policy!r}; known: {', '.join(SHIP_POLICIES)}")
    by_name = {c.name: c for c in candidates}
    for c in candidates:
        c.failed_budgets = budgets.failed(c)
    within = [c for c in candidates if c.within_budget]
    if policy in ("int8", "fp32"):
        shipped = by_name[policy]
        why = f"ship = {policy!r} in the profile"
        fastest = min((c for c in within if c.p50_ms is not None),
                      key=lambda c: c.p50_ms, default=None)
        if fastest is not None and fastest is not shipped and shipped.rounds_ms:
            slower, ratio = slower_beyond_noise(shipped.rounds_ms, fastest.rounds_ms, margin=margin)
            if slower:
                why += f" ({fastest.name} meets the budgets and runs {ratio:.2f}x faster)"
    elif policy == "smallest-within-budget" and within:
        fastest = min((c for c in within if c.p50_ms is not None), key=lambda c: c.p50_ms, default=None)
        shipped = min(within, key=lambda c: (c.bytes, c.gzip_bytes, c.p50_ms if c.p50_ms is not None else math.inf))
        why = f"smallest artifact that meets every budget ({shipped.bytes} B)"
        if fastest is not None and fastest is not shipped and shipped.rounds_ms:
            slower, ratio = slower_beyond_noise(shipped.rounds_ms, fastest.rounds_ms, margin=margin)
            if slower:
                why += f"; {fastest.name} is {ratio:.2f}x faster at {fastest.bytes} B"
    else:
        eligible = [c for c in within if c.p50_ms is not None]
        fastest = None
        if eligible:
            fastest = min(eligible, key=lambda c: c.p50_ms)
            # Equally fast within noise: the smaller file ships (the same speed for fewer bytes).
            tied = [c for c in eligible if c is fastest or not slower_beyond_noise(
                c.rounds_ms, fastest.rounds_ms, margin=margin)[0]]
            shipped = min(tied, key=lambda c: (c.bytes, c.p50_ms))
            if shipped is fastest:
                why = f"fastest artifact that meets every budget ({latency} {_ms(shipped.p50_ms)})"
            else:
                why = (f"within the noise margin ({margin:.0%}) of the fastest, {fastest.name} "
                       f"({_ms(fastest.p50_ms)} vs {_ms(shipped.p50_ms)}), and smaller")
        else:
            fits = [c for c in candidates if not any(f.startswith(("size", "download")) for f in c.failed_budgets)]
            if fits:
                sign = 1.0 if budgets.higher_is_better else -1.0
                # Equal metrics: the faster, then the smaller (the grocery LiteRT build shipped a 2x slower
                # candidate with the same validation accuracy because it was smaller).
                shipped = max(fits, key=lambda c: (sign * c.metric if c.metric is not None else -math.inf,
                                                   -(c.p50_ms if c.p50_ms is not None else math.inf), -c.bytes))
                why = "no candidate meets every budget; the best metric among those that fit the size budget"
                if sum(1 for c in fits if c.metric == shipped.metric) > 1:
                    why += ", the fastest of those with that metric"
            else:
                shipped = min(candidates, key=lambda c: c.bytes)
                why = "no candidate meets every budget; the smallest"
    for c in candidates:
        if c is shipped:
            c.reason = "shipped: " + why
        elif not c.within_budget:
            c.reason = "misses " + "; ".join(c.failed_budgets)
        elif policy == "smallest-within-budget":
            c.reason = f"larger: {c.bytes} B vs {shipped.bytes} B"
        elif c.p50_ms is not None and shipped.p50_ms is not None and c.rounds_ms and shipped.rounds_ms:
            slower, ratio = slower_beyond_noise(c.rounds_ms, shipped.rounds_ms, margin=margin)
            if slower:
                c.reason = f"slower: {latency} {_ms(c.p50_ms)} vs {_ms(shipped.p50_ms)} ({ratio:.2f}x)"
            elif policy != DEFAULT_SHIP:
                c.reason = f"not the profile's choice ({ratio:.2f}x the shipped {latency})"
            elif fastest is not None and slower_beyond_noise(c.rounds_ms, fastest.rounds_ms, margin=margin)[0]:
                c.reason = f"slower than {fastest.name} beyond the noise margin ({latency} {_ms(c.p50_ms)})"
            else:
                c.reason = f"as fast within noise ({ratio:.2f}x the shipped {latency}) but larger"
        elif c.arm is not None and "error" in c.arm:
            c.reason = f"not measured on {c.arm['core']}: {c.arm['error']}"
        else:
            c.reason = "not measured"
    return shipped, why


def use_arm_estimates(candidates: Sequence[Candidate], estimates: dict[str, dict[str, Any]], core: str) -> None:
    """Make each candidate's ARM estimate the latency the choice compares; keep the host p50 beside it.

    ``estimates``: candidate name -> ``edge_kd.emulate.emulate_artifact`` result (``estimate_ms``,
    ``instructions``) or ``{"error": ...}`` for one the aarch64 runtime could not run. Such a candidate is
    left unmeasured (``p50_ms`` None), so it cannot ship under ``fastest-within-budget``. Counts repeat
    exactly, so one figure stands for the rounds: the noise margin then only absorbs the cost model's
    own error (two estimates within it count as equally fast, and the smaller file ships).
    """
    for c in candidates:
        c.host_p50_ms = c.p50_ms
        got = estimates.get(c.name) or {"error": "not emulated"}
        if "error" in got:
            c.arm = {"core": core, "error": str(got["error"])[:300]}
            c.p50_ms, c.rounds_ms = None, []
            continue
        c.arm = {"core": core, "instructions": int(got["instructions"]),
                 "estimate_ms": round(float(got["estimate_ms"]), 6)}
        c.p50_ms, c.rounds_ms = c.arm["estimate_ms"], [c.arm["estimate_ms"]]


def selection_record(candidates: Sequence[Candidate], shipped: Candidate, policy: str, why: str,
                     budgets: Budgets, latency_meta: dict[str, Any] | None, margin: float = NOISE_MARGIN
                     ) -> dict[str, Any]:
    """The JSON recorded in the quantize report (``report["selection"]``) and read by the gate."""
    return {"policy": policy, "shipped": shipped.name, "reason": why, "noise_margin": margin,
            "latency": dict(latency_meta or {}),
            "budgets": {"artifact_size": budgets.artifact_size, "download_size": budgets.download_size,
                        "min_metric": budgets.min_metric, "higher_is_better": budgets.higher_is_better,
                        "extra_bytes": budgets.extra_bytes,
                        "extra_gzip_bytes": budgets.extra_gzip_bytes},
            "candidates": [c.to_dict(c is shipped) for c in candidates]}
