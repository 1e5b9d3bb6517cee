"""Tabular / CTR student: dense features plus hashed categorical embeddings, then an MLP.

Categorical values are hashed by the data pipeline into ``cat_buckets`` rows of one shared table
(one id per categorical field, int64); dense features are floats already scaled. The size knob is
the hidden width (default) or the embedding dim. With ``num_cat_fields=0`` the model takes only the
dense tensor.

    model = tabular_student(num_dense=17, num_cat_fields=3, cat_buckets=1024, embed_dim=8, hidden=64)
    logit = model(torch.zeros(1, 17), torch.zeros(1, 3, dtype=torch.int64))   # [1, 1]
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edge_kd.models.spec import InputSpec
from edge_kd.models.students.base import FAMILIES, StudentFamily, knob_values


class TabularStudent(nn.Module):
    def __init__(self, num_dense: int, num_cat_fields: int = 0, cat_buckets: int = 1024, embed_dim: int = 8,
                 hidden: int = 64, layers: int = 2, num_outputs: int = 1, dropout: float = 0.1,
                 cardinalities: tuple[int, ...] | None = None):
        super().__init__()
        self.num_cat_fields = int(num_cat_fields)
        if cardinalities:
            # Per-field codes (0..card-1) share one table: the offsets live in the model, so the app
            # passes each field's own code.
            self.num_cat_fields = len(cardinalities)
            cat_buckets = int(sum(cardinalities))
            offsets = [0]
            for c in list(cardinalities)[:-1]:
                offsets.append(offsets[-1] + int(c))
            self.register_buffer("cat_offsets", torch.tensor([offsets], dtype=torch.int64), persistent=False)
        else:
            self.cat_offsets = None
        self.embed = nn.Embedding(int(cat_buckets), int(embed_dim)) if self.num_cat_fields else None
        width = int(num_dense) + self.num_cat_fields * int(embed_dim)
        mlp: list[nn.Module] = []
        for _ in range(int(layers)):
            mlp += [nn.Linear(width, int(hidden)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(hidden)
        mlp.append(nn.Linear(width, int(num_outputs)))
        self.mlp = nn.Sequential(*mlp)

    def forward(self, dense: torch.Tensor, cats: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if cats is None:
                raise ValueError("this student takes categorical ids as its second input")
            if self.cat_offsets is not None:
                cats = cats + self.cat_offsets
            dense = torch.cat([dense, self.embed(cats).flatten(1)], dim=1)
        return self.mlp(dense)


def tabular_student(num_dense: int, num_cat_fields: int = 0, cat_buckets: int = 1024, embed_dim: int = 8,
                    hidden: int = 64, layers: int = 2, num_outputs: int = 1, dropout: float = 0.1,
                    cardinalities: list[int] | None = None) -> TabularStudent:
    """Factory used by ModelSpec (``edge_kd.models.students.tabular:tabular_student``)."""
    return TabularStudent(num_dense, num_cat_fields, cat_buckets, embed_dim, hidden, layers, num_outputs, dropout,
                          tuple(cardinalities) if cardinalities else None)


def _tabular_inputs(value: Any, kwargs: dict[str, Any]) -> tuple[InputSpec, ...]:
    specs = [InputSpec("dense", (1, int(kwargs["num_dense"])), "float32", -1.0, 1.0)]
    cards = kwargs.get("cardinalities")
    if cards:
        specs.append(InputSpec("cats", (1, len(cards)), "int64", 0, min(int(c) for c in cards)))
    elif int(kwargs.get("num_cat_fields", 0)):
        specs.append(InputSpec("cats", (1, int(kwargs["num_cat_fields"])), "int64", 0,
                               int(kwargs.get("cat_buckets", 1024))))
    return tuple(specs)


@FAMILIES.register("tabular_mlp")
def tabular_family(num_dense: int, *, num_outputs: int = 1, knob: str = "hidden", low: int | None = None,
                   high: int | None = None, step: int | None = None, num_cat_fields: int = 0, cat_buckets: int = 1024,
                   embed_dim: int = 8, hidden: int = 64, layers: int = 2, dropout: float = 0.1,
                   cardinalities: list[int] | None = None) -> StudentFamily:
    """MLP with hashed categorical embeddings; knob ``hidden`` (8..2048 by 8) or ``embed_dim`` (2..128 by 2)."""
    from edge_kd.errors import InputError

    if knob == "hidden":
        low, high, step = low or 8, high or 2048, step or 8
    elif knob == "embed_dim":
        low, high, step = low or 2, high or 128, step or 2
    else:
        raise InputError(f"tabular_mlp student: knob must be 'hidden' or 'embed_dim', got {knob!r}")
    kwargs = {"num_dense": num_dense, "num_cat_fields": num_cat_fields, "cat_buckets": cat_buckets,
              "embed_dim": embed_dim, "hidden": hidden, "layers": layers, "num_outputs": num_outputs,
              "dropout": dropout}
    if cardinalities:
        kwargs["cardinalities"] = [int(c) for c in cardinalities]
    kwargs.pop(knob)
    return StudentFamily("tabular_mlp", "edge_kd.models.students.tabular:tabular_student", knob,
                         knob_values(low, high, step), kwargs, input_fn=_tabular_inputs)
