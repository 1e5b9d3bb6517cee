"""Target profiles: where a model will run, and the budgets it must meet there.

A profile is a TOML file (``targets/*.toml``, documented field by field in ``targets/README.md``).
A user's own profile can be passed by path and ``extends`` a shipped one, overriding a few fields::

    extends = "android-arm64-xnnpack"
    [budgets]
    artifact_size = "512KiB"

Loading is strict: unknown keys, wrong types, bad units, negative or missing budgets are ConfigErrors
that name the file and the key. This module imports nothing heavy (it runs for ``edge-kd targets``).
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_kd.config import from_dict, parsed, to_dict
from edge_kd.errors import ConfigError, InputError
from edge_kd.runtimes.ops import OP_POLICIES
from edge_kd.runtimes.registry import RUNTIMES, runtime_spec
from edge_kd.units import AccuracyDrop, parse_accuracy_drop, parse_bytes, parse_ms

#: Folder of the shipped profiles. EDGE_KD_TARGETS_DIR points elsewhere (tests, packaged installs).
SHIPPED_TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"

def calibration_methods() -> tuple[str, ...]:
    """``auto`` and every range method some registered runtime supports."""
    names: list[str] = []
    for spec in RUNTIMES.values():
        names += [m for m in spec.range_methods if m not in names]
    return ("auto", *names)
#: How embedding tables are stored in an int8 artifact (``[quantization] embeddings``); which runtime
#: runs which is its registry entry's ``embedding_schemes``.
EMBEDDING_SCHEMES = ("int8", "int4", "float")


def targets_dir() -> Path:
    return Path(os.environ.get("EDGE_KD_TARGETS_DIR", SHIPPED_TARGETS_DIR))


@dataclass(frozen=True)
class RuntimeSettings:
    """Which runtime runs the artifact and how it is configured on the device (``name``: a runtime of
    ``edge_kd.runtimes.registry``)."""

    name: str
    formats: tuple[str, ...]
    delegate: Literal["xnnpack"] | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if self.name not in RUNTIMES:
            raise ValueError(f"runtime.name {self.name!r} is unknown; known: {', '.join(RUNTIMES.names())}")
        allowed = runtime_spec(self.name).formats
        bad = [f for f in self.formats if f not in allowed]
        if bad or not self.formats:
            raise ValueError(f"runtime.formats: {list(self.formats)} is not valid for runtime "
                             f"{self.name!r}; allowed: {list(allowed)}")
        if self.delegate is not None and self.delegate not in runtime_spec(self.name).delegates:
            owners = [s.name for s in RUNTIMES.values() if self.delegate in s.delegates]
            raise ValueError(f"runtime.delegate {self.delegate!r} only applies to {', '.join(owners)}")
        if self.threads < 1:
            raise ValueError(f"runtime.threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class BenchSettings:
    """How latency is measured to imitate a phone core (see edge_kd.bench)."""

    warmup_runs: int = 10
    min_runs: int = 50
    min_seconds: float = 1.0
    max_runs: int = 5000
    pin_core: bool = True
    #: ARM core to emulate besides the host run (edge_kd.emulate): instructions and an estimated latency.
    emulate: str | None = None
    #: Which latency the gate holds to budgets.latency_p90: the host's measured p90 or the ARM estimate.
    gate_latency: Literal["host", "emulated"] = "host"

    def __post_init__(self) -> None:
        if self.warmup_runs < 0 or self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError("bench: need warmup_runs >= 0, min_runs >= 1 and max_runs >= min_runs")
        if self.min_seconds < 0:
            raise ValueError("bench.min_seconds must not be negative")
        if self.emulate is not None:
            from edge_kd.emulate.cost import core_model

            core_model(self.emulate)  # ValueError listing the known cores
        if self.gate_latency == "emulated" and self.emulate is None:
            raise ValueError("bench.gate_latency = \"emulated\" needs bench.emulate (the core to estimate for)")


@dataclass(frozen=True)
class Budgets:
    """Hard limits a release must meet. All four are required."""

    artifact_size: int = parsed(parse_bytes, metadata={"to_json": int})
    download_size: int = parsed(parse_bytes, metadata={"to_json": int})
    latency_p90: float = parsed(parse_ms, metadata={"to_json": lambda v: f"{v:g}ms"})
    accuracy_drop: AccuracyDrop = parsed(parse_accuracy_drop, metadata={"to_json": str})

    def __post_init__(self) -> None:
        if self.artifact_size <= 0 or self.download_size <= 0:
            raise ValueError("budgets: artifact_size and download_size must be positive")
        if self.latency_p90 <= 0:
            raise ValueError("budgets.latency_p90 must be positive")


@dataclass(frozen=True)
class QuantizationSettings:
    """The int8 scheme the target's kernels expect and how ranges are calibrated."""

    mode: Literal["int8", "fp32"] = "int8"
    weights: Literal["per-channel-symmetric", "per-tensor-symmetric"] = "per-channel-symmetric"
    activations: Literal["per-tensor-asymmetric", "per-tensor-symmetric"] = "per-tensor-asymmetric"
    calibration_method: str = "auto"
    calibration_samples: int = 256
    percentile: float = 99.99
    onnx_format: Literal["qdq"] = "qdq"
    #: Which artifact ships: the fastest that meets the budgets, or always int8 / fp32 (edge_kd.quantize.selection).
    ship: Literal["fastest-within-budget", "smallest-within-budget", "int8", "fp32"] = "fastest-within-budget"
    #: Embedding tables: int8 rows with per-row scales (default), int4 group-wise, or kept float. Which
    #: runtime runs which scheme is checked when quantizing (edge_kd.quantize.embeddings).
    embeddings: Literal["int8", "int4", "float"] = "int8"
    #: Which latency decides the ship choice: the host's interleaved timings, or the ARM cost-model
    #: estimate of ``[bench] emulate`` (each candidate counted under emulation); ``auto`` = emulated
    #: when the profile emulates a core (x86 kernels say little about a phone's), else host.
    ship_latency: Literal["auto", "host", "emulated"] = "auto"

    def __post_init__(self) -> None:
        known = calibration_methods()
        if self.calibration_method not in known:
            raise ValueError(f"quantization.calibration_method {self.calibration_method!r} is unknown; "
                             f"known: {', '.join(known)}")
        if self.calibration_samples < 1:
            raise ValueError("quantization.calibration_samples must be >= 1")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError("quantization.percentile must be in (50, 100]")


@dataclass(frozen=True)
class PruningSettings:
    """Channel counts are rounded to multiples of round_to: what the int8 kernels are fastest on."""

    round_to: int = 8

    def __post_init__(self) -> None:
        if self.round_to < 1:
            raise ValueError("pruning.round_to must be >= 1")


@dataclass(frozen=True)
class OpPolicy:
    """Which operators the artifact may contain (checked by the gate on the recorded op list); a policy
    of ``edge_kd.runtimes.ops``."""

    policy: str = "any"

    def __post_init__(self) -> None:
        if self.policy not in OP_POLICIES:
            raise ValueError(f"ops.policy {self.policy!r} is unknown; known: {', '.join(OP_POLICIES.names())}")


@dataclass(frozen=True)
class TargetProfile:
    """A resolved deployment target (after ``extends``)."""

    name: str
    runtime: RuntimeSettings
    budgets: Budgets
    description: str = ""
    bench: BenchSettings = field(default_factory=BenchSettings)
    quantization: QuantizationSettings = field(default_factory=QuantizationSettings)
    pruning: PruningSettings = field(default_factory=PruningSettings)
    ops: OpPolicy = field(default_factory=OpPolicy)
    #: Where it was loaded from (not a TOML key).
    source: str = field(default="", compare=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        methods = ("auto", *runtime_spec(self.runtime.name).range_methods)
        if self.quantization.calibration_method not in methods:
            raise ValueError(f"quantization.calibration_method {self.quantization.calibration_method!r} is not "
                             f"supported by runtime {self.runtime.name!r}; known: {', '.join(methods)}")
        scheme, runtime = self.quantization.embeddings, self.runtime.name
        allowed = runtime_spec(runtime).embedding_schemes
        if self.quantization.mode == "int8" and scheme not in allowed:
            able = [spec.name for spec in RUNTIMES.values() if scheme in spec.embedding_schemes]
            raise ValueError(f"quantization.embeddings = {scheme!r} cannot run on runtime {runtime!r} (it runs "
                             f"{', '.join(allowed)}); runtimes that run {scheme}: {', '.join(able)}")
        if self.quantization.ship_latency == "emulated" and self.bench.emulate is None:
            raise ValueError("quantization.ship_latency = \"emulated\" needs bench.emulate (the core to estimate for)")

    @property
    def ship_core(self) -> str | None:
        """The ARM core whose cost-model estimate decides the quantize stage's ship choice, or None when the
        host's measured latency decides (``[quantization] ship_latency``)."""
        if self.quantization.ship_latency == "host":
            return None
        return self.bench.emulate

    @property
    def primary_format(self) -> str:
        """The format the app ships (the runtime's primary format when listed: ``ort`` for ONNX Runtime
        Mobile; else the last format listed)."""
        primary = runtime_spec(self.runtime.name).primary_format
        return primary if primary in self.runtime.formats else self.runtime.formats[-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``TargetProfile.from_dict`` reads it back (units kept as strings)."""
        data = to_dict(self)
        data.pop("source", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> "TargetProfile":
        data = {k: v for k, v in data.items() if k != "source"}
        profile = from_dict(cls, data, source=source)
        return dataclasses.replace(profile, source=source)

    def summary(self) -> dict[str, Any]:
        """The flat row of ``edge-kd targets list --json``."""
        return {
            "name": self.name,
            "runtime": self.runtime.name,
            "format": self.primary_format,
            "formats": list(self.runtime.formats),
            "size_budget_bytes": self.budgets.artifact_size,
            "download_budget_bytes": self.budgets.download_size,
            "latency_budget_ms": self.budgets.latency_p90,
            "accuracy_drop": str(self.budgets.accuracy_drop),
            "threads": self.runtime.threads,
            "quantization": self.quantization.mode,
            "op_policy": self.ops.policy,
            "source": self.source,
        }


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: no such profile file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _locate(ref: str, relative_to: Path | None) -> Path:
    """A profile reference is a path (has a slash or ends in .toml) or a shipped profile's name."""
    if ref.endswith(".toml") or "/" in ref or os.sep in ref:
        path = Path(ref)
        if not path.is_absolute() and relative_to is not None:
            candidate = relative_to / path
            if candidate.exists():
                return candidate
        return path
    path = targets_dir() / f"{ref}.toml"
    if not path.exists():
        raise InputError(f"unknown target {ref!r}; known: {', '.join(list_target_names()) or '(none)'}")
    return path


def _load_raw(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise ConfigError(f"'extends' forms a cycle: {cycle}", source=str(chain[0]), key="extends")
    raw = _read_toml(path)
    raw.setdefault("name", path.stem)
    parent_ref = raw.pop("extends", None)
    if parent_ref is None:
        return raw
    if not isinstance(parent_ref, str):
        raise ConfigError(f"expected a profile name or path, got {parent_ref!r}", source=str(path), key="extends")
    try:
        parent_path = _locate(parent_ref, path.parent)
        if not parent_path.exists():
            raise InputError(f"no such profile file {parent_ref!r}")
    except InputError as exc:
        raise ConfigError(f"cannot extend: {exc}", source=str(path), key="extends") from None
    parent = _load_raw(parent_path, (*chain, path))
    parent.pop("name", None)
    parent.pop("description", None)
    return _deep_merge(parent, raw)


def load_target(ref: str | os.PathLike[str]) -> TargetProfile:
    """Load a profile by shipped name (``"ort-mobile"``) or by path, resolving ``extends``.

    >>> load_target("tflite-int8").runtime.name
    'litert'
    """
    path = _locate(str(ref), None)
    raw = _load_raw(path, ())
    return TargetProfile.from_dict(raw, source=str(path))


def list_target_names() -> list[str]:
    folder = targets_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def list_targets() -> list[TargetProfile]:
    return [load_target(name) for name in list_target_names()]
