"""One spec per runtime: everything the rest of edge_kd needs to know about a runtime, in one place.

A :class:`RuntimeSpec` names the formats the runtime loads, the one the app ships, and where its
exporter, runner, int8 backend and benchmark preloads live, as ``"module:attribute"`` references that
are imported only when used (the style of Olive's pass registry), so looking a runtime up stays light
(``edge-kd targets`` and ``edge-kd gate`` consult it without importing torch or any runtime).

Profiles (``edge_kd.targets``), the exporter (``edge_kd.export``), the runners (``edge_kd.runtimes``),
the int8 backends (``edge_kd.quantize.backend_for``), the benchmark worker and the build stages ask this
registry instead of switching on runtime names. Adding a runtime is one ``register_runtime`` call (plus,
when it needs one, an op policy registered in ``edge_kd.runtimes.ops``)::

    register_runtime(RuntimeSpec(
        name="onnxruntime-full", formats=("onnx",), primary_format="onnx",
        exporter="edge_kd.export.onnx", runner="edge_kd.runtimes.onnxruntime:OrtRunner",
        op_policy="any", int8_backend="edge_kd.quantize.onnxruntime:OrtBackend",
        bench_preload=("onnxruntime", "edge_kd.runtimes.onnxruntime")))
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_kd.errors import InputError
from edge_kd.registry import Registry, load_ref

#: Range methods every shipped runtime supports (the names of ``edge_kd.quantize.calibration``'s range
#: method registry, listed here so that validating a profile imports no numpy; a unit test keeps the
#: two equal).
STANDARD_RANGE_METHODS = ("minmax", "moving_average", "percentile", "entropy", "mse")


@dataclass(frozen=True)
class RuntimeSpec:
    """What edge_kd knows about one runtime (all references are imported lazily).

    ``formats``: the file formats the runtime loads, in the order the exporter writes them (a format
    may be derived from an earlier one: ``.ort`` from ``.onnx``); each is also the file extension.
    ``primary_format``: the one the app ships when the profile lists it (else the profile's last).
    ``exporter``: a module with ``export_formats(model, example_inputs, formats, folder, name,
    input_names) -> list[Artifact]`` (and optionally ``primary_tensors(path, tensors)``, a better
    naming of the shipped file's stored tensors). ``runner``: a ``edge_kd.runtimes.base.Runner``
    subclass. ``op_policy``: the policy (``edge_kd.runtimes.ops``) an artifact is checked against when
    no profile names one. ``int8_backend``: a class taking ``QuantizationSettings``, used by
    ``quantize_model`` (None: the runtime has no int8 path). ``range_methods``: the names the profile's
    ``calibration_method`` may take besides ``auto``. ``bench_preload``: modules the benchmark worker
    imports before its memory baseline (the runtime library is the app's, not the model's).
    ``delegates``: values allowed for the profile's ``runtime.delegate``. ``embedding_schemes``: the
    ``[quantization] embeddings`` values its int8 path has kernels for (checked in the runtime itself by
    tests/integration/test_quantize_embeddings.py). ``export_revision``: bumped
    when the int8 export writes something different, so builds made by older code are redone.
    ``layer_latency``: how latency-aware pruning measures each layer's cost in this runtime (an op
    profiler over the exported model, or per-layer micro-benchmarks; ``edge_kd.prune.latency``).
    """

    name: str
    formats: tuple[str, ...]
    primary_format: str
    exporter: str
    runner: str
    op_policy: str
    int8_backend: str | None = None
    range_methods: tuple[str, ...] = STANDARD_RANGE_METHODS
    bench_preload: tuple[str, ...] = ()
    delegates: tuple[str, ...] = ()
    embedding_schemes: tuple[str, ...] = ("int8", "float")
    export_revision: int = 2
    #: ``module:function`` that measures per-layer latency for latency-aware pruning
    #: (``edge_kd.prune.latency``); None: a latency goal is refused for this runtime.
    layer_latency: str | None = None

    def __post_init__(self) -> None:
        if not self.formats or self.primary_format not in self.formats:
            raise ValueError(f"runtime {self.name!r}: primary_format {self.primary_format!r} must be one of "
                             f"its formats {list(self.formats)}")

    def runner_class(self) -> type:
        return load_ref(self.runner)

    def export_module(self) -> Any:
        import importlib

        return importlib.import_module(self.exporter)

    def backend(self, settings: Any) -> Any:
        """The int8 backend for ``settings`` (a profile's ``QuantizationSettings``)."""
        if self.int8_backend is None:
            raise InputError(f"no int8 backend for runtime {self.name!r}")
        return load_ref(self.int8_backend)(settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the benchmark worker rebuilds a spec its process does not know from it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RuntimeSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


RUNTIMES: Registry[RuntimeSpec] = Registry("runtime")


def register_runtime(spec: RuntimeSpec) -> RuntimeSpec:
    """Add a runtime; every profile, export, runner, benchmark and build then knows it by name."""
    RUNTIMES.add(spec.name, spec)
    return spec


def runtime_spec(name: str) -> RuntimeSpec:
    """The spec of runtime ``name`` (InputError listing the known runtimes otherwise)."""
    return RUNTIMES.get(name)


def known_suffixes() -> list[str]:
    """Every artifact extension some runtime loads, in registration order (``.pte``, ``.onnx``, ...)."""
    seen: list[str] = []
    for spec in RUNTIMES.values():
        seen += [f".{f}" for f in spec.formats if f".{f}" not in seen]
    return seen


def runtime_for(path: str | Any, runtime: str | None = None) -> str:
    """The runtime that runs ``path``, from its extension: ``runtime`` when it loads that format (two
    runtimes may load the same one), else the first registered runtime that does."""
    suffix = Path(path).suffix.lower()
    fmt = suffix.lstrip(".")
    if runtime is not None and runtime in RUNTIMES and fmt in runtime_spec(runtime).formats:
        return runtime
    for spec in RUNTIMES.values():
        if fmt and fmt in spec.formats:
            return spec.name
    raise InputError(f"{path}: unknown artifact format {suffix or '(no extension)'!r}; "
                     f"known: {', '.join(known_suffixes())}")


# ---- the shipped runtimes (registration order = preference when two load the same format) ------------
register_runtime(RuntimeSpec(
    name="executorch", formats=("pte",), primary_format="pte",
    exporter="edge_kd.export.executorch", runner="edge_kd.runtimes.executorch:ExecuTorchRunner",
    op_policy="xnnpack-full-delegation", int8_backend="edge_kd.quantize.executorch:ExecuTorchBackend",
    bench_preload=("torch", "executorch.runtime", "edge_kd.runtimes.executorch"), delegates=("xnnpack",),
    # quantized_decomposed::embedding_byte and embedding_4bit ship in ExecuTorch's quantized kernels.
    embedding_schemes=("int8", "int4", "float"),
    # 3: the shipped artifact is chosen among fp32, static int8 and XNNPACK dynamic linear.
    # 4: the dynamic candidate quantizes Linear layers only (convolutions stay float).
    export_revision=4,
    # the pip runtime has no per-op profile of a delegated XNNPACK graph: layers are timed alone
    layer_latency="edge_kd.prune.latency:microbench_layers"))
register_runtime(RuntimeSpec(
    name="onnxruntime", formats=("onnx", "ort"), primary_format="ort",
    exporter="edge_kd.export.onnx", runner="edge_kd.runtimes.onnxruntime:OrtRunner",
    op_policy="ort-mobile-operators", int8_backend="edge_kd.quantize.onnxruntime:OrtBackend",
    bench_preload=("onnxruntime", "edge_kd.runtimes.onnxruntime"),
    # The ORT Mobile package has no 4-bit gather (GatherBlockQuantized is not in its operator set).
    embedding_schemes=("int8", "float"),
    # 3: Linear as MatMul + float bias, int8 embedding rows gathered before dequantizing.
    # 4: the shipped artifact is chosen among fp32, static int8 and dynamic int8.
    # 5: the dynamic int8 candidate stores embedding tables (Gather) as 8-bit too.
    export_revision=5,
    layer_latency="edge_kd.prune.latency:profile_onnxruntime"))
register_runtime(RuntimeSpec(
    name="litert", formats=("tflite",), primary_format="tflite",
    exporter="edge_kd.export.litert", runner="edge_kd.runtimes.litert:LiteRTRunner",
    op_policy="tflite-builtin-only", int8_backend="edge_kd.quantize.litert:LiteRTBackend",
    bench_preload=("ai_edge_litert.interpreter", "edge_kd.runtimes.litert"),
    # EMBEDDING_LOOKUP reads int8 and int4 tables.
    embedding_schemes=("int8", "int4", "float"),
    # 3: ReLU6 observed after the clamp; the shipped artifact is chosen among fp32, static and dynamic-range int8.
    export_revision=3,
    layer_latency="edge_kd.prune.latency:microbench_layers"))

__all__ = ["RUNTIMES", "RuntimeSpec", "STANDARD_RANGE_METHODS", "known_suffixes", "register_runtime",
           "runtime_for", "runtime_spec"]
