"""Importance criteria: how channels, neurons and heads are ranked before the least important are removed.

Every criterion scores a whole dependency *group* (a conv's output channels together with the batch-norm,
the next layer's input channels and anything tied to them by residual adds), so the ranking reflects the
cost of removing a channel everywhere it lives.

    >>> imp = make_importance("l1")                 # doctest: +SKIP
    >>> CRITERIA.get("taylor").needs_gradients      # doctest: +SKIP
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edge_kd.registry import Registry


@dataclass(frozen=True)
class Criterion:
    """A named importance criterion. ``needs_gradients``: the model must have run backward on a loss first."""

    name: str
    description: str
    factory: Callable[[], Any]
    needs_gradients: bool = False
    needs_batchnorm: bool = False


CRITERIA: Registry = Registry("pruning criterion")


def _register(criterion: Criterion) -> None:
    CRITERIA.register(criterion.name)(criterion)


def _l1() -> Any:
    import torch_pruning as tp

    return tp.importance.GroupMagnitudeImportance(p=1, group_reduction="mean", normalizer="mean")


def _l2() -> Any:
    import torch_pruning as tp

    return tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean", normalizer="mean")


def _bn() -> Any:
    import torch_pruning as tp

    return tp.importance.BNScaleImportance(group_reduction="mean", normalizer="mean")


def _taylor() -> Any:
    import torch_pruning as tp

    return tp.importance.GroupTaylorImportance(group_reduction="mean", normalizer="mean")


_register(Criterion("l1", "group L1 norm of the weights", _l1))
_register(Criterion("l2", "group L2 norm of the weights", _l2))
_register(Criterion("bn", "absolute batch-norm scale (gamma) of each channel", _bn, needs_batchnorm=True))
_register(Criterion("taylor", "first-order Taylor |w * dL/dw| from a few labelled batches", _taylor,
                    needs_gradients=True))


def make_importance(name: str) -> Any:
    """The torch-pruning importance object for a criterion name (unknown -> InputError listing the known)."""
    return CRITERIA.get(name).factory()


def accumulate_gradients(model: Any, batches: Any, loss_fn: Callable[[Any, Any], Any] | None = None,
                         max_batches: int = 4) -> int:
    """Run forward/backward on up to ``max_batches`` (inputs, labels) pairs so Taylor importance can read
    ``weight.grad``. Returns the number of batches used. Gradients accumulate (zeroed first)."""
    import torch

    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()  # BN statistics must not move while we only score channels
    used = 0
    with torch.enable_grad():
        for inputs, labels in batches:
            inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
            loss = loss_fn(model(*inputs), labels)
            loss.backward()
            used += 1
            if used >= max_batches:
                break
    model.train(was_training)
    return used
