"""Tabular / CTR student: dense features plus hashed categorical embeddings, then an MLP.

Categorical values are hashed by the data pipeline into ``cat_buckets`` rows of one shared table
(one id per categorical field, int64); dense features are floats already scaled. The size knob is
the hidden width (default) or the embedding dim. With ``num_cat_fields=0`` the model takes only the
dense tensor.

    model = tabular_student(num_dense=17, num_cat_fields=3, cat_buckets=1024, embed_dim=8, hidden=64)
    logit = model(torch.zeros(1, 17), torch.zeros(1, 3, dtype=torch.int64))   # [1, 1]

With per-field ``cardinalities`` each field has its own table (``embeds.<i>``) and is looked up with
its own code: adding per-field offsets to the ids (one shared table) is integer arithmetic that
XNNPACK cannot run, so it would stay on ExecuTorch's portable kernels. The lookups themselves are
allowed outside the delegate (see edge_kd.runtimes.ops). Weights saved with the former shared table
(``embed.weight``, the fields' rows one after another) load into the per-field tables.
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
        self.cardinalities = tuple(int(c) for c in cardinalities) if cardinalities else ()
        if self.cardinalities:
            # Per-field codes (0..card-1), one table per field: the app passes each field's own code.
            self.num_cat_fields = len(self.cardinalities)
            self.embed = None
            self.embeds = nn.ModuleList(nn.Embedding(c, int(embed_dim)) for c in self.cardinalities)
            self._register_load_state_dict_pre_hook(self._split_shared_table)
        else:
            self.embed = nn.Embedding(int(cat_buckets), int(embed_dim)) if self.num_cat_fields else None
            self.embeds = None
        width = int(num_dense) + self.num_cat_fields * int(embed_dim)
        mlp: list[nn.Module] = []
        for _ in range(int(layers)):
            mlp += [nn.Linear(width, int(hidden)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(hidden)
        mlp.append(nn.Linear(width, int(num_outputs)))
        self.mlp = nn.Sequential(*mlp)

    def _split_shared_table(self, state: dict, prefix: str, *args: Any) -> None:
        """Weights of the former layout (one table, fields' rows concatenated) -> per-field tables."""
        shared = state.pop(prefix + "embed.weight", None)
        if shared is not None and shared.shape[0] == sum(self.cardinalities):
            for i, part in enumerate(torch.split(shared, list(self.cardinalities), dim=0)):
                state.setdefault(f"{prefix}embeds.{i}.weight", part.clone())
        elif shared is not None:
            state[prefix + "embed.weight"] = shared  # let strict loading name the mismatch

    def forward(self, dense: torch.Tensor, cats: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_cat_fields:
            if cats is None:
                raise ValueError("this student takes categorical ids as its second input")
            if self.embeds is not None:
                parts = [table(cats[:, i]) for i, table in enumerate(self.embeds)]
            else:
                parts = [self.embed(cats).flatten(1)]
            dense = torch.cat([dense, *parts], dim=1)
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
