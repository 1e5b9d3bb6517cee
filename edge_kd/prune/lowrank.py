"""Low-rank (SVD) factorization of ``nn.Linear`` and 1x1 ``nn.Conv2d`` into two thin layers.

``W (out x in) ~= (U_r sqrt(S_r)) (sqrt(S_r) V_r^T)`` becomes ``Linear(in, r, bias=False)`` then
``Linear(r, out)``. Fewer MACs on paper is not the criterion: a factorization is KEPT only where the
latency measured in the target runtime improves and accuracy holds (:func:`lowrank_search`), and every
decision is recorded with its numbers.

    >>> layer = factorize(nn.Linear(256, 256), rank=32)                     # doctest: +SKIP
    >>> model, rewrites, decisions = lowrank_search(model, inputs, latency_fn=p50)   # doctest: +SKIP
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from edge_kd.errors import InputError


@dataclass
class LowRankDecision:
    """One measured decision: factorize ``module`` at ``rank`` or not, and why."""

    module: str
    rank: int
    full_rank: int
    energy: float
    macs_before: int
    macs_after: int
    latency_before_ms: float | None
    latency_after_ms: float | None
    metric_before: float | None
    metric_after: float | None
    kept: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_pointwise(module: Any) -> bool:
    from torch import nn

    return (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1
            and module.padding in ((0, 0), "valid") and module.dilation == (1, 1))


def _matrix(module: Any) -> Any:
    w = module.weight.detach()
    return w.reshape(w.shape[0], w.shape[1]) if w.dim() == 4 else w


def rank_for_energy(module: Any, energy: float, round_to: int = 1) -> int:
    """Smallest rank whose singular values keep ``energy`` of the squared Frobenius norm, rounded up to
    a multiple of ``round_to`` (and never above full rank)."""
    import torch

    if not 0.0 < energy <= 1.0:
        raise InputError(f"retained energy must be in (0, 1], got {energy:g}")
    s = torch.linalg.svdvals(_matrix(module).float())
    cum = torch.cumsum(s ** 2, 0) / torch.sum(s ** 2).clamp_min(1e-12)
    rank = int(torch.searchsorted(cum, torch.tensor(energy - 1e-9)).item()) + 1
    rank = -(-rank // round_to) * round_to
    return min(rank, len(s))


def rewrite_record(name: str, module: Any, rank: int) -> dict[str, Any]:
    """The JSON record that rebuilds the factorized form of ``module`` (see serialize.build_pruned)."""
    if _is_pointwise(module):
        return {"module": name, "kind": "conv1x1", "in": module.in_channels, "out": module.out_channels,
                "rank": rank, "bias": module.bias is not None, "stride": list(module.stride)}
    from torch import nn

    if isinstance(module, nn.Linear):
        return {"module": name, "kind": "linear", "in": module.in_features, "out": module.out_features,
                "rank": rank, "bias": module.bias is not None}
    raise InputError(f"{name}: only nn.Linear and 1x1 nn.Conv2d can be factorized, got {type(module).__name__}")


def _empty_factorized(record: dict[str, Any]) -> Any:
    from torch import nn

    r = record["rank"]
    if record["kind"] == "linear":
        return nn.Sequential(nn.Linear(record["in"], r, bias=False), nn.Linear(r, record["out"], bias=record["bias"]))
    if record["kind"] == "conv1x1":
        return nn.Sequential(nn.Conv2d(record["in"], r, 1, stride=tuple(record["stride"]), bias=False),
                             nn.Conv2d(r, record["out"], 1, bias=record["bias"]))
    raise InputError(f"unknown low-rank rewrite kind {record['kind']!r}")


def factorize(module: Any, rank: int) -> Any:
    """Two thin layers whose product is the best rank-``rank`` approximation of ``module``'s weight."""
    import torch

    record = rewrite_record("", module, rank)
    w = _matrix(module).float()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = torch.sqrt(s[:rank])
    first = (root[:, None] * vh[:rank])          # (r, in)
    second = (u[:, :rank] * root[None, :])       # (out, r)
    new = _empty_factorized(record)
    with torch.no_grad():
        new[0].weight.copy_(first.reshape(new[0].weight.shape))
        new[1].weight.copy_(second.reshape(new[1].weight.shape))
        if record["bias"]:
            new[1].bias.copy_(module.bias.detach())
    return new.to(module.weight.dtype).train(module.training)


def apply_rewrites(model: Any, rewrites: Sequence[dict[str, Any]]) -> Any:
    """Replace each recorded module by an (uninitialised) factorized pair; weights are loaded after."""
    for record in rewrites:
        try:
            model.get_submodule(record["module"])
        except AttributeError:
            raise InputError(f"low-rank rewrite: the model has no module {record['module']!r}") from None
        model.set_submodule(record["module"], _empty_factorized(record))
    return model


def candidates(model: Any, *, protect: Sequence[str] = (), energy: float = 0.9, round_to: int = 1) -> list[tuple[str, int]]:
    """(module name, rank) of every Linear / 1x1 conv whose factorization at ``energy`` has fewer MACs."""
    from torch import nn

    out = []
    for name, m in model.named_modules():
        if not name or any(name == p or name.startswith(p + ".") for p in protect):
            continue
        if not (isinstance(m, nn.Linear) or _is_pointwise(m)):
            continue
        if isinstance(m, nn.modules.linear.NonDynamicallyQuantizableLinear):
            continue  # owned by nn.MultiheadAttention, which calls its weight directly
        w = _matrix(m)
        rank = rank_for_energy(m, energy, round_to)
        if rank * (w.shape[0] + w.shape[1]) < w.shape[0] * w.shape[1]:
            out.append((name, rank))
    return out


def lowrank_search(model: Any, example_inputs: tuple, *, latency_fn: Callable[[Any], float],
                   metric_fn: Callable[[Any], float] | None = None, max_metric_drop: float = 0.01,
                   energy: float = 0.9, round_to: int = 1, protect: Sequence[str] = (),
                   min_gain: float = 0.03, max_layers: int | None = None,
                   group_by: str = "layer") -> tuple[Any, list[dict[str, Any]], list[LowRankDecision]]:
    """Greedy, measured factorization. For each candidate (largest MACs first), or each group of
    candidates with the same shape (``group_by="shape"``): factorize a copy, measure latency with
    ``latency_fn`` (p50 ms in the target runtime) and the task metric with ``metric_fn``; keep it only
    when latency drops by more than ``min_gain`` (relative, above noise) and the metric drops by at most
    ``max_metric_drop``. Returns (model, rewrite records, decisions). The input model is not modified.

    >>> model2, rewrites, decisions = lowrank_search(model, inputs, latency_fn=lambda m: p50(m))  # doctest: +SKIP
    """
    from edge_kd.prune.macs import count_macs

    if group_by not in ("layer", "shape"):
        raise InputError(f"group_by must be 'layer' or 'shape', got {group_by!r}")
    current = copy.deepcopy(model).eval()
    cands = candidates(current, protect=protect, energy=energy, round_to=round_to)
    modules = dict(current.named_modules())
    cands.sort(key=lambda c: -modules[c[0]].weight.numel())
    groups: list[list[tuple[str, int]]] = []
    if group_by == "shape":
        by_shape: dict[tuple, list[tuple[str, int]]] = {}
        for name, rank in cands:
            by_shape.setdefault((tuple(modules[name].weight.shape), rank), []).append((name, rank))
        groups = list(by_shape.values())
    else:
        groups = [[c] for c in cands]
    if max_layers is not None:
        groups = groups[:max_layers]
    macs = count_macs(current, example_inputs).total
    latency = latency_fn(current)
    metric = metric_fn(current) if metric_fn else None
    rewrites: list[dict[str, Any]] = []
    decisions: list[LowRankDecision] = []
    for group in groups:
        trial = copy.deepcopy(current)
        trial_modules = dict(trial.named_modules())
        records = []
        for name, rank in group:
            records.append(rewrite_record(name, trial_modules[name], rank))
            trial.set_submodule(name, factorize(trial_modules[name], rank))
        trial_macs = count_macs(trial, example_inputs).total
        trial_latency = latency_fn(trial)
        trial_metric = metric_fn(trial) if metric_fn else None
        faster = trial_latency < latency * (1.0 - min_gain)
        holds = metric is None or trial_metric is None or trial_metric >= metric - max_metric_drop
        kept = faster and holds
        reason = ("kept: faster and accuracy holds" if kept else
                  f"rejected: latency {trial_latency:.3f} ms vs {latency:.3f} ms (needs {min_gain:.0%} gain)"
                  if not faster else f"rejected: metric {trial_metric:.4f} < {metric:.4f} - {max_metric_drop:g}")
        first_name, first_rank = group[0]
        full = min(_matrix(modules[first_name]).shape)
        label = first_name if len(group) == 1 else f"{first_name} (+{len(group) - 1} same-shape)"
        decisions.append(LowRankDecision(label, first_rank, full, energy, macs, trial_macs, latency, trial_latency,
                                         metric, trial_metric, kept, reason))
        if kept:
            current, macs, latency, metric = trial, trial_macs, trial_latency, trial_metric
            rewrites.extend(records)
    return current, rewrites, decisions
