"""Multiply-accumulate counting from the exported graph.

Module-hook counters (torch-pruning's ``count_ops_and_params`` included) only see ``nn.Conv2d`` and
``nn.Linear`` modules, so a network whose forward calls ``F.conv2d`` directly looks cheaper than it is.
Here the model is traced with ``torch.export`` and every matrix-multiplying ATen op is counted from the
shapes recorded on the graph, whatever Python code produced it.

    >>> from edge_kd.testing.tiny_models import tiny_cnn, TINY_SPECS      # doctest: +SKIP
    >>> report = count_macs(tiny_cnn(), TINY_SPECS["cnn"].example_inputs())  # doctest: +SKIP
    >>> report.total, report.by_op["convolution"]                           # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from edge_kd.errors import InputError


@dataclass(frozen=True)
class MacsReport:
    """Total MACs of one forward pass, split by op kind, plus the op kinds that were seen but not counted."""

    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_op": dict(self.by_op), "uncounted": list(self.uncounted)}


def _shape(node: Any) -> tuple[int, ...] | None:
    val = getattr(node, "meta", {}).get("val") if hasattr(node, "meta") else None
    shape = getattr(val, "shape", None)
    if shape is None:
        return None
    return tuple(int(d) for d in shape)


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape)) if shape else 1


def _conv(node: Any) -> int:
    out = _shape(node)
    weight = _shape(node.args[1])
    if out is None or weight is None:
        return 0
    # weight is (C_out, C_in/groups, *kernel) for regular conv, (C_in, C_out/groups, *k) for transposed;
    # either way each output element costs C_in/groups * prod(kernel) MACs except for transposed, where
    # each *input* element is scattered over C_out/groups * prod(kernel) outputs.
    transposed = bool(node.args[6]) if len(node.args) > 6 else False
    if transposed:
        inp = _shape(node.args[0])
        return _numel(inp) * _numel(weight[1:]) if inp else 0
    return _numel(out) * _numel(weight[1:])


def _conv_transpose(node: Any) -> int:
    inp = _shape(node.args[0])
    weight = _shape(node.args[1])
    return _numel(inp) * _numel(weight[1:]) if inp and weight else 0


def _linear(node: Any) -> int:
    out = _shape(node)
    weight = _shape(node.args[1])
    if out is None or weight is None:
        return 0
    return _numel(out) * weight[-1]


def _addmm(node: Any) -> int:
    out = _shape(node)
    a = _shape(node.args[1])
    return _numel(out) * a[-1] if out and a else 0


def _mm(node: Any) -> int:
    out = _shape(node)
    a = _shape(node.args[0])
    return _numel(out) * a[-1] if out and a else 0


def _baddbmm(node: Any) -> int:
    out = _shape(node)
    a = _shape(node.args[1])
    return _numel(out) * a[-1] if out and a else 0


def _sdpa(node: Any) -> int:
    q = _shape(node.args[0])
    k = _shape(node.args[1])
    v = _shape(node.args[2])
    if not (q and k and v):
        return 0
    # Q @ K^T: (..., L, E) x (..., E, S); attn @ V: (..., L, S) x (..., S, Ev)
    batch = _numel(q[:-2])
    L, E = q[-2], q[-1]
    S, Ev = k[-2], v[-1]
    return batch * L * S * E + batch * L * S * Ev


_COUNTERS = {
    "convolution": _conv,
    "conv1d": _conv,
    "conv2d": _conv,
    "conv3d": _conv,
    "conv_transpose1d": _conv_transpose,
    "conv_transpose2d": _conv_transpose,
    "conv_transpose3d": _conv_transpose,
    "linear": _linear,
    "addmm": _addmm,
    "mm": _mm,
    "bmm": _mm,
    "matmul": _mm,
    "baddbmm": _baddbmm,
    "scaled_dot_product_attention": _sdpa,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "_scaled_dot_product_flash_attention": _sdpa,
    "_scaled_dot_product_efficient_attention": _sdpa,
}
#: Ops that multiply matrices but that this counter cannot size; they are reported, never ignored silently.
_KNOWN_UNCOUNTED = ("_native_multi_head_attention", "_transformer_encoder_layer_fwd", "einsum", "conv_tbc",
                    "_convolution")


def export_graph(model: Any, example_inputs: tuple) -> Any:
    """``torch.export`` the model (eval mode, no grad) or raise InputError naming the op that failed."""
    import torch

    import logging

    was_training = model.training
    model.eval()
    # torch.export logs whole graph dumps at WARNING when tracing fails; the user gets our one line instead.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    import contextlib
    import io
    import re

    captured = io.StringIO()  # torch prints the partial graph on failure; it names the op that broke
    try:
        with torch.no_grad(), contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            return torch.export.export(model, tuple(example_inputs), strict=False)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is the user's model, reported in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        ops = re.findall(r"torch\.ops\.(aten\.[\w.]+)", captured.getvalue() + str(exc))
        at_op = f" at op {ops[-1]}" if ops else ""
        raise InputError(f"cannot trace {type(model).__name__} with torch.export to count MACs{at_op}: "
                         f"{type(exc).__name__}: {first[:300]}") from None
    finally:
        logging.disable(previous)
        model.train(was_training)


def count_macs_graph(graph_module: Any) -> MacsReport:
    """Count MACs on an already exported program (``ExportedProgram``) or FX ``GraphModule``."""
    graph = graph_module.graph if hasattr(graph_module, "graph") else graph_module.graph_module.graph
    by_op: dict[str, int] = {}
    uncounted: set[str] = set()
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        overload_packet = getattr(getattr(node.target, "_overloadpacket", None), "__name__", name)
        key = overload_packet.split(".")[-1]
        counter = _COUNTERS.get(key)
        if counter is not None:
            by_op[key] = by_op.get(key, 0) + int(counter(node))
        elif key in _KNOWN_UNCOUNTED:
            uncounted.add(key)
    return MacsReport(sum(by_op.values()), by_op, tuple(sorted(uncounted)))


def count_macs(model: Any, example_inputs: tuple) -> MacsReport:
    """MACs of one forward pass at the example inputs' shapes (batch included), counted on the
    ``torch.export`` graph so functional convolutions and matmuls are seen.

    >>> count_macs(tiny_mlp(), (torch.zeros(1, 12),)).total   # doctest: +SKIP
    1472
    """
    return count_macs_graph(export_graph(model, example_inputs))


def count_params(model: Any) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
