"""Parity after export: the artifact, run in its runtime, must give PyTorch's outputs on real inputs."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

#: Default tolerance for fp32 artifacts, relative to the largest reference output magnitude (floor 1).
FP32_RTOL = 1e-3


def torch_callable(model: Any) -> Callable[..., Any]:
    """A callable running the PyTorch reference of a module / ExportedProgram / GraphModule."""
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        return model.module()
    return model


def reference_outputs(fn: Callable[..., Any], inputs: Sequence[Any]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = fn(*[torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x for x in inputs])
    flat = out if isinstance(out, (list, tuple)) else [out]
    return [o.detach().cpu().numpy() if hasattr(o, "detach") else np.asarray(o) for o in flat]


def variants(example_inputs: tuple, count: int, seed: int = 0) -> list[tuple]:
    """``count`` random inputs shaped and ranged like ``example_inputs`` (floats uniform in the
    example's range, integers in its range): more than one point of comparison without user data."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        sample = []
        for x in example_inputs:
            if x.dtype.is_floating_point:
                lo, hi = float(x.min()), float(x.max())
                if hi <= lo:
                    lo, hi = lo - 1.0, lo + 1.0
                sample.append((torch.rand(x.shape, generator=gen) * (hi - lo) + lo).to(x.dtype))
            elif x.dtype == torch.bool:
                sample.append(torch.randint(0, 2, x.shape, generator=gen).bool())
            else:
                lo, hi = int(x.min()), int(x.max())
                sample.append(torch.randint(lo, max(hi, lo) + 1, x.shape, generator=gen, dtype=x.dtype))
        out.append(tuple(sample))
    return out


def compare(reference: list[list[np.ndarray]], actual: list[list[np.ndarray]]) -> dict[str, Any]:
    """Max abs error over all outputs and samples; top-1 agreement of the first output's last axis."""
    max_err, max_ref = 0.0, 0.0
    agree, total = 0, 0
    for ref_outs, act_outs in zip(reference, actual):
        if len(ref_outs) != len(act_outs):
            raise ValueError(f"output count differs: reference {len(ref_outs)}, artifact {len(act_outs)}")
        for r, a in zip(ref_outs, act_outs):
            r = np.asarray(r, dtype=np.float64)
            a = np.asarray(a, dtype=np.float64)
            if r.size != a.size:
                raise ValueError(f"output shape differs: reference {list(r.shape)}, artifact {list(a.shape)}")
            a = a.reshape(r.shape)
            if r.size:
                max_err = max(max_err, float(np.max(np.abs(r - a))))
                max_ref = max(max_ref, float(np.max(np.abs(r))))
        r0, a0 = np.asarray(ref_outs[0]), np.asarray(act_outs[0]).reshape(np.shape(ref_outs[0]))
        if r0.ndim >= 1 and r0.shape[-1] > 1:
            agree += int(np.sum(r0.argmax(-1) == a0.argmax(-1)))
            total += int(np.prod(r0.shape[:-1]))
    return {"max_abs_error": max_err, "max_abs_reference": max_ref,
            "top1_agreement": (agree / total) if total else None, "n": len(reference)}


def default_tolerance(max_abs_reference: float) -> float:
    return FP32_RTOL * max(1.0, max_abs_reference)
