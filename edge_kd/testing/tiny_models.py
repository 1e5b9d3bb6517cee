"""Tiny models that run in milliseconds, with their input specs. Factories are importable by
reference (``edge_kd.testing.tiny_models:tiny_cnn``), which is how the CLI tests hand them over."""
from __future__ import annotations

import torch
from torch import nn

from edge_kd.models.spec import InputSpec, ModelSpec


class TinyCNN(nn.Module):
    """Conv-BN-ReLU x2, global pool, linear: an image classifier in miniature."""

    def __init__(self, num_classes: int = 4, width: int = 16, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width * 2, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(image)), 1))


class TinyMLP(nn.Module):
    """A tabular classifier: dense features in, logits out."""

    def __init__(self, in_features: int = 12, hidden: int = 32, num_classes: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class TinyTextEncoder(nn.Module):
    """Token ids -> embedding -> one transformer encoder layer -> mean pool -> logits."""

    def __init__(self, vocab_size: int = 100, dim: int = 32, heads: int = 4, num_classes: int = 5, seq_len: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, dim))
        self.encoder = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim * 2, batch_first=True, dropout=0.0)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids) + self.pos[:, : input_ids.shape[1]]
        x = self.encoder(x)
        return self.classifier(x.mean(dim=1))


def tiny_cnn(num_classes: int = 4, width: int = 16) -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN(num_classes, width).eval()


def tiny_mlp(in_features: int = 12, hidden: int = 32, num_classes: int = 2) -> TinyMLP:
    torch.manual_seed(0)
    return TinyMLP(in_features, hidden, num_classes).eval()


def tiny_text(vocab_size: int = 100, dim: int = 32, num_classes: int = 5, seq_len: int = 16) -> TinyTextEncoder:
    torch.manual_seed(0)
    return TinyTextEncoder(vocab_size, dim, 4, num_classes, seq_len).eval()


TINY_SPECS: dict[str, ModelSpec] = {
    "cnn": ModelSpec("edge_kd.testing.tiny_models:tiny_cnn", (InputSpec("image", (1, 3, 32, 32), "float32"),)),
    "mlp": ModelSpec("edge_kd.testing.tiny_models:tiny_mlp", (InputSpec("features", (1, 12), "float32", -1.0, 1.0),)),
    "text": ModelSpec("edge_kd.testing.tiny_models:tiny_text", (InputSpec("input_ids", (1, 16), "int64", 0, 100),)),
}
