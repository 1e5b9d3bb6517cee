"""Per-layer quantization sensitivity: which layers to keep in float when int8 costs too much accuracy.

Each Conv/Linear layer is quantized **alone** (its input activation with the calibrated per-tensor range,
its weights symmetric per output channel, everything else in float) and the SQNR of its output against
the float output is measured over calibration samples. Low SQNR = the layer loses the most signal to
int8; the fallback keeps those in float first. One float forward pass per sample measures every layer
(hooks), so this is cheap compared with re-exporting the model once per layer.

    ranking = layer_sensitivity(model, samples, method="percentile")
    ranking[0]  # {"layer": "features.0", "sqnr_db": 21.3, "params": 432, ...}
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_kd.errors import InputError
from edge_kd.quantize.calibration import RangeStats, qparams

QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers the int8 backends quantize (Conv1d/Conv2d/Linear), in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QUANTIZABLE) and name]


def is_transformer(model: nn.Module) -> bool:
    """LayerNorm marks a residual stream with outlier channels (ranges of +-200 in MiniLM): every backend
    then quantizes the weighted ops only (Conv/Linear, embedding tables), leaving element-wise ops,
    attention matmuls and softmax in float, because a per-tensor int8 residual add or attention product
    loses the other channels. Measured on MiniLM/banking77 through ONNX Runtime (200 test rows): every op
    int8 0.870 (output SQNR 9.1 dB), weighted ops only 0.905 = fp32 (14.7 dB), same file size and p50."""
    return any(isinstance(m, nn.LayerNorm) for m in model.modules())


def _fake_quant_weight(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    if per_channel:
        bound = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-12)
        scale = (bound / 127.0).reshape(-1, *([1] * (w.dim() - 1)))
    else:
        scale = (w.detach().abs().max().clamp_min(1e-12) / 127.0)
    return torch.clamp(torch.round(w / scale), -127, 127) * scale


def _fake_quant_act(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return (torch.clamp(torch.round(x / scale) + zero_point, -128, 127) - zero_point) * scale


def _quantized_output(module: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return F.linear(x, w, module.bias)
    return module._conv_forward(x, w, module.bias)  # Conv1d/Conv2d honour their padding mode here


def _run_with_hooks(model: Any, layers: Sequence[tuple[str, Any]], samples: Sequence[Any], *,
                    pre_hook: Any = None, hook: Any = None) -> None:
    """Run ``samples`` through ``model`` with a per-layer (pre-)forward hook made by ``pre_hook(name)`` /
    ``hook(name)``; the hooks are removed afterwards, also on error."""
    handles = []
    try:
        for name, module in layers:
            if pre_hook is not None:
                handles.append(module.register_forward_pre_hook(pre_hook(name)))
            if hook is not None:
                handles.append(module.register_forward_hook(hook(name)))
        with torch.no_grad():
            for sample in samples:
                model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in sample])
    finally:
        for handle in handles:
            handle.remove()


def layer_sensitivity(model: nn.Module, samples: Sequence[tuple[np.ndarray, ...]], *, method: str = "minmax",
                      percentile: float = 99.99, per_channel: bool = True, symmetric_activations: bool = False,
                      max_samples: int = 32) -> list[dict[str, Any]]:
    """SQNR (dB) of each quantizable layer quantized on its own, most sensitive (lowest) first."""
    layers = quantizable_layers(model)
    if not layers:
        raise InputError(f"{type(model).__name__}: the model has no quantizable layers (Conv1d/Conv2d/Linear); "
                         "int8 would not change it")
    samples = list(samples)[:max_samples]
    stats = {name: RangeStats() for name, _ in layers}
    order: dict[str, int] = {}

    def observe(name: str):
        def hook(_module, inputs):
            order.setdefault(name, len(order))
            if inputs and torch.is_tensor(inputs[0]) and inputs[0].is_floating_point():
                stats[name].update(inputs[0].detach().float().numpy())
        return hook

    model.eval()
    _run_with_hooks(model, layers, samples, pre_hook=observe)

    signal = {name: 0.0 for name, _ in layers}
    noise = {name: 0.0 for name, _ in layers}
    act_q = {}
    weights_q = {}
    for name, module in layers:
        if stats[name].observed:
            lo, hi = stats[name].compute(method, percentile=percentile, symmetric=symmetric_activations)
            act_q[name] = qparams(lo, hi, symmetric=symmetric_activations)
        weights_q[name] = _fake_quant_weight(module.weight, per_channel)

    def measure(name: str):
        def hook(module, inputs, output):
            if name not in act_q or not torch.is_tensor(output):
                return
            xq = _fake_quant_act(inputs[0].float(), *act_q[name])
            yq = _quantized_output(module, xq, weights_q[name])
            signal[name] += float((output.float() ** 2).sum())
            noise[name] += float(((output.float() - yq) ** 2).sum())
        return hook

    _run_with_hooks(model, layers, samples, hook=measure)

    ranking = []
    for name, module in layers:
        if name not in act_q:
            continue  # never called in forward (e.g. used through a functional path): not measurable
        s, n = signal[name], noise[name]
        sqnr = math.inf if n == 0 else (10.0 * math.log10(s / n) if s > 0 else -math.inf)
        ranking.append({"layer": name, "type": type(module).__name__, "sqnr_db": round(sqnr, 3) if math.isfinite(sqnr)
                        else sqnr, "params": int(sum(p.numel() for p in module.parameters(recurse=False))),
                        "order": order.get(name, -1), "weight_shape": list(module.weight.shape),
                        "input_range": [round(v, 6) for v in stats[name].compute(method, percentile=percentile)]})
    ranking.sort(key=lambda r: (r["sqnr_db"], r["layer"]))
    return ranking
