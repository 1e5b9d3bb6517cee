"""Next-purchase student: a recency-weighted bag of item embeddings + MLP, one output per catalog item
(``edge_kd.models.recsys.ItemBagStudent``). The item table and the output layer are most of the bytes,
so ``dim`` is the size knob.

    family = make_family("item_bag", num_items=4053, history=50)
    model = family.build(64)
"""
from __future__ import annotations

from typing import Any

from edge_kd.errors import InputError
from edge_kd.models.spec import InputSpec
from edge_kd.models.students.base import FAMILIES, StudentFamily, knob_values


def _inputs(value: Any, kwargs: dict[str, Any]) -> tuple[InputSpec, ...]:
    return (InputSpec("history", (1, int(kwargs["history"])), "int64", 0, int(kwargs["num_items"]) + 1),)


@FAMILIES.register("item_bag")
def item_bag_family(num_items: int, history: int, *, knob: str = "dim", low: int = 16, high: int = 256,
                    step: int = 8, dropout: float = 0.1, tied: bool = False) -> StudentFamily:
    """Knob ``dim`` (the embedding and hidden width), ``low``..``high`` by ``step``; ``tied`` scores items
    with their own embedding rows (``ItemBagStudent``)."""
    if knob != "dim":
        raise InputError(f"item_bag student: the knob is 'dim', got {knob!r}")
    return StudentFamily("item_bag", "edge_kd.models.recsys:item_bag_student", "dim", knob_values(low, high, step),
                         {"num_items": int(num_items), "history": int(history), "dropout": float(dropout),
                          "tied": bool(tied)},
                         input_fn=_inputs)
