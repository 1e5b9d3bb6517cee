"""Getting activation ranges into each backend: one estimator (calibration.RangeStats), two adapters.

* **PT2E** (ExecuTorch/XNNPACK and LiteRT via litert-torch): :class:`RangeObserver` is a torchao PT2E
  observer that feeds :class:`RangeStats` and answers ``calculate_qparams`` with the chosen method.
  :func:`pt2e_config` swaps it into the backend quantizer's own config (so the scheme -- which ops,
  weight granularity, int8 bounds -- stays the backend's), and :func:`make_quantizer` adds the
  layers kept in float. :class:`PT2ECalibration` calibrates once and converts once per method.
* **ONNX Runtime**: :func:`collect_onnx_ranges` runs the fp32 ONNX model with every float tensor
  exposed as an output and streams each into a RangeStats; :func:`write_ort_range_cache` writes the
  chosen ranges through ORT's own calibration-cache format (``TensorsData``), which ``quantize_static``
  reads instead of running its calibrator (whose entropy/percentile modes hold every activation).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torchao.quantization.pt2e.observer import MinMaxObserver

from edge_kd.quantize.calibration import RangeStats

_EPS = 2.0 ** -12


class RangeObserver(MinMaxObserver):
    """PT2E activation observer backed by RangeStats; ``method`` can be changed after calibration."""

    def __init__(self, dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False, quant_min=None,
                 quant_max=None, factory_kwargs=None, eps=_EPS, is_dynamic=False, method: str = "minmax",
                 percentile: float = 99.99, **kwargs: Any) -> None:
        super().__init__(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range, quant_min=quant_min,
                         quant_max=quant_max, factory_kwargs=factory_kwargs, eps=eps, is_dynamic=is_dynamic, **kwargs)
        self.stats = RangeStats()
        self.method = method
        self.percentile = percentile
        self.chosen: tuple[float, float] | None = None

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        if x_orig.numel() and x_orig.is_floating_point():
            self.stats.update(x_orig.detach().float().cpu().numpy())
        return super().forward(x_orig)

    @torch.jit.export
    def calculate_qparams(self):
        symmetric = self.qscheme in (torch.per_tensor_symmetric, torch.per_channel_symmetric)
        lo, hi = self.stats.compute(self.method, percentile=self.percentile, symmetric=symmetric)
        self.chosen = (lo, hi)
        return self._calculate_qparams(torch.tensor(lo), torch.tensor(hi))


def _with_observer(spec: Any, method: str, percentile: float, symmetric: bool) -> Any:
    if spec is None or not hasattr(spec, "observer_or_fake_quant_ctr"):
        return spec
    qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    return dataclasses.replace(spec, qscheme=qscheme,
                               observer_or_fake_quant_ctr=RangeObserver.with_args(eps=_EPS, method=method,
                                                                                  percentile=percentile))


def pt2e_config(backend: str, *, per_channel: bool = True, symmetric_activations: bool = False,
                method: str | None = "minmax", percentile: float = 99.99) -> Any:
    """The backend quantizer's own static int8 config with edge_kd's activation observer.

    ``method=None`` returns the backend's default config untouched (its HistogramObserver): the
    "runtime's own default" baseline the benchmark compares against.
    """
    if backend == "xnnpack":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
    elif backend == "litert":
        from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config
    else:
        raise ValueError(f"unknown PT2E backend {backend!r}")
    base = get_symmetric_quantization_config(is_per_channel=per_channel)
    if method is None:
        return base
    return dataclasses.replace(
        base,
        input_activation=_with_observer(base.input_activation, method, percentile, symmetric_activations),
        output_activation=_with_observer(base.output_activation, method, percentile, symmetric_activations),
    )


_LOOKUPS = (torch.ops.aten.embedding.default, torch.ops.aten.index.Tensor, torch.ops.aten.index_select.default)
#: Quantized table lookups (edge_kd.quantize.embeddings), matched by name: the ops are registered only
#: once executorch's quantized kernels are imported.
_QUANTIZED_LOOKUPS = ("quantized_decomposed.embedding_byte", "quantized_decomposed.embedding_4bit")


def _is_lookup(node: torch.fx.Node) -> bool:
    return node.target in _LOOKUPS or str(node.target).startswith(_QUANTIZED_LOOKUPS)


def _mask_tainted(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """Nodes computed only from an integer graph input (and constants): attention masks and their
    arithmetic. A lookup of a weight by ids (token embeddings) is not tainted, and neither is a node
    that combines a mask with real activations (``scores + mask``): its output is an activation."""
    tainted: set[torch.fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if val is not None and hasattr(val, "dtype") and not val.dtype.is_floating_point:
                tainted.add(node)
        elif node.op == "call_function":
            if _is_lookup(node) and node.args and isinstance(node.args[0], torch.fx.Node) \
                    and node.args[0].op == "get_attr":
                continue
            inputs = [i for i in node.all_input_nodes if i.op != "get_attr"]
            if inputs and all(i in tainted for i in inputs):
                tainted.add(node)
    return tainted


def module_filter(excluded: Iterable[str]) -> Callable[[torch.fx.Node], bool]:
    """True for nodes to quantize: not from an excluded module (or a child of one), and not mask
    arithmetic (a float op with an input derived from an integer mask input: quantizing the
    ``scores + mask`` add would put the -3.4e38 sentinel and the real scores on one int8 grid)."""
    names = tuple(excluded)
    cache: dict[int, set[torch.fx.Node]] = {}

    def keep(node: torch.fx.Node) -> bool:
        graph = node.graph
        if id(graph) not in cache:
            cache.clear()
            cache[id(graph)] = _mask_tainted(graph)
        tainted = cache[id(graph)]
        if node in tainted or any(i in tainted for i in node.all_input_nodes):
            return False
        stack = node.meta.get("nn_module_stack") or {}
        for path, _type in stack.values():
            for name in names:
                if path == name or path.startswith(name + "."):
                    return False
        return True

    return keep


def float_scalars_to_attrs(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Turn scalar operands of float add/mul into tensor attributes (so they can be observed).

    The XNNPACK and litert-torch quantizers do this for EVERY add/mul, integer ones included, which
    turns ``int_tensor + 1`` into ``int_tensor + tensor(1.0)``: a float result then used as an index
    (transformers' attention-mask code does exactly that), and calibration crashes with "tensors used as
    indices must be long". Integer arithmetic is left alone here.
    """
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix

    for n in model.graph.nodes:
        if n.op != "call_function" or n.target not in (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor):
            continue
        val = n.meta.get("val")
        if val is None or not getattr(val, "dtype", torch.int64).is_floating_point:
            continue
        new_args = []
        for arg in n.args:
            if isinstance(arg, torch.fx.Node) or not isinstance(arg, (int, float)):
                new_args.append(arg)
                continue
            name = get_new_attr_name_with_prefix("_tensor_constant_")(model)
            value = torch.tensor(float(arg))
            model.register_buffer(name, value)
            with model.graph.inserting_before(n):
                attr = model.graph.create_node("get_attr", name, (), {})
                attr.meta["val"] = val.fake_mode.from_tensor(value, static_shapes=True)
            new_args.append(attr)
        n.args = tuple(new_args)
    model.recompile()
    return model


_WEIGHTED = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default,
             torch.ops.aten.linear.default)
_CLAMPS = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default, torch.ops.aten.clamp.default)


def annotate_weighted_clamp(gm: torch.fx.GraphModule, config: Any, filter_fn: Callable[[torch.fx.Node], bool],
                            backend: str = "litert") -> list[list[torch.fx.Node]]:
    """Annotate ``conv/linear -> hardtanh`` (ReLU6, ``clamp``) as ONE quantized op whose output range is
    observed AFTER the clamp.

    Both PT2E quantizers (litert-torch's and ExecuTorch's XNNPACKQuantizer) fuse conv+ReLU only; ReLU6
    (``hardtanh``) is one of their "shared observer" ops, so it inherits the conv's observer: the [0, 6]
    output of every ReLU6 was quantized over the conv's pre-activation range (e.g. [-70, 64] in
    EfficientNet-Lite0's stem, a step of 0.53, about 11 levels for the values that survive), and the
    runtime fuses the clamp into the conv with those parameters. Networks made of conv+ReLU6
    (EfficientNet-Lite, MobileNet) lose 10-20 dB per block; a pruned one, with fewer channels to
    average the error out, collapsed on LiteRT (output SQNR below 0 dB), and the pruned grocery student
    kept 21.7 dB on XNNPACK against 28.8 dB on ONNX Runtime, whose calibrator observes the clamp output.
    """
    if backend == "litert":
        from litert_torch.quantize.pt2e_quantizer_utils import (_is_annotated, _mark_nodes_as_annotated,
                                                                get_bias_qspec, get_input_act_qspec,
                                                                get_output_act_qspec, get_weight_qspec)
    else:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import (_is_annotated,
                                                                                   _mark_nodes_as_annotated)
        from torchao.quantization.pt2e.quantizer import (get_bias_qspec, get_input_act_qspec,
                                                         get_output_act_qspec, get_weight_qspec)
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    partitions = []
    for clamp in gm.graph.nodes:
        if clamp.op != "call_function" or clamp.target not in _CLAMPS:
            continue
        op = clamp.args[0]
        if not isinstance(op, torch.fx.Node) or op.op != "call_function" or op.target not in _WEIGHTED \
                or len(op.users) != 1:
            continue
        weight = op.args[1] if len(op.args) > 1 else None
        if not isinstance(weight, torch.fx.Node) or not isinstance(op.args[0], torch.fx.Node):
            continue
        bias = op.args[2] if len(op.args) > 2 and isinstance(op.args[2], torch.fx.Node) else None
        partition = [clamp, op, weight] + ([bias] if bias is not None else [])
        if _is_annotated(partition) or any(not filter_fn(n) for n in partition):
            continue
        qspecs = {op.args[0]: get_input_act_qspec(config), weight: get_weight_qspec(config)}
        if bias is not None:
            qspecs[bias] = get_bias_qspec(config)
        op.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=qspecs, _annotated=True)
        clamp.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=get_output_act_qspec(config),
                                                                       _annotated=True)
        _mark_nodes_as_annotated(partition)
        partitions.append(partition)
    return partitions


_ADDS = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)


def annotate_adds(gm: torch.fx.GraphModule, config: Any, filter_fn: Callable[[torch.fx.Node], bool]
                  ) -> list[list[torch.fx.Node]]:
    """Annotate every ``tensor + tensor`` add as one quantized op (litert-torch's quantizer only).

    litert-torch's add annotator finds adds through the graph's source partitions (``source_fn_stack``),
    which the non-strict ``torch.export`` that edge_kd calibrates does not record for a ``+`` in a module's
    ``forward``: no residual add of EfficientNet-Lite or MobileNet was annotated. The converter still made
    an int8 ADD where the neighbouring ops happened to quantize both inputs and the output (2 of
    EfficientNet-Lite0's 9); the other 7 ran in float in the .tflite, each between two DEQUANTIZE ops and a
    QUANTIZE. (ExecuTorch's XNNPACKQuantizer annotates every add.) Annotated here first, the quantizer's
    own pass skips them.
    """
    from litert_torch.quantize.pt2e_quantizer_utils import (_is_annotated, _mark_nodes_as_annotated,
                                                            get_input_act_qspec, get_output_act_qspec)
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    partitions = []
    for add in gm.graph.nodes:
        if add.op != "call_function" or add.target not in _ADDS or len(add.args) < 2:
            continue
        inputs = add.args[:2]
        if not all(isinstance(a, torch.fx.Node) and _is_float_tensor(a) for a in inputs) or not _is_float_tensor(add):
            continue
        if _is_annotated([add]) or not filter_fn(add):
            continue
        add.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={a: get_input_act_qspec(config) for a in inputs},
            output_qspec=get_output_act_qspec(config), _annotated=True)
        _mark_nodes_as_annotated([add])
        partitions.append([add])
    return partitions


def _is_float_tensor(node: torch.fx.Node) -> bool:
    value = node.meta.get("val")
    return isinstance(value, torch.Tensor) and value.is_floating_point()


@functools.cache
def integer_safe_xnnpack_quantizer() -> type:
    """ExecuTorch's XNNPACKQuantizer with :func:`float_scalars_to_attrs` as its annotation transform (the
    stock one makes integer index arithmetic float): the base of every XNNPACK quantizer edge_kd builds,
    static and dynamic."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    class IntegerSafeXNNPACKQuantizer(XNNPACKQuantizer):
        def transform_for_annotation(self, model):
            return float_scalars_to_attrs(model)

    return IntegerSafeXNNPACKQuantizer


def make_quantizer(backend: str, config: Any, exclude: Sequence[str] = (), *, weighted_only: bool = False) -> Any:
    """The backend's PT2E quantizer with ``config`` for every layer except ``exclude`` (kept float).

    ``weighted_only``: annotate conv/linear (and average-pool) patterns only, leaving element-wise
    add/mul/cat in float. Transformers need it (:func:`edge_kd.quantize.sensitivity.is_transformer`).
    """
    keep = module_filter(exclude)
    if backend == "xnnpack":
        base = integer_safe_xnnpack_quantizer()

        class _XNNPACKQuantizer(base):
            if weighted_only:
                SUPPORTED_PATTERNS = [p for p in base.SUPPORTED_PATTERNS
                                      if p.name.startswith(("linear", "conv", "adaptive_avg_pool2d"))]

            def _annotate_all_patterns(self, model, quantization_config, filter_fn=None, operator_target=None):
                act = getattr(quantization_config, "input_activation", None)
                if act is not None and not act.is_dynamic and not quantization_config.is_qat:
                    annotate_weighted_clamp(model, quantization_config,
                                            lambda n: all(f(n) for f in (self.filter_fn, filter_fn) if f is not None),
                                            backend="xnnpack")
                return super()._annotate_all_patterns(model, quantization_config, filter_fn, operator_target)

        return _XNNPACKQuantizer().set_global(config).set_filter_function(keep)
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer

    class _LiteRTQuantizer(PT2EQuantizer):
        if weighted_only:
            STATIC_OPS = [op for op in PT2EQuantizer.STATIC_OPS
                          if op in ("linear", "addmm", "conv", "conv_relu", "adaptive_avg_pool2d")]

        def transform_for_annotation(self, model):
            return float_scalars_to_attrs(model)

        # litert-torch's quantizer has no global filter; its own module-name filter also mangles names
        # with underscores (EfficientNet's "_blocks"), so combine ours into every annotation pass.
        def _annotate_all_static_patterns(self, model, quantization_config, filter_fn=None):
            filter_fn = keep if filter_fn is None else (lambda n, f=filter_fn: keep(n) and f(n))
            if quantization_config is not None and quantization_config.input_activation is not None:
                annotate_weighted_clamp(model, quantization_config, filter_fn)
                if "add" in self.STATIC_OPS:
                    annotate_adds(model, quantization_config, filter_fn)
            return super()._annotate_all_static_patterns(model, quantization_config, filter_fn)

    return _LiteRTQuantizer().set_global(config)


def _export_for_pt2e(model: torch.nn.Module, example_inputs: tuple) -> torch.fx.GraphModule:
    return torch.export.export(model.eval(), tuple(example_inputs), strict=False).module()


class PT2ECalibration:
    """Export, annotate and calibrate once; :meth:`convert` then gives one converted graph per method.

    >>> cal = PT2ECalibration(model, example, make_quantizer("xnnpack", pt2e_config("xnnpack")), samples)  # doctest: +SKIP
    >>> gm = cal.convert("percentile", percentile=99.9)                                                  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, example_inputs: tuple, quantizer: Any,
                 samples: Sequence[tuple[np.ndarray, ...]],
                 graph_transform: Callable[[torch.fx.GraphModule], Any] | None = None):
        """``graph_transform`` rewrites the exported graph before annotation (the quantized embedding
        lookups of edge_kd.quantize.embeddings); what it returns is kept as ``transform_report``."""
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        self.quantizer = quantizer
        graph = _export_for_pt2e(model, example_inputs)
        self.transform_report = graph_transform(graph) if graph_transform is not None else None
        self.prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for sample in samples:
                self.prepared(*[torch.from_numpy(np.ascontiguousarray(a)) for a in sample])

    def observers(self, module: torch.nn.Module | None = None) -> list[tuple[str, Any]]:
        module = module or self.prepared
        return [(n, m) for n, m in module.named_modules() if isinstance(m, RangeObserver)]

    def convert(self, method: str | None, *, percentile: float = 99.99, fold_quantize: bool = True
                ) -> tuple[torch.fx.GraphModule, list[dict[str, Any]]]:
        """A converted (Q/DQ) graph for ``method`` and the activation ranges it used.

        ``method=None`` keeps what each observer was built with (the backend default baseline).
        """
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        prepared = copy.deepcopy(self.prepared)
        observed = self.observers(prepared)
        outputs = _output_observers(prepared)
        for name, obs in observed:
            if method is not None:
                # The model's outputs keep their full range: clipping the largest logits changes the argmax.
                obs.method = "minmax" if name in outputs else method
                obs.percentile = percentile
        ranges = _observer_targets(prepared)
        converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
        report = []
        for name, obs in observed:
            if obs.chosen is None:
                continue
            scale, zp = obs.calculate_qparams()
            report.append({"tensor": ranges.get(name, name), "method": obs.method,
                           "observed": [obs.stats.min, obs.stats.max],
                           "range": [round(obs.chosen[0], 6), round(obs.chosen[1], 6)],
                           "scale": float(scale.reshape(-1)[0]), "zero_point": int(zp.reshape(-1)[0])})
        return converted, report

    @property
    def quantized_layers(self) -> int:
        """Observers placed on activations: 0 means the quantizer found nothing to quantize."""
        return len([1 for n in self.prepared.graph.nodes if n.op == "call_module" and "activation_post_process" in
                    str(n.target)])


def _output_observers(prepared: torch.fx.GraphModule) -> set[str]:
    """Observers whose result is a graph output (directly or through shape-only ops)."""
    names = set()
    for node in prepared.graph.nodes:
        if node.op == "call_module" and "activation_post_process" in str(node.target):
            frontier, seen = list(node.users), set()
            while frontier:
                u = frontier.pop()
                if u in seen:
                    continue
                seen.add(u)
                if u.op == "output":
                    names.add(str(node.target))
                    break
                if u.op == "call_function" and any(k in str(u.target) for k in ("view", "reshape", "squeeze",
                                                                                  "flatten", "getitem", "clone")):
                    frontier.extend(u.users)
    return names


def _observer_targets(prepared: torch.fx.GraphModule) -> dict[str, str]:
    """observer module name -> the node whose output it observes (a readable tensor name)."""
    names: dict[str, str] = {}
    for node in prepared.graph.nodes:
        if node.op == "call_module" and "activation_post_process" in str(node.target) and node.args:
            src = node.args[0]
            stack = getattr(src, "meta", {}).get("nn_module_stack") or {}
            where = list(stack.values())[-1][0] if stack else ""
            names[str(node.target)] = f"{where}:{getattr(src, 'name', src)}" if where else str(getattr(src, "name", src))
    return names


# ------------------------------------------------------------------------------------------------
# ONNX Runtime
# ------------------------------------------------------------------------------------------------
def _float_tensors(model: Any) -> list[str]:
    """Names of float activations (node inputs/outputs that are not initializers) in graph order."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    inits = {i.name for i in model.graph.initializer}
    seen: list[str] = []
    for node in model.graph.node:
        for name in list(node.input) + list(node.output):
            if name and name not in inits and name not in seen and types.get(name) == onnx.TensorProto.FLOAT:
                seen.append(name)
    return seen


def collect_onnx_ranges(onnx_path: str | Path, samples: Sequence[tuple[np.ndarray, ...]], *,
                        threads: int = 1) -> dict[str, RangeStats]:
    """Stream every float activation of the fp32 ONNX model over the samples into a RangeStats."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    tensors = _float_tensors(model)
    existing = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No graph optimisation: fused nodes would hide the tensors the quantizer later asks about.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    stats = {name: RangeStats() for name in tensors}
    for sample in samples:
        outs = session.run(output_names, dict(zip(input_names, sample)))
        for name, value in zip(output_names, outs):
            if name in stats and isinstance(value, np.ndarray) and value.dtype == np.float32:
                stats[name].update(value)
    return {k: v for k, v in stats.items() if v.observed}


def ort_ranges(stats: dict[str, RangeStats], method: str, *, percentile: float = 99.99,
               symmetric: bool = False, outputs: Iterable[str] = ()) -> dict[str, tuple[float, float]]:
    """Ranges per tensor by ``method``; the model's ``outputs`` keep min/max (logits must not clip)."""
    outputs = set(outputs)
    return {name: s.compute("minmax" if name in outputs else method, percentile=percentile, symmetric=symmetric)
            for name, s in stats.items()}


def sentinel_nodes(model: Any, stats: dict[str, RangeStats]) -> list[str]:
    """Nodes producing or consuming a tensor that carried mask sentinels (|x| >= 1e30): kept float."""
    flagged = {name for name, s in stats.items() if s.sentinels}
    return [n.name for n in model.graph.node
            if any(t in flagged for t in list(n.input) + list(n.output))]


def write_ort_range_cache(ranges: dict[str, tuple[float, float]], path: str | Path) -> Path:
    """Write ranges in onnxruntime's calibration-cache format (read back by quantize_static)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData, save_tensors_data

    data = TensorsData(CalibrationMethod.MinMax,
                       {name: TensorData(lowest=np.array(lo, dtype=np.float32), highest=np.array(hi, dtype=np.float32))
                        for name, (lo, hi) in ranges.items()})
    save_tensors_data(data, Path(path), smooth_quant=False)
    return Path(path)
