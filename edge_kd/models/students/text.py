"""Text students. ``text_hashed``: word unigrams+bigrams+char trigrams hashed into ``buckets`` rows,
a masked mean of their embeddings, and a small MLP. ``text_wordpiece`` (at the end): the teacher's own
wordpieces, the same masked mean and head, optionally a residual convolution over neighbouring pieces.

On a phone the embedding table dominates the bytes (``(buckets + 1) * dim`` weights), so
``buckets`` is the default size knob and ``dim`` the second one. The input is a fixed-length int64
id tensor (see :mod:`edge_kd.preprocess.text`); padding id 0 is masked out. ``nn.Embedding`` plus
a masked mean exports to .pte, .onnx and .tflite alike, unlike ``EmbeddingBag`` with offsets.

The masked mean is written so that XNNPACK runs all of it (``xnnpack-full-delegation``): comparing
ids (``ids != 0``) and summing over tokens would stay on ExecuTorch's portable kernels, so the mask is
a lookup in a constant one-column table (0 for padding, 1 otherwise; not a parameter, not in the
state dict), applied as a float multiply, and the token sums are 4-D means over the last two dims
(XNNPACK's global average pooling). ``mean(e*m) / mean(m)`` equals ``sum(e*m) / sum(m)``: the
sequence length cancels, and the ``clamp(count, 1)`` of an all-padding row becomes
``clamp(mean, 1/L)``.

    model = hashed_text_student(buckets=4096, dim=64, num_classes=77, max_ids=128)
    logits = model(torch.zeros(1, 128, dtype=torch.int64))
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edge_kd.models.spec import InputSpec
from edge_kd.models.students.base import FAMILIES, StudentFamily, knob_values


def _id_table(rows: int, dim: int) -> tuple[nn.Embedding, torch.Tensor]:
    """An embedding of ``rows`` ids (row 0 is padding, kept zero; the others normal with std 0.1, the
    spread teacher-initialized rows are scaled to) and the constant one-column mask table: 0 for
    padding, 1 otherwise (a buffer, not a parameter: a lookup XNNPACK runs, where ``ids != 0`` is not)."""
    embed = nn.Embedding(rows, dim, padding_idx=0)
    nn.init.normal_(embed.weight, std=0.1)
    with torch.no_grad():
        embed.weight[0].zero_()
    token = torch.ones(rows, 1)
    token[0] = 0.0
    return embed, token


def _head(width: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    if hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens of ``x`` [B, L, D] where ``mask`` [B, L, 1] is 1 (padding already zeroed in
    ``x``): 4-D means of [B, D, L, 1] over (L, 1), the one token reduction XNNPACK delegates."""
    mean_x = x.transpose(1, 2).unsqueeze(-1).mean(dim=(2, 3), keepdim=True).flatten(1)
    mean_mask = mask.transpose(1, 2).unsqueeze(-1).mean(dim=(2, 3), keepdim=True).flatten(1)
    return mean_x / mean_mask.clamp(min=1.0 / x.shape[1])


class HashedNgramStudent(nn.Module):
    """``hashes_per_feature`` is the featurizer's (how many ids each n-gram emits, see
    :mod:`edge_kd.preprocess.text`): the model averages whatever ids it gets; like ``max_ids`` it is
    recorded on the model so that it says which preprocessing it was trained for."""

    def __init__(self, buckets: int = 8192, dim: int = 64, num_classes: int = 2, hidden: int = 0,
                 dropout: float = 0.1, max_ids: int = 128, hashes_per_feature: int = 1):
        super().__init__()
        self.buckets, self.dim, self.max_ids = int(buckets), int(dim), int(max_ids)
        self.hashes_per_feature = int(hashes_per_feature)
        self.embed, token = _id_table(self.buckets + 1, self.dim)
        self.register_buffer("token_mask", token, persistent=False)
        self.head = _head(self.dim, hidden, num_classes, dropout)

    def pooled(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = nn.functional.embedding(input_ids, self.token_mask)          # [B, L, 1]: 1 = token
        return _masked_mean(self.embed(input_ids) * mask, mask)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(input_ids))


def hashed_text_student(buckets: int = 8192, dim: int = 64, num_classes: int = 2, hidden: int = 0,
                        dropout: float = 0.1, max_ids: int = 128, hashes_per_feature: int = 1) -> HashedNgramStudent:
    """Factory used by ModelSpec (``edge_kd.models.students.text:hashed_text_student``)."""
    return HashedNgramStudent(buckets, dim, num_classes, hidden, dropout, max_ids, hashes_per_feature)


def _text_inputs(value: Any, kwargs: dict[str, Any]) -> tuple[InputSpec, ...]:
    return (InputSpec("input_ids", (1, int(kwargs.get("max_ids", 128))), "int64", 0, int(kwargs["buckets"]) + 1),)


@FAMILIES.register("text_hashed")
def text_family(num_classes: int, *, knob: str = "buckets", low: int | None = None, high: int | None = None,
                step: int | None = None, buckets: int = 8192, dim: int = 64, hidden: int = 0,
                dropout: float = 0.1, max_ids: int | None = None, hashes_per_feature: int = 1) -> StudentFamily:
    """The hashed n-gram family; knob ``buckets`` (default, 256..262144 in steps of 64) or ``dim`` (4..512).

    ``hashes_per_feature``: ids per n-gram (:mod:`edge_kd.preprocess.text`; on Banking77 two paid at
    256 KiB and not at 1 MiB or 64 KiB, see the README); ``max_ids`` (the input length, in ids) defaults
    to 128 per hash, so the same n-grams fit.

    Steps of 64 rows (2 KiB at dim 32 in int8): the sizing search predicts the size of every value and
    exports only a few, so a fine step costs nothing and fills a small budget (a 64 KiB bundle lost up to
    13% of it to steps of 256 rows)."""
    from edge_kd.errors import InputError

    if knob == "buckets":
        low, high, step = low or 256, high or 262144, step or 64
    elif knob == "dim":
        low, high, step = low or 4, high or 512, step or 4
    else:
        raise InputError(f"text_hashed student: knob must be 'buckets' or 'dim', got {knob!r}")
    from edge_kd.preprocess.text import check_hashes_per_feature

    check_hashes_per_feature(hashes_per_feature, "text_hashed student")  # at recipe load, before any data
    kwargs = {"buckets": buckets, "dim": dim, "num_classes": num_classes, "hidden": hidden, "dropout": dropout,
              "max_ids": 128 * hashes_per_feature if max_ids is None else max_ids,
              "hashes_per_feature": hashes_per_feature}
    kwargs.pop(knob)
    return StudentFamily("text_hashed", "edge_kd.models.students.text:hashed_text_student", knob,
                         knob_values(low, high, step), kwargs, input_fn=_text_inputs)


# ---- wordpiece students -------------------------------------------------------------------------
class WordpieceConvStudent(nn.Module):
    """The teacher's wordpieces (a ranked prefix of its vocabulary, :mod:`edge_kd.preprocess.wordpiece`)
    in order: an embedding, optionally one residual convolution over ``kernel`` neighbouring pieces (so
    "not working" can differ from "working"), a masked mean over the text, and a small head.

    ``vocab`` counts the pieces (``[UNK]`` included); row 0 of the table is padding. The default,
    ``kernel = 0``, is the bag of teacher-initialized pieces: on Banking77's validation split a 3-piece
    convolution did not beat it (0.908 vs 0.911 at 1 MiB, 0.870 vs 0.873 at 64 KiB; one-off runs of the
    distill benchmark's training, within their noise). The
    convolution is a ``kernel x 1`` ``Conv2d`` on ``[B, D, L, 1]`` (XNNPACK has no 1-D convolution; its
    padding is part of the convolution, where a separate zero pad of int8 values fails to compile in
    XNNPACK), turned back to ``[B, L, D]`` before the mask and the residual add: with the add in the
    convolution's layout, LiteRT's NHWC rewrite broke the int8 export. The masked mean is the hashed
    student's (4-D means over the last two dims).
    """

    def __init__(self, vocab: int = 4096, dim: int = 64, num_classes: int = 2, kernel: int = 0, hidden: int = 0,
                 dropout: float = 0.1, max_ids: int = 64):
        super().__init__()
        if kernel < 0 or (kernel and kernel % 2 == 0):
            raise ValueError(f"kernel must be 0 or odd, got {kernel}")
        self.vocab, self.dim, self.max_ids, self.kernel = int(vocab), int(dim), int(max_ids), int(kernel)
        self.embed, token = _id_table(self.vocab + 1, self.dim)
        self.register_buffer("token_mask", token, persistent=False)
        self.conv = nn.Conv2d(self.dim, self.dim, (self.kernel, 1), padding=(self.kernel // 2, 0)) if kernel else None
        if self.conv is not None:
            # Small, the residual starts near the bag of teacher-initialized pieces and learns how much
            # context to add (PyTorch's default init made the student worse than the bag on validation).
            nn.init.normal_(self.conv.weight, std=0.01)
            nn.init.zeros_(self.conv.bias)
        self.head = _head(self.dim, hidden, num_classes, dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = nn.functional.embedding(input_ids, self.token_mask)          # [B, L, 1]: 1 = piece
        x = self.embed(input_ids) * mask                                     # [B, L, D]
        if self.conv is not None:
            mixed = torch.relu(self.conv(x.transpose(1, 2).unsqueeze(-1)))   # [B, D, L, 1]
            x = x + mixed.flatten(2).transpose(1, 2) * mask
        return self.head(_masked_mean(x, mask))


def wordpiece_text_student(vocab: int = 4096, dim: int = 64, num_classes: int = 2, kernel: int = 0, hidden: int = 0,
                           dropout: float = 0.1, max_ids: int = 64) -> WordpieceConvStudent:
    """Factory used by ModelSpec (``edge_kd.models.students.text:wordpiece_text_student``)."""
    return WordpieceConvStudent(vocab, dim, num_classes, kernel, hidden, dropout, max_ids)


def _wordpiece_inputs(value: Any, kwargs: dict[str, Any]) -> tuple[InputSpec, ...]:
    return (InputSpec("input_ids", (1, int(kwargs.get("max_ids", 64))), "int64", 0, int(kwargs["vocab"]) + 1),)


@FAMILIES.register("text_wordpiece")
def wordpiece_family(num_classes: int, *, knob: str = "vocab", low: int | None = None, high: int | None = None,
                     step: int | None = None, vocab: int = 4096, dim: int = 64, kernel: int = 0, hidden: int = 0,
                     dropout: float = 0.1, max_ids: int = 64, pieces: int | None = None) -> StudentFamily:
    """The wordpiece family; knob ``vocab`` (default: pieces kept, 128..``pieces``) or ``dim`` (4..512);
    ``kernel`` 0 (default, a bag of pieces) or an odd width of the residual convolution.

    ``pieces`` is the length of the ranked vocabulary the data gives (the knob's ceiling; the distill
    stage fills it in from the teacher's vocabulary)."""
    from edge_kd.errors import InputError

    if kernel < 0 or (kernel and kernel % 2 == 0):
        raise InputError(f"text_wordpiece student: kernel must be 0 (no convolution) or odd, got {kernel}")
    if knob == "vocab":
        top = int(pieces) if pieces else 32768
        low, high, step = low or 128, min(high or top, top), step or 32  # fine steps: see text_family
    elif knob == "dim":
        low, high, step = low or 4, high or 512, step or 4
    else:
        raise InputError(f"text_wordpiece student: knob must be 'vocab' or 'dim', got {knob!r}")
    kwargs = {"vocab": vocab, "dim": dim, "num_classes": num_classes, "kernel": kernel, "hidden": hidden,
              "dropout": dropout, "max_ids": max_ids}
    if knob == "dim" and pieces:
        kwargs["vocab"] = min(int(vocab), int(pieces))
    kwargs.pop(knob)
    return StudentFamily("text_wordpiece", "edge_kd.models.students.text:wordpiece_text_student", knob,
                         knob_values(low, high, step), kwargs, input_fn=_wordpiece_inputs)
