"""Dependency-aware structured pruning (torch-pruning DepGraph) to a parameter or MACs goal.

Whole channels, neurons, embedding dimensions and attention heads are removed *physically*: the pruned
``nn.Module`` has smaller weight tensors, so every exported graph is smaller too. Coupled layers (a conv,
its batch-norm, the next layer's inputs, residual adds, depthwise convs) are pruned together, as one group.

The goal is a fraction of the original parameters or MACs to remove. torch-pruning takes a per-layer
*channel* ratio, so the channel ratio that meets the goal is found by bisection on copies of the model,
counting MACs on the ``torch.export`` graph (see ``edge_kd.prune.macs``).

    >>> cfg = PruneConfig(goal="macs", amount=0.5, criterion="l2", round_to=8)     # doctest: +SKIP
    >>> pruned, info = prune_to_goal(model, example_inputs, cfg)                    # doctest: +SKIP
    >>> info.macs_after / info.macs_before <= 0.5                                   # doctest: +SKIP
    True
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

from edge_kd.errors import InputError
from edge_kd.prune.criteria import CRITERIA, accumulate_gradients, make_importance
from edge_kd.prune.macs import count_macs, count_params

Goal = Literal["params", "macs", "latency"]
GOALS = ("params", "macs", "latency")
STEP_SIZES = ("even", "geometric")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune and how far.

    goal/amount: ``params`` or ``macs`` with ``amount`` the fraction to REMOVE, in (0, 1)
    (``macs`` 0.5 = 2x fewer MACs); ``latency`` with ``amount`` the p50 budget in milliseconds on the target
    (``latency_unit="ms"``) or the fraction of the unpruned model's latency to keep, in (0, 1)
    (``latency_unit="fraction"``: 0.5 = twice as fast).
    round_to: remaining channel counts are multiples of this (the int8 kernels' fast path).
    protect: module names (prefixes) that keep all their channels, besides the classifier and embeddings.
    protect_residual: keep the width of every residual stream (the channels an ``add`` joins across blocks):
    only the inside of blocks (the expansion channels of inverted residuals, the hidden width of MLPs)
    loses channels. Removing one residual channel removes it from every block of the stage at once. On the
    fine-tuned grocery EfficientNet-Lite0, one step to 0.82x MACs then BatchNorm re-estimation keeps 67.9%
    val top-1 (unpruned 69.6%) with ``taylor`` and the residual widths kept; 59.5% with ``taylor`` over every
    group; 57.8% / 53.4% with ``l2`` (benchmarks/prune_step_damage.py): the two go together.
    steps/step_sizes: a MACs/params goal is reached in ``steps`` rounds. ``even`` removes the same share of the
    ORIGINAL count each round (step k keeps ``1 - amount * k / steps``), so late rounds cut a growing share of
    what is left: toward 3x fewer MACs in 8 even steps, the last two remove ~20% of the remaining MACs each,
    and on the grocery EfficientNet-Lite0 they dropped val top-1 to 30% / 22% before recovery (prune.md).
    ``geometric`` removes the same share of what is LEFT each round (step k keeps ``(1 - amount) ** (k /
    steps)``): toward 3x in 12 geometric steps the same network never fell below 38% val top-1 before
    recovery, and ended at 71.6% test top-1 against 68.6% for 8 even steps (prune.md).
    max_layer_ratio: no layer loses more than this fraction of its channels (the "smallest allowed model").
    compensate: fold the mean contribution of removed channels into the next layer (needs real inputs).
    """

    goal: Goal = "macs"
    amount: float = 0.5
    latency_unit: Literal["ms", "fraction"] = "ms"
    criterion: str = "l2"
    round_to: int = 8
    protect: tuple[str, ...] = ()
    protect_residual: bool = False
    protect_classifier: bool = True
    protect_embeddings: bool = True
    prune_heads: bool = True
    global_pruning: bool = False
    steps: int = 1
    step_sizes: Literal["even", "geometric"] = "even"
    max_layer_ratio: float = 0.9
    tolerance: float = 0.02
    #: Batches whose gradients score channels for the ``taylor`` criterion (8 in the measurements quoted for
    #: ``protect_residual``; a few dozen images are a noisy estimate over many classes).
    taylor_batches: int = 8
    compensate: bool = True

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise InputError(f"pruning goal {self.goal!r} is unknown; known: {', '.join(GOALS)}")
        if self.goal in ("params", "macs") and not 0.0 < self.amount < 1.0:
            raise InputError(f"pruning ratio {self.amount:g} is outside (0, 1): it is the fraction of "
                             f"{self.goal} to remove, e.g. 0.5 for 2x fewer")
        if self.latency_unit not in ("ms", "fraction"):
            raise InputError(f"latency_unit {self.latency_unit!r} is unknown; known: ms, fraction")
        if self.goal == "latency" and self.latency_unit == "fraction" and not 0.0 < self.amount < 1.0:
            raise InputError(f"latency budget {self.amount:g} is outside (0, 1): it is the fraction of the "
                             "unpruned model's latency to keep, e.g. 0.5 for twice as fast")
        if self.goal == "latency" and not self.amount > 0:
            raise InputError(f"latency budget must be positive, got {self.amount:g} ms")
        CRITERIA.get(self.criterion)  # unknown criterion -> InputError listing the known ones
        if self.round_to < 1:
            raise InputError(f"round_to must be >= 1, got {self.round_to}")
        if self.steps < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        if self.step_sizes not in STEP_SIZES:
            raise InputError(f"step_sizes {self.step_sizes!r} is unknown; known: {', '.join(STEP_SIZES)}")
        if not 0.0 < self.max_layer_ratio < 1.0:
            raise InputError(f"max_layer_ratio must be in (0, 1), got {self.max_layer_ratio:g}")

    def step_target(self, k: int) -> float:
        """The fraction of the original params/MACs that step ``k`` (1..steps) keeps."""
        if self.step_sizes == "geometric":
            return (1.0 - self.amount) ** (k / self.steps)
        return 1.0 - self.amount * k / self.steps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["protect"] = list(self.protect)
        return d


@dataclass
class PruneInfo:
    """What one pruning call did (all counts measured on the model before and after)."""

    channel_ratio: float
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    goal_value: float
    goal_met: bool
    protected: list[str] = field(default_factory=list)
    trials: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- protection -------------------------------------------------------------------------------------
def find_classifier(model: Any, example_inputs: tuple) -> str | None:
    """Name of the last Conv/Linear executed in a forward pass: the layer whose outputs are the classes."""
    from edge_kd.prune.latency import layers_in_order

    layers = layers_in_order(model, example_inputs)
    return layers[-1].name if layers else None


def resolve_protected(model: Any, example_inputs: tuple, config: PruneConfig) -> list[str]:
    """Module names kept whole: the classifier and embeddings (by default) plus ``config.protect``.

    A protected name matches a module and everything under it. An unknown name -> InputError."""
    from torch import nn

    names = [n for n, _ in model.named_modules() if n]
    protected: list[str] = []
    for name in config.protect:
        if not any(n == name or n.startswith(name + ".") for n in names):
            sample = ", ".join(n for n in names[:8])
            raise InputError(f"--protect {name!r}: the model has no module of that name (modules: {sample}, ...)")
        protected.append(name)
    if config.protect_classifier:
        head = find_classifier(model, example_inputs)
        if head and head not in protected:
            protected.append(head)
    if config.protect_embeddings:
        protected += [n for n, m in model.named_modules() if isinstance(m, nn.Embedding) and n not in protected]
    return protected


def _modules_under(model: Any, names: Sequence[str]) -> list[Any]:
    return [m for n, m in model.named_modules() if n and any(n == p or n.startswith(p + ".") for p in names)]


# ---- pruner construction ----------------------------------------------------------------------------
_PRUNER_CLASS: Any = None


def _pruner_class() -> Any:
    """BasePruner with channel rounding to the NEAREST multiple, never below one multiple.

    torch-pruning 1.6.1 rounds the kept channels DOWN, so a 16-channel layer at ratio 0.9 and round_to 4
    keeps 0 channels and the group is silently skipped; a 32-channel layer at 0.3 drops to 16 instead of 24."""
    global _PRUNER_CLASS
    if _PRUNER_CLASS is None:
        import torch_pruning as tp

        class RoundingPruner(tp.pruner.BasePruner):
            def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
                keep = current_channels - n_pruned
                keep = int(round(keep / round_to)) * round_to
                keep = min(max(keep, round_to), current_channels)
                return max(current_channels - keep, 0)

        _PRUNER_CLASS = RoundingPruner
    return _PRUNER_CLASS


def build_pruner(model: Any, example_inputs: tuple, config: PruneConfig, channel_ratio: float,
                 protected: Sequence[str], ratio_by_module: dict[Any, float] | None = None) -> Any:
    """A torch-pruning BasePruner over ``model`` that removes ``channel_ratio`` of each group's channels
    (``ratio_by_module``: a ratio of its own for the group rooted at that module, e.g. chosen by the
    latency-aware selection of ``edge_kd.prune.select``).

    Raises InputError when torch-pruning cannot trace the model (naming the op) or when every prunable
    layer is protected."""
    import torch_pruning as tp
    from torch import nn

    ignored = _modules_under(model, protected)
    root_types = [tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, tp.ops.TORCH_LSTM]
    num_heads: dict[Any, int] = {}
    separate_qkv = False
    if not config.protect_embeddings:
        root_types.append(nn.Embedding)
    for m in model.modules():
        if m in ignored:
            continue
        if isinstance(m, nn.MultiheadAttention):
            # nn.MultiheadAttention ties num_heads * head_dim to the residual width, so torch-pruning can
            # only shrink head_dim (evenly across heads, hence the mapping); it cannot drop whole heads.
            num_heads[m] = m.num_heads
        elif all(isinstance(getattr(m, a, None), nn.Linear) for a in ("query", "key", "value")) and \
                isinstance(getattr(m, "num_attention_heads", None), int):
            # BERT-style attention with separate q/k/v projections: whole heads can be removed.
            for a in ("query", "key", "value"):
                num_heads[getattr(m, a)] = m.num_attention_heads
            separate_qkv = True
    drop_heads = separate_qkv and config.prune_heads
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = _pruner_class()(
                model, tuple(example_inputs) if len(example_inputs) > 1 else example_inputs[0],
                importance=make_importance(config.criterion),
                global_pruning=config.global_pruning,
                pruning_ratio=channel_ratio,
                pruning_ratio_dict=ratio_by_module or None,
                max_pruning_ratio=config.max_layer_ratio,
                ignored_layers=ignored,
                round_to=config.round_to if config.round_to > 1 else None,
                num_heads=num_heads,
                prune_num_heads=drop_heads,
                prune_head_dims=not drop_heads,
                head_pruning_ratio=channel_ratio if drop_heads else 0.0,
                root_module_types=root_types,
            )
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - surface the failing op in one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise InputError(f"torch-pruning cannot trace {type(model).__name__}: {type(exc).__name__}: "
                         f"{first[:300]}") from None
    if config.protect_residual:
        pruner.ignored_layers.extend(residual_width_layers(pruner))
    groups = list(pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                           root_module_types=pruner.root_module_types))
    if not groups:
        raise InputError(f"nothing to prune in {type(model).__name__}: every prunable layer is protected "
                         f"(protected: {', '.join(protected) or 'none'}"
                         f"{'; residual widths kept' if config.protect_residual else ''})")
    return pruner


def residual_width_layers(pruner: Any) -> list[Any]:
    """The layers whose output channels meet an elementwise ``add``/``sub`` of the graph (a residual
    connection): ignoring them leaves every such group unpruned, since torch-pruning skips a group in
    which any layer losing output channels is ignored."""
    found: list[Any] = []
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                          root_module_types=pruner.root_module_types):
        joins = any(str(getattr(dep.target.module, "_grad_fn", "")).startswith(("AddBackward", "SubBackward"))
                    for dep, _ in group)
        if joins:
            found.extend(dep.target.module for dep, _ in group
                         if pruner.DG.is_out_channel_pruning_fn(dep.handler)
                         and isinstance(dep.target.module, tuple(pruner.root_module_types)))
    return found


@dataclass
class InputStats:
    """Mean input activation per channel of every Conv2d (groups=1) / Linear, keyed by module name,
    and the BatchNorm that directly follows each bias-free conv (for bias compensation)."""

    means: dict[str, Any]
    bn_after: dict[str, str]


def input_stats(model: Any, batches: Iterable[tuple]) -> InputStats:
    """Record per-channel input means on real inputs (each item: a tuple of model inputs)."""
    import torch
    from torch import nn

    names = {m: n for n, m in model.named_modules()}
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    out_ids: dict[int, str] = {}
    bn_after: dict[str, str] = {}

    def hook(mod, inputs, output):
        x = inputs[0].detach()
        name = names[mod]
        if isinstance(mod, nn.BatchNorm2d):
            producer = out_ids.get(id(inputs[0]))
            if producer is not None:
                bn_after[producer] = name
            return
        reduce = (0, 2, 3) if isinstance(mod, nn.Conv2d) else tuple(range(x.dim() - 1))
        sums[name] = sums.get(name, 0) + x.float().mean(dim=reduce)
        counts[name] = counts.get(name, 0) + 1
        out_ids[id(output)] = name

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if (isinstance(m, nn.Conv2d) and m.groups == 1) or isinstance(m, (nn.Linear, nn.BatchNorm2d))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for inputs in batches:
                model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return InputStats({k: v / counts[k] for k, v in sums.items()}, bn_after)


def _compensate(model: Any, group: Any, stats: InputStats) -> list[tuple[Any, Any, Any]]:
    """For every layer in ``group`` that loses INPUT channels, the constant its output loses on average:
    ``W[:, removed] @ mean(removed inputs)`` (summed over the kernel). Computed before the group is pruned."""
    import torch_pruning as tp
    from torch import nn

    names = {m: n for n, m in model.named_modules()}
    todo = []
    for dep, idxs in group:
        layer = dep.target.module
        if dep.handler not in (tp.prune_conv_in_channels, tp.prune_linear_in_channels):
            continue
        name = names.get(layer)
        mean = stats.means.get(name)
        if mean is None or (isinstance(layer, nn.Conv2d) and layer.groups != 1) or mean.numel() != layer.weight.shape[1]:
            continue
        w = layer.weight.detach()
        w = w.sum(dim=(2, 3)) if w.dim() == 4 else w
        delta = w[:, list(idxs)] @ mean[list(idxs)].to(w.dtype)
        todo.append((layer, name, delta))
    return todo


def _apply_compensation(model: Any, todo: list, stats: InputStats) -> None:
    import torch

    with torch.no_grad():
        for layer, name, delta in todo:
            if getattr(layer, "bias", None) is not None:
                layer.bias.add_(delta.to(layer.bias.dtype))
            elif name in stats.bn_after:
                bn = model.get_submodule(stats.bn_after[name])
                if bn.running_mean is not None and bn.running_mean.shape == delta.shape:
                    bn.running_mean.sub_(delta.to(bn.running_mean.dtype))


def prune_channels(model: Any, example_inputs: tuple, config: PruneConfig, channel_ratio: float, *,
                   protected: Sequence[str], grad_batches: Iterable | None = None,
                   loss_fn: Callable | None = None, stats: InputStats | None = None,
                   ratio_by_module: dict[Any, float] | None = None) -> Any:
    """Prune ``model`` IN PLACE by ``channel_ratio`` per group (``ratio_by_module``: per-group ratios
    keyed by the group's root module) and return it.

    With ``stats`` (see :func:`input_stats`), the average contribution of every removed input channel
    is folded into the consuming layer's bias, or into the running mean of the BatchNorm after it, so
    the layer's output keeps its mean (removing channels with a large constant activation otherwise
    shifts every following layer)."""
    pruner = build_pruner(model, example_inputs, config, channel_ratio, protected, ratio_by_module)
    if CRITERIA.get(config.criterion).needs_gradients:
        if grad_batches is None:
            raise InputError(f"criterion {config.criterion!r} needs labelled batches (pass --data)")
        accumulate_gradients(model, grad_batches, loss_fn, max_batches=config.taylor_batches)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if stats is None:
            pruner.step()
        else:
            for group in pruner.step(interactive=True):
                todo = _compensate(model, group, stats)
                group.prune()
                _apply_compensation(model, todo, stats)
        if not config.protect_embeddings and channel_ratio > 0:
            _prune_embedding_dims(model, pruner, config, channel_ratio)
    model.zero_grad(set_to_none=True)
    return model


def _prune_embedding_dims(model: Any, pruner: Any, config: PruneConfig, channel_ratio: float) -> None:
    """Shrink the model width carried by each unprotected embedding (the residual stream of a transformer).

    BasePruner skips these groups when they run through nn.MultiheadAttention, so they are pruned here
    through the same dependency graph; the kept width is a multiple of round_to and of the head count."""
    import math

    import torch
    import torch_pruning as tp
    from torch import nn

    heads = [m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    step = math.lcm(config.round_to, *heads) if heads else config.round_to
    for emb in [m for m in model.modules() if isinstance(m, nn.Embedding) and m not in pruner.ignored_layers]:
        dim = emb.embedding_dim
        keep = max(step, int(round(dim * (1 - channel_ratio) / step)) * step)
        keep = max(keep, int(math.ceil(dim * (1 - config.max_layer_ratio) / step)) * step)
        if keep >= dim:
            continue
        group = pruner.DG.get_pruning_group(emb, tp.prune_embedding_out_channels, list(range(dim)))
        imp = pruner.estimate_importance(group)
        order = torch.argsort(imp) if imp is not None else torch.arange(dim)
        idxs = sorted(int(i) for i in order[: dim - keep])
        pruner.DG.get_pruning_group(emb, tp.prune_embedding_out_channels, idxs).prune()


def _check_bn(model: Any, config: PruneConfig) -> None:
    from torch import nn

    if CRITERIA.get(config.criterion).needs_batchnorm and not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise InputError(f"criterion 'bn' ranks channels by batch-norm scale but {type(model).__name__} has "
                         "no BatchNorm layer; use l1, l2 or taylor")


def measure(model: Any, example_inputs: tuple, metric: str) -> int:
    """The goal's metric: parameter count or MACs (graph-counted)."""
    return count_params(model) if metric == "params" else count_macs(model, example_inputs).total


def prune_to_fraction(model: Any, example_inputs: tuple, config: PruneConfig, *, metric: str,
                      target_value: float, protected: Sequence[str], grad_batches: Iterable | None = None,
                      loss_fn: Callable | None = None, max_trials: int = 9,
                      reference_value: float | None = None, stats: InputStats | None = None) -> tuple[Any, float, int, list[dict[str, float]]]:
    """Find by bisection the channel ratio whose pruned copy has ``metric <= target_value`` and is as
    close to it as possible. Returns (pruned copy, channel ratio, metric value, trials). When even
    ``max_layer_ratio`` misses the target, the most pruned copy is returned (best effort)."""
    reference_value = reference_value or measure(model, example_inputs, metric)
    grad_batches = list(grad_batches) if grad_batches is not None else None
    trials: list[dict[str, float]] = []

    def attempt(ratio: float) -> tuple[Any, int]:
        candidate = copy.deepcopy(model)
        prune_channels(candidate, example_inputs, config, ratio, protected=protected,
                       grad_batches=grad_batches, loss_fn=loss_fn, stats=stats)
        value = measure(candidate, example_inputs, metric)
        trials.append({"channel_ratio": round(ratio, 4), metric: value})
        return candidate, value

    lo, hi = 0.0, config.max_layer_ratio
    best_model, best_value = attempt(hi)
    best_ratio = hi
    if best_value > target_value:
        return best_model, hi, best_value, trials
    tol = config.tolerance * reference_value
    for _ in range(max_trials - 1):
        if best_value >= target_value - tol:
            break
        mid = (lo + hi) / 2
        candidate, value = attempt(mid)
        if value <= target_value:
            hi, best_model, best_value, best_ratio = mid, candidate, value, mid
        else:
            lo = mid
        if hi - lo < 1e-3:
            break
    return best_model, best_ratio, best_value, trials


def prune_to_goal(model: Any, example_inputs: tuple, config: PruneConfig, *, grad_batches: Iterable | None = None,
                  loss_fn: Callable | None = None, fraction: float | None = None,
                  reference: dict[str, int] | None = None,
                  stats_inputs: Iterable[tuple] | None = None) -> tuple[Any, PruneInfo]:
    """Prune a copy of ``model`` so that it has ``fraction`` (default ``1 - config.amount``) of the
    reference parameters/MACs (default: the model's own). The input model is left untouched.

    ``stats_inputs`` (real input tuples, a few batches) enable bias compensation of removed channels.

    >>> pruned, info = prune_to_goal(tiny_cnn(), (torch.rand(1, 3, 32, 32),),
    ...                              PruneConfig(goal="macs", amount=0.5, round_to=1))   # doctest: +SKIP
    """
    if config.goal == "latency" and fraction is None:
        raise InputError("a latency goal is met by edge_kd.prune.schedule.run_schedule (it measures the "
                         "runtime between steps); prune_to_goal takes a params or macs goal")
    metric = "macs" if config.goal == "latency" else config.goal
    _check_bn(model, config)
    protected = resolve_protected(model, example_inputs, config)
    # Fail fast on an untraceable model or one with nothing left to prune, before any search.
    build_pruner(copy.deepcopy(model), example_inputs, config, 0.0, protected)
    params_before = count_params(model)
    macs_before = count_macs(model, example_inputs).total
    reference = reference or {"params": params_before, "macs": macs_before}
    keep = (1.0 - config.amount) if fraction is None else fraction
    target_value = keep * reference[metric]
    stats = input_stats(model, stats_inputs) if (stats_inputs is not None and config.compensate) else None
    pruned, ratio, value, trials = prune_to_fraction(
        model, example_inputs, config, metric=metric, target_value=target_value, protected=protected,
        grad_batches=grad_batches, loss_fn=loss_fn, reference_value=reference[metric], stats=stats)
    info = PruneInfo(channel_ratio=ratio, params_before=params_before, params_after=count_params(pruned),
                     macs_before=macs_before, macs_after=count_macs(pruned, example_inputs).total,
                     goal_value=target_value, goal_met=value <= target_value, protected=list(protected),
                     trials=trials)
    return pruned.eval(), info
