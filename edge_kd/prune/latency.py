"""Latency tables: what each prunable layer costs in the target runtime, as a function of its channels.

MACs are the wrong currency for pruning: ONNX Runtime spends ~63% of EfficientNet-Lite0's time in
depthwise convolutions that hold 9% of its MACs, so removing the same fraction of channels everywhere
buys less there than on XNNPACK. A :class:`LatencyTable` records, for every Conv/Linear layer, its
measured time at three uniform channel levels (all groups kept at 100%, 62.5%, 25% of their channels,
rounded to ``round_to``) and a fitted cost model

    ms(ri, ro) = gamma + beta * (ri + ro) / 2 + alpha * ri * ro

where ``ri``/``ro`` are the kept fractions of the layer's input / output channels (a depthwise conv has
``ri == ro``; an input that no group prunes, such as the image, stays at 1). The whole model's time is
``scale * sum(layers) + other_ms`` (fitted on the whole-model figures of the same levels), so the
selection in :mod:`edge_kd.prune.select` can predict what any per-group choice of channels costs.

How a runtime measures is the registry's ``layer_latency`` (``edge_kd.runtimes.registry``):

- ``onnxruntime``: the model itself is exported at each level and run under ORT's profiler; every
  kernel's time is mapped back to the PyTorch layer (the Conv/FusedConv/Gemm/MatMul nodes in execution
  order, checked against the layers' weight shapes; ORT fuses BN, activations and residual adds into the
  convolution, and the unfused elementwise nodes after a layer are charged to it). Each kernel's fastest
  run (unpreempted) gives its share, scaled to the median CPU time of a run.
- ``executorch`` and ``litert``: their pip packages have no per-op profiler for delegated XNNPACK
  graphs, so every distinct layer (shape, kernel, stride, groups, input size) is exported alone to the
  runtime at each level and timed (CPU time per run, one thread); the whole model is timed at each
  level too, which calibrates ``scale`` and ``other_ms``.

Tables are cached per target, runtime version, model structure and ``round_to`` (the weights do not
matter) under ``$EDGE_KD_CACHE/latency`` (default ``~/.cache/edge_kd/latency``).

    >>> table = latency_table(model, example_inputs, load_target("ort-mobile"), round_to=8)  # doctest: +SKIP
    >>> table.predict({g.id: g.channels // 2 for g in table.groups}) / table.base_ms         # doctest: +SKIP
    0.31
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from edge_kd.errors import InputError

TABLE_FORMAT = "edge-kd-latency-table"
TABLE_VERSION = 1
#: Uniform channel levels measured (kept fraction of every prunable group): three, for the cost model's
#: three coefficients (each level is one export of the whole model, or of every distinct layer).
DEFAULT_LEVELS = (1.0, 0.625, 0.25)


@dataclass
class LayerCost:
    """One Conv/Linear layer: which groups set its channel counts, and its measured/fitted cost."""

    name: str
    kind: str                      # "conv" | "depthwise" | "linear"
    in_channels: int
    out_channels: int
    in_group: str | None           # None: no group prunes its inputs (the image, a protected producer)
    out_group: str | None          # None: protected (the classifier)
    macs: int = 0                  # at full width
    points: list[list[float]] = field(default_factory=list)   # [ri, ro, ms] measured
    coef: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])   # gamma, beta, alpha

    def ms(self, ri: float, ro: float) -> float:
        g, b, a = self.coef
        return g + b * (ri + ro) / 2 + a * ri * ro

    def macs_at(self, ri: float, ro: float) -> float:
        return self.macs * (ro if self.kind == "depthwise" else ri * ro)


@dataclass
class GroupInfo:
    """A dependency group of torch-pruning: its id (the root layer's name) and its full channel count."""

    id: str
    channels: int


@dataclass
class LatencyTable:
    """Per-layer latency model of one model structure in one target runtime (see the module doc)."""

    target: str
    runtime: str
    runtime_version: str
    threads: int
    model_key: str
    model: str
    inputs: list[list[int]]
    round_to: int
    method: str
    levels: list[float]
    groups: list[GroupInfo]
    layers: list[LayerCost]
    whole: list[dict[str, float]] = field(default_factory=list)   # {level, index, ms, layer_sum_ms}
    scale: float = 1.0
    other_ms: float = 0.0
    macs_other: int = 0
    seconds: float = 0.0
    created: str = ""

    # ---- prediction ------------------------------------------------------------------------------
    def group(self, gid: str) -> GroupInfo:
        for g in self.groups:
            if g.id == gid:
                return g
        raise KeyError(gid)

    def _ratios(self, layer: LayerCost, keep: Mapping[str, int]) -> tuple[float, float]:
        full = {g.id: g.channels for g in self.groups}
        ri = keep.get(layer.in_group, full.get(layer.in_group, 1)) / full.get(layer.in_group, 1) \
            if layer.in_group else 1.0
        ro = keep.get(layer.out_group, full.get(layer.out_group, 1)) / full.get(layer.out_group, 1) \
            if layer.out_group else 1.0
        return ri, ro

    def layer_sum(self, keep: Mapping[str, int]) -> float:
        return sum(layer.ms(*self._ratios(layer, keep)) for layer in self.layers)

    def predict(self, keep: Mapping[str, int]) -> float:
        """Predicted ms of the whole model with ``keep[group id]`` channels per group (others full)."""
        return self.scale * self.layer_sum(keep) + self.other_ms

    def predict_macs(self, keep: Mapping[str, int]) -> float:
        return self.macs_other + sum(layer.macs_at(*self._ratios(layer, keep)) for layer in self.layers)

    @property
    def base_ms(self) -> float:
        return self.predict({})

    # ---- (de)serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"format": TABLE_FORMAT, "version": TABLE_VERSION, **d}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "latency table") -> "LatencyTable":
        if not isinstance(data, Mapping) or data.get("format") != TABLE_FORMAT:
            raise InputError(f"{source}: not an edge_kd latency table (no \"format\": \"{TABLE_FORMAT}\")")
        if data.get("version") != TABLE_VERSION:
            raise InputError(f"{source}: latency table version {data.get('version')!r}, this edge_kd reads "
                             f"{TABLE_VERSION}; delete it to measure again")
        try:
            fields = {k: v for k, v in data.items() if k not in ("format", "version")}
            fields["groups"] = [GroupInfo(**g) for g in fields["groups"]]
            fields["layers"] = [LayerCost(**layer) for layer in fields["layers"]]
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise InputError(f"{source}: malformed latency table ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        from edge_kd.pipeline.atomic import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "LatencyTable":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such latency table")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a JSON latency table ({type(exc).__name__})") from None
        return cls.from_dict(data, source=str(path))

    def summary(self) -> dict[str, Any]:
        """What build.json records about the table (the whole table is in the cache file)."""
        return {"target": self.target, "runtime": self.runtime, "runtime_version": self.runtime_version,
                "method": self.method, "model_key": self.model_key, "round_to": self.round_to,
                "levels": self.levels, "groups": len(self.groups), "layers": len(self.layers),
                "base_ms": round(self.base_ms, 4), "scale": round(self.scale, 4),
                "other_ms": round(self.other_ms, 4), "whole": self.whole, "seconds": self.seconds}

    def check_matches(self, target: Any, model_key: str, round_to: int) -> None:
        """InputError when this table was measured for another target, runtime or model structure."""
        problems = []
        if self.target != target.name:
            problems.append(f"target {self.target!r}, not {target.name!r}")
        if self.runtime != target.runtime.name:
            problems.append(f"runtime {self.runtime!r}, not {target.runtime.name!r}")
        if self.model_key != model_key:
            problems.append(f"another model structure ({self.model} {self.model_key[:12]}, "
                            f"this one {model_key[:12]})")
        if self.round_to != round_to:
            problems.append(f"round_to {self.round_to}, not {round_to}")
        if problems:
            raise InputError("latency table is for " + "; ".join(problems))


# ---- the model's layers and groups ---------------------------------------------------------------------
@dataclass
class _Layer:
    name: str
    module: Any
    input_shape: tuple[int, ...]


def layers_in_order(model: Any, example_inputs: tuple) -> list[_Layer]:
    """Conv/Linear modules in the order a forward pass first runs them, with the shape of their input
    (the latency table's layers; the last one is the classifier that pruning keeps whole)."""
    import torch
    from torch import nn

    names = {m: n for n, m in model.named_modules()}
    seen: dict[str, _Layer] = {}

    def hook(mod, inputs, _out):
        name = names[mod]
        if name not in seen:
            seen[name] = _Layer(name, mod, tuple(int(d) for d in inputs[0].shape))

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))
             and not isinstance(m, nn.modules.linear.NonDynamicallyQuantizableLinear)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return list(seen.values())


def _kind(module: Any) -> str:
    from torch import nn

    if isinstance(module, nn.Linear):
        return "linear"
    if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
        return "depthwise"
    return "conv"


def _layer_macs(layer: _Layer) -> int:
    m = layer.module
    if hasattr(m, "kernel_size"):
        spatial_in = layer.input_shape[2:]
        out = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in
               zip(spatial_in, m.padding if isinstance(m.padding, tuple) else (0,) * len(spatial_in),
                   m.dilation, m.kernel_size, m.stride)]
        return int(m.out_channels * math.prod(out) * (m.in_channels // m.groups) * math.prod(m.kernel_size))
    return int(math.prod(layer.input_shape[:-1]) * m.in_features * m.out_features)


def group_map(pruner: Any, model: Any) -> tuple[list[GroupInfo], dict[str, str], dict[str, str]]:
    """(groups, out_group by layer name, in_group by layer name) from a torch-pruning pruner's graph."""
    from torch import nn

    names = {m: n for n, m in model.named_modules()}
    groups: list[GroupInfo] = []
    out_group: dict[str, str] = {}
    in_group: dict[str, str] = {}
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                          root_module_types=pruner.root_module_types):
        root = group[0].dep.target.module
        gid = names.get(root)
        channels = pruner.DG.get_out_channels(root)
        if gid is None or not channels:
            continue
        groups.append(GroupInfo(gid, int(channels)))
        for dep, _ in group:
            mod = dep.target.module
            if not isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)) or mod not in names:
                continue
            if pruner.DG.is_out_channel_pruning_fn(dep.handler):
                out_group.setdefault(names[mod], gid)
            elif pruner.DG.is_in_channel_pruning_fn(dep.handler):
                in_group.setdefault(names[mod], gid)
    return groups, out_group, in_group


def model_key(model: Any, example_inputs: tuple, groups: Sequence[GroupInfo], round_to: int) -> str:
    """Hash of the model's structure (layer names, types, weight shapes, groups, input shapes)."""
    h = hashlib.sha256()
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        shape = tuple(w.shape) if w is not None and hasattr(w, "shape") else ()
        h.update(f"{name}|{type(mod).__name__}|{shape}|{getattr(mod, 'groups', '')}|"
                 f"{getattr(mod, 'stride', '')}\n".encode())
    h.update(repr([(g.id, g.channels) for g in groups]).encode())
    h.update(repr([tuple(x.shape) for x in example_inputs]).encode())
    h.update(f"round_to={round_to}".encode())
    return h.hexdigest()


# ---- measurement --------------------------------------------------------------------------------------
def _cpu_ms(runner: Any, inputs: list, *, chunks: int = 7, chunk_ms: float = 3.0) -> float:
    """Median CPU time of one run (process CPU clock: robust to a machine shared with other jobs)."""
    for _ in range(2):
        runner._run(inputs)
    t = time.process_time()
    runner._run(inputs)
    one = max((time.process_time() - t) * 1e3, 1e-3)
    n = int(min(200, max(2, math.ceil(chunk_ms / one))))
    per_run = []
    for _ in range(chunks):
        t = time.process_time()
        for _ in range(n):
            runner._run(inputs)
        per_run.append((time.process_time() - t) * 1e3 / n)
    return statistics.median(per_run)


def _random_inputs(runner: Any) -> list:
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(dtype) if np.dtype(dtype).kind == "f"
              else np.zeros(shape, dtype=dtype) for _, shape, dtype in runner.input_specs]
    return runner.check_inputs(arrays)


def _time_artifact(path: Path, threads: int) -> float:
    from edge_kd.runtimes import open_runner

    runner = open_runner(path, threads=threads)
    return _cpu_ms(runner, _random_inputs(runner))


def _export(model: Any, example_inputs: tuple, target: Any, folder: Path) -> Path:
    from edge_kd.export import export_model

    # timing only: the parity check (the runtime's outputs vs PyTorch) is the exporter's tests' job
    return export_model(copy.deepcopy(model).eval(), example_inputs, target, folder, check_parity=False).primary


def _weight_shape(event_args: dict) -> tuple[int, ...] | None:
    shapes = [next(iter(s.values())) for s in event_args.get("input_type_shape", []) if s]
    return tuple(shapes[1]) if len(shapes) > 1 else None


_ORT_MATMUL_OPS = ("Conv", "FusedConv", "Gemm", "MatMul", "FusedMatMul", "NhwcFusedConv")


def profile_onnxruntime(model: Any, example_inputs: tuple, layers: Sequence[_Layer], target: Any,
                        work: Path, runs: int = 20) -> tuple[dict[str, float], float]:
    """ONNX Runtime: per-layer ms from ORT's profiler on the exported model, and the whole model's ms
    (sum of every kernel). Returns ({layer name: ms}, whole ms)."""
    import numpy as np
    import onnxruntime as ort

    path = _export(model, example_inputs, target, work)
    so = ort.SessionOptions()
    so.intra_op_num_threads = target.runtime.threads
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.log_severity_level = 3
    so.profile_file_prefix = str(work / "ort_profile")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {}
    for i in sess.get_inputs():
        dtype = np.float32 if "float" in i.type else np.int64
        feed[i.name] = rng.standard_normal(i.shape).astype(dtype) if dtype is np.float32 else \
            np.zeros(i.shape, dtype=dtype)
    warmup = 3
    cpu_ms = []
    for i in range(warmup + runs):
        t = time.process_time()
        sess.run(None, feed)
        cpu_ms.append((time.process_time() - t) * 1e3)
    trace = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, list[float]] = {}
    order: list[tuple[str, str, tuple | None]] = []
    for ev in trace:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        name = ev["name"][: -len("_kernel_time")]
        if name not in per_node:
            per_node[name] = []
            order.append((name, ev["args"].get("op_name", ""), _weight_shape(ev["args"])))
        per_node[name].append(ev["dur"] / 1000.0)
    # The profiler's durations are wall time: on a machine shared with other jobs nearly every run is
    # preempted somewhere, inflating whichever kernel was running. A kernel's fastest run is its
    # unpreempted cost; those shares are scaled to the median CPU time of a whole run (the process CPU
    # clock, which preemption does not advance). The warm-up runs are in the trace too: skipped.
    fastest = {n: min(v[-runs:]) for n, v in per_node.items()}
    total = sum(fastest.values())
    run_ms = statistics.median(cpu_ms[warmup:])
    node_ms = {n: ms * run_ms / max(total, 1e-9) for n, ms in fastest.items()}
    out: dict[str, float] = {layer.name: 0.0 for layer in layers}
    pending = list(layers)
    current: str | None = None
    unmatched = 0.0
    for name, op, wshape in order:
        if op in _ORT_MATMUL_OPS and pending:
            layer = pending[0]
            expected = tuple(layer.module.weight.shape)
            if op in ("Conv", "FusedConv", "NhwcFusedConv") and wshape is not None and wshape != expected:
                raise RuntimeError(f"ORT profile: node {name} ({op}, weight {wshape}) does not match layer "
                                   f"{layer.name} (weight {expected})")
            pending.pop(0)
            current = layer.name
            out[current] += node_ms[name]
        elif current is not None:
            out[current] += node_ms[name]  # elementwise work after a layer scales with its output
        else:
            unmatched += node_ms[name]
    if pending:
        raise RuntimeError(f"ORT profile: {len(pending)} layers without a kernel (first: {pending[0].name})")
    return out, sum(node_ms.values())


def microbench_layers(model: Any, example_inputs: tuple, layers: Sequence[_Layer], target: Any,
                      work: Path, cache: dict | None = None, whole: bool = True) -> tuple[dict[str, float], float | None]:
    """ExecuTorch / LiteRT: each distinct layer exported alone to the runtime and timed (CPU ms per run),
    and (``whole``) the whole model timed. ``cache`` (signature -> ms) is shared across levels."""
    import torch
    from torch import nn

    cache = {} if cache is None else cache
    out: dict[str, float] = {}
    threads = target.runtime.threads
    if "overhead" not in cache:
        # what running any artifact costs (the call, input copies): charged once to the whole model, not
        # once per layer, so it is taken off every layer's time
        trivial = nn.Conv2d(1, 1, 1).eval()
        cache["overhead"] = _time_artifact(_export(trivial, (torch.zeros(1, 1, 1, 1),), target, work / "overhead"),
                                           threads)
    for i, layer in enumerate(layers):
        m = layer.module
        if isinstance(m, nn.Linear):
            sig = ("linear", m.in_features, m.out_features, layer.input_shape)
        else:
            sig = (type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                   m.dilation, m.groups, layer.input_shape)
        if sig not in cache:
            single = copy.deepcopy(m).eval()
            with torch.no_grad():
                if getattr(single, "bias", None) is None:
                    # a folded BN leaves a bias: measure the layer as the runtime runs it
                    single.bias = nn.Parameter(torch.zeros(single.weight.shape[0]))
            x = torch.randn(*layer.input_shape)
            path = _export(single, (x,), target, work / f"layer{len(cache)}")
            cache[sig] = max(_time_artifact(path, threads) - cache["overhead"], 0.0)
        out[layer.name] = cache[sig]
    if not whole:
        return out, None
    return out, _time_artifact(_export(model, example_inputs, target, work / "whole"), threads)


# ---- fitting --------------------------------------------------------------------------------------------
def _fit_layer(points: Sequence[Sequence[float]]) -> list[float]:
    """Non-negative least squares of ms = gamma + beta * (ri+ro)/2 + alpha * ri*ro."""
    import numpy as np
    from scipy.optimize import nnls

    A = np.array([[1.0, (ri + ro) / 2, ri * ro] for ri, ro, _ in points])
    b = np.array([ms for _, _, ms in points])
    coef, _ = nnls(A, b)
    return [float(c) for c in coef]


def _fit_whole(whole: Sequence[dict[str, float]]) -> tuple[float, float]:
    """(scale, other_ms) with whole_ms ~= scale * layer_sum + other (scale kept in [0.5, 2])."""
    import numpy as np

    if len(whole) < 2:
        return 1.0, 0.0
    s = np.array([w["layer_sum_ms"] for w in whole])
    y = np.array([w["ms"] for w in whole])
    A = np.stack([s, np.ones_like(s)], axis=1)
    (scale, other), *_ = np.linalg.lstsq(A, y, rcond=None)
    scale = float(min(max(scale, 0.5), 2.0))
    other = float(np.mean(y - scale * s))
    return scale, other


# ---- building / caching ---------------------------------------------------------------------------------
def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_KD_CACHE", Path.home() / ".cache" / "edge_kd")).expanduser() / "latency"


def measuring_function(target: Any) -> Callable[..., tuple[dict[str, float], float]]:
    """The runtime's way to measure per-layer latency (registry ``layer_latency``), or InputError."""
    from edge_kd.registry import load_ref
    from edge_kd.runtimes import runtime_spec

    spec = runtime_spec(target.runtime.name)
    ref = getattr(spec, "layer_latency", None)
    if not ref:
        raise InputError(f"runtime {spec.name!r} has no way to measure per-layer latency (its registry entry "
                         f"sets no layer_latency): a latency goal cannot be used with target {target.name!r}")
    return load_ref(ref)


def _uniform(model: Any, example_inputs: tuple, config: Any, keep: float, protected: Sequence[str]) -> Any:
    from dataclasses import replace

    from edge_kd.prune.pruner import prune_channels

    pruned = copy.deepcopy(model).eval()
    if keep < 1.0:
        cfg = replace(config, goal="macs", amount=0.5, criterion="l2", max_layer_ratio=0.95)
        prune_channels(pruned, example_inputs, cfg, 1.0 - keep, protected=protected)
    return pruned


def structure(model: Any, example_inputs: tuple, config: Any, protected: Sequence[str]) -> tuple[
        list[GroupInfo], dict[str, str], dict[str, str], str]:
    """(groups, out_group, in_group, model key) of ``model`` under ``config``'s pruner settings."""
    from edge_kd.prune.pruner import build_pruner

    probe = copy.deepcopy(model).eval()
    pruner = build_pruner(probe, example_inputs, config, 0.0, protected)
    groups, out_group, in_group = group_map(pruner, probe)
    return groups, out_group, in_group, model_key(probe, example_inputs, groups, config.round_to)


def measure_table(model: Any, example_inputs: tuple, target: Any, config: Any, protected: Sequence[str], *,
                  levels: Sequence[float] | None = None, log: Callable[[str], None] | None = None,
                  work_dir: str | os.PathLike[str] | None = None) -> LatencyTable:
    """Measure a latency table of ``model`` in ``target``'s runtime (see the module doc)."""
    from edge_kd.prune.macs import count_macs

    measure = measuring_function(target)
    micro = measure is microbench_layers
    levels = tuple(levels or DEFAULT_LEVELS)
    start = time.perf_counter()
    groups, out_group, in_group, key = structure(model, example_inputs, config, protected)
    base_layers = layers_in_order(model, example_inputs)
    costs = {layer.name: LayerCost(layer.name, _kind(layer.module),
                                   int(getattr(layer.module, "in_channels", getattr(layer.module, "in_features", 0))),
                                   int(getattr(layer.module, "out_channels", getattr(layer.module, "out_features", 0))),
                                   in_group.get(layer.name), out_group.get(layer.name), _layer_macs(layer))
             for layer in base_layers}
    for cost in costs.values():
        if cost.kind == "depthwise":  # one channel set: torch-pruning prunes its inputs with its outputs
            cost.in_group = cost.out_group
    macs_total = count_macs(model, example_inputs).total
    whole: list[dict[str, float]] = []
    bench_cache: dict = {}
    with tempfile.TemporaryDirectory(prefix="edge-kd-latency-", dir=work_dir) as tmp:
        for li, level in enumerate(levels):
            variant = _uniform(model, example_inputs, config, level, protected)
            layers = layers_in_order(variant, example_inputs)
            # the whole model (slow to export) calibrates scale and other_ms: its ends are enough
            kwargs = {"cache": bench_cache, "whole": li in (0, len(levels) - 1)} if micro else {}
            per_layer, whole_ms = measure(variant, example_inputs, layers, target, Path(tmp) / f"level{li}", **kwargs)
            layer_sum = 0.0
            for layer in layers:
                cost = costs.get(layer.name)
                if cost is None:
                    continue
                m = layer.module
                ci = getattr(m, "in_channels", getattr(m, "in_features", 0))
                co = getattr(m, "out_channels", getattr(m, "out_features", 0))
                ri = ci / cost.in_channels if cost.in_group else 1.0
                ro = co / cost.out_channels if cost.out_group else 1.0
                cost.points.append([round(ri, 5), round(ro, 5), round(per_layer[layer.name], 6)])
                layer_sum += per_layer[layer.name]
            if whole_ms is not None:
                whole.append({"level": level, "index": li, "ms": round(whole_ms, 5),
                              "layer_sum_ms": round(layer_sum, 5)})
            if log:
                log(f"latency table {target.name}: level {level:.2f}: layers {layer_sum:.3f} ms, whole "
                    f"{'-' if whole_ms is None else f'{whole_ms:.3f}'} ms ({time.perf_counter() - start:.0f} s)")
    for cost in costs.values():
        cost.coef = _fit_layer(cost.points) if cost.points else [0.0, 0.0, 0.0]
    # the fitted layer costs at each level's measured channel ratios against the measured whole model
    fitted = [{"level": w["level"], "ms": w["ms"],
               "layer_sum_ms": sum(c.ms(*c.points[w["index"]][:2]) for c in costs.values()
                                   if len(c.points) > w["index"])} for w in whole]
    scale, other = _fit_whole(fitted)
    table = LatencyTable(
        target=target.name, runtime=target.runtime.name, runtime_version=_runtime_version(target.runtime.name),
        threads=target.runtime.threads, model_key=key, model=type(model).__name__,
        inputs=[list(x.shape) for x in example_inputs], round_to=config.round_to,
        method="ort-profiler" if measure is profile_onnxruntime else "micro-benchmark",
        levels=list(levels), groups=groups, layers=list(costs.values()), whole=whole, scale=round(scale, 6),
        other_ms=round(other, 6), macs_other=int(macs_total - sum(c.macs for c in costs.values())),
        seconds=round(time.perf_counter() - start, 1), created=time.strftime("%Y-%m-%d %H:%M:%S"))
    return table


def _runtime_version(runtime: str) -> str:
    import importlib.metadata as md

    dist = {"onnxruntime": "onnxruntime", "executorch": "executorch", "litert": "ai-edge-litert"}.get(runtime)
    try:
        return md.version(dist) if dist else "unknown"
    except md.PackageNotFoundError:
        return "unknown"


def latency_table(model: Any, example_inputs: tuple, target: Any, config: Any, protected: Sequence[str], *,
                  table_path: str | os.PathLike[str] | None = None, cache: str | os.PathLike[str] | None = None,
                  log: Callable[[str], None] | None = None) -> tuple[LatencyTable, dict[str, Any]]:
    """The latency table for ``model`` on ``target``: ``table_path`` when given (checked to be for this
    target and model structure), else the cached one, else measured now and cached.
    Returns (table, {"path", "cached"})."""
    measuring_function(target)  # a runtime without a way to measure fails before anything else
    groups, _out, _in, key = structure(model, example_inputs, config, protected)
    if table_path is not None:
        table = LatencyTable.load(table_path)
        table.check_matches(target, key, config.round_to)
        return table, {"path": str(table_path), "cached": True}
    folder = Path(cache) if cache is not None else cache_dir()
    path = folder / f"{target.name}-{target.runtime.name}-{_runtime_version(target.runtime.name)}-" \
                    f"t{target.runtime.threads}-{key[:20]}.json"
    if path.is_file():
        try:
            table = LatencyTable.load(path)
            table.check_matches(target, key, config.round_to)
            return table, {"path": str(path), "cached": True}
        except InputError:
            pass  # a corrupt or stale cache entry is measured again
    table = measure_table(model, example_inputs, target, config, protected, log=log)
    folder.mkdir(parents=True, exist_ok=True)
    table.save(path)
    return table, {"path": str(path), "cached": False}
