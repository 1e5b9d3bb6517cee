"""Latency-aware channel selection: how many channels each group loses, chosen by measured latency.

Uniform pruning removes the same fraction of every group, which is what MACs reward. Here every
dependency group (torch-pruning's DepGraph: a conv's outputs with its BN, the consumers' inputs,
residual partners) is shrunk ``round_to`` channels at a time, greedily, always where the latency
table (:mod:`edge_kd.prune.latency`) predicts the most milliseconds saved per share of the group's
importance lost (the least important channels of the group, by the configured criterion): the resource-aware greedy of
NetAdapt / HALP with a measured table instead of MACs. It stops when the predicted latency (or, for
comparisons at equal MACs, the MACs) reaches the target; no group loses more than ``max_layer_ratio``.
The chosen counts are then pruned by torch-pruning itself (per-group ratios), so coupled layers stay
consistent and channel counts are the multiples of ``round_to`` the runtime likes.

    >>> keep, info = select_channels(table, importance, target_ms=0.5 * table.base_ms, round_to=8)  # doctest: +SKIP
    >>> pruned, info = prune_latency_aware(model, example, config, table, target_ms=4.0)            # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from edge_kd.errors import InputError


@dataclass
class Selection:
    """What the greedy chose: kept channels per group and the predicted figures."""

    keep: dict[str, int]
    predicted_ms: float
    predicted_macs: float
    base_ms: float
    target_ms: float | None
    target_macs: float | None
    reached: bool
    moves: int
    removed: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_ms": round(self.predicted_ms, 4), "predicted_fraction": round(self.predicted_ms / self.base_ms, 4)
                if self.base_ms else None, "predicted_macs": int(self.predicted_macs),
                "target_ms": None if self.target_ms is None else round(self.target_ms, 4),
                "target_macs": None if self.target_macs is None else int(self.target_macs),
                "reached": self.reached, "moves": self.moves, "keep": dict(self.keep), "removed": dict(self.removed)}


def select_channels(table: Any, importance: Mapping[str, Sequence[float]], *, current: Mapping[str, int] | None = None,
                    target_ms: float | None = None, target_macs: float | None = None, round_to: int = 8,
                    max_layer_ratio: float = 0.9, step_multiple: Mapping[str, int] | None = None) -> Selection:
    """Greedy choice of kept channels per group (see the module doc).

    ``importance[group id]``: the importance of the group's CURRENT channels (any order; the least
    important are removed first). ``current``: the channels each group has now (default: the table's
    full counts). Exactly one of ``target_ms`` (predicted whole-model ms) and ``target_macs``.
    Groups without an importance entry are left alone."""
    if (target_ms is None) == (target_macs is None):
        raise ValueError("give exactly one of target_ms and target_macs")
    full = {g.id: g.channels for g in table.groups}
    keep = {gid: int((current or {}).get(gid, full[gid])) for gid in full}
    # A step's cost is the share of its group's total importance it removes: raw magnitudes are not
    # comparable between layers (fan-in, BatchNorm scale), and with them the greedy emptied groups whose
    # channels merely had small norms (EfficientNet-Lite0 on ORT at 2x fewer MACs: predicted 13.5 ms,
    # measured 1.48x, slower than uniform pruning's 1.58x; with shares: predicted 8.6 ms, measured 2.49x,
    # benchmarks/results/prune_latency.md). 8 channels of a 96-channel layer cost more than 8 of 1152.
    sorted_imp = {}
    for gid, imp in importance.items():
        if gid in full:
            values = sorted(float(v) for v in imp)
            total = sum(values)
            sorted_imp[gid] = [v / total for v in values] if total > 0 else values
    removed_now = {gid: 0 for gid in full}
    by_group: dict[str, list[Any]] = {gid: [] for gid in full}
    for layer in table.layers:
        for gid in {layer.in_group, layer.out_group}:
            if gid in by_group:
                by_group[gid].append(layer)

    def local_ms(gid: str, state: Mapping[str, int]) -> float:
        return sum(layer.ms(*table._ratios(layer, state)) for layer in by_group[gid])

    def floor(gid: str) -> int:
        unit = _unit(gid)
        return max(unit, int(math.ceil(full[gid] * (1.0 - max_layer_ratio) / unit)) * unit)

    def _unit(gid: str) -> int:
        mult = (step_multiple or {}).get(gid, 1)
        return round_to * mult // math.gcd(round_to, mult)

    def done() -> bool:
        if target_ms is not None:
            return table.predict(keep) <= target_ms
        return table.predict_macs(keep) <= target_macs

    moves = 0
    while not done():
        best, best_score = None, -math.inf
        for gid, imps in sorted_imp.items():
            unit = _unit(gid)
            # snap to a multiple of the unit first (a model pruned before may sit between multiples)
            step = keep[gid] - (keep[gid] - 1) // unit * unit if keep[gid] % unit else unit
            if keep[gid] - step < floor(gid) or not by_group[gid]:
                continue
            trial = dict(keep)
            trial[gid] -= step
            saved = table.scale * (local_ms(gid, keep) - local_ms(gid, trial))
            start = removed_now[gid]
            if start + step > len(imps):
                continue
            lost = sum(imps[start:start + step])
            score = saved / max(lost, 1e-12)
            if saved > 0 and score > best_score:
                best, best_score = (gid, step), score
        if best is None:
            break
        gid, step = best
        keep[gid] -= step
        removed_now[gid] += step
        moves += 1
    return Selection(keep=keep, predicted_ms=table.predict(keep), predicted_macs=table.predict_macs(keep),
                     base_ms=table.base_ms, target_ms=target_ms, target_macs=target_macs, reached=done(),
                     moves=moves, removed={g: full[g] - k for g, k in keep.items() if k < full[g]})


def group_importance(model: Any, example_inputs: tuple, config: Any, protected: Sequence[str], *,
                     grad_batches: Iterable | None = None, loss_fn: Any = None) -> tuple[
                         dict[str, list[float]], dict[str, int], dict[str, int]]:
    """(importance per group id, current channels per group id, channel-group multiple per group id)
    of ``model`` by ``config.criterion`` (gradients accumulated first for Taylor)."""
    from edge_kd.prune.criteria import CRITERIA, accumulate_gradients
    from edge_kd.prune.pruner import build_pruner

    pruner = build_pruner(model, example_inputs, config, 0.0, protected)
    if CRITERIA.get(config.criterion).needs_gradients:
        if grad_batches is None:
            raise InputError(f"criterion {config.criterion!r} needs labelled batches (pass --data)")
        accumulate_gradients(model, grad_batches, loss_fn, max_batches=config.taylor_batches)
    names = {m: n for n, m in model.named_modules()}
    importance: dict[str, list[float]] = {}
    channels: dict[str, int] = {}
    multiple: dict[str, int] = {}
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                              root_module_types=pruner.root_module_types):
            root = group[0].dep.target.module
            gid = names.get(root)
            imp = pruner.estimate_importance(group)
            if gid is None or imp is None:
                continue
            ch_groups = pruner._get_channel_groups(group)
            if ch_groups > 1:  # torch-pruning removes the same index in every channel group
                imp = imp.view(ch_groups, -1).mean(dim=0).repeat_interleave(ch_groups)
            importance[gid] = [float(v) for v in imp.flatten()]
            channels[gid] = int(pruner.DG.get_out_channels(root))
            multiple[gid] = int(ch_groups)
    model.zero_grad(set_to_none=True)
    return importance, channels, multiple


def prune_latency_aware(model: Any, example_inputs: tuple, config: Any, table: Any, *,
                        target_ms: float | None = None, target_macs: float | None = None,
                        grad_batches: Iterable | None = None, loss_fn: Any = None,
                        stats_inputs: Iterable[tuple] | None = None) -> tuple[Any, Any, Selection]:
    """Prune a copy of ``model`` with the channel counts :func:`select_channels` picks from ``table``.
    Returns (pruned model, ``PruneInfo``, ``Selection``). The input model is left untouched."""
    from edge_kd.prune.macs import count_macs, count_params
    from edge_kd.prune.pruner import PruneInfo, _check_bn, input_stats, prune_channels, resolve_protected

    _check_bn(model, config)
    protected = resolve_protected(model, example_inputs, config)
    work = copy.deepcopy(model).eval()
    grad_batches = list(grad_batches) if grad_batches is not None else None
    importance, channels, multiple = group_importance(work, example_inputs, config, protected,
                                                      grad_batches=grad_batches, loss_fn=loss_fn)
    unknown = [g for g in importance if g not in {x.id for x in table.groups}]
    if unknown:
        raise InputError(f"latency table has no group {unknown[0]!r} of this model: it was measured for another "
                         "model structure")
    selection = select_channels(table, importance, current=channels, target_ms=target_ms, target_macs=target_macs,
                                round_to=config.round_to, max_layer_ratio=config.max_layer_ratio,
                                step_multiple=multiple)
    full = {g.id: g.channels for g in table.groups}
    names = dict(work.named_modules())
    # torch-pruning keeps int(initial * (1 - ratio)) channels of the model it is given: ratios are
    # relative to the CURRENT channels, nudged by half a channel against float truncation
    ratios = {names[gid]: max(0.0, 1.0 - (selection.keep[gid] + 0.5) / channels[gid])
              for gid in channels if selection.keep.get(gid, channels[gid]) < channels[gid]}
    macs_before, params_before = count_macs(model, example_inputs).total, count_params(model)
    stats = input_stats(work, stats_inputs) if (stats_inputs is not None and config.compensate) else None
    if ratios:
        prune_channels(work, example_inputs, config, 0.0, protected=protected, grad_batches=grad_batches,
                       loss_fn=loss_fn, stats=stats, ratio_by_module=ratios)
    macs_after = count_macs(work, example_inputs).total
    info = PruneInfo(channel_ratio=round(1.0 - sum(selection.keep.values()) / max(sum(full.values()), 1), 4),
                     params_before=params_before, params_after=count_params(work), macs_before=macs_before,
                     macs_after=macs_after,
                     goal_value=target_ms if target_ms is not None else float(target_macs or 0),
                     goal_met=selection.reached, protected=list(protected))
    return work.eval(), info, selection
