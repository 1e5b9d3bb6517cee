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


class TinyDepthwiseNet(nn.Module):
    """An inverted-residual block in miniature (EfficientNet-Lite / MobileNetV2 style): conv stem,
    1x1 expand, 3x3 depthwise, 1x1 project with a residual add, 1x1 head, ReLU6 after each but the
    projection, global pool, linear."""

    def __init__(self, num_classes: int = 10, width: int = 32, expand: int = 4, head: int = 64):
        super().__init__()
        mid = width * expand
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(width, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
                                       nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(mid, width, 1, bias=False), nn.BatchNorm2d(width))
        self.head = nn.Sequential(nn.Conv2d(width, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)
        x = x + self.project(self.depthwise(self.expand(x)))
        return self.classifier(torch.flatten(self.pool(self.head(x)), 1))


def tiny_depthwise(num_classes: int = 10, width: int = 32) -> TinyDepthwiseNet:
    """Seeded, with batch-norm scales of a trained network: pre-activations spread well beyond
    ReLU6's [0, 6] (as in EfficientNet-Lite0, where the stem's conv output spans [-70, 64])."""
    torch.manual_seed(0)
    model = TinyDepthwiseNet(num_classes, width).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 6 + 2)
                m.bias.copy_(torch.randn(m.num_features, generator=g))
        model.classifier.weight.mul_(4)
    return model


def tiny_pruned_depthwise(amount: float = 0.4, round_to: int = 1) -> TinyDepthwiseNet:
    """:func:`tiny_depthwise` channel-pruned by edge_kd.prune (``amount`` of the MACs removed; with
    ``round_to=1`` the channel counts are odd ones, e.g. 97 depthwise channels)."""
    from edge_kd.prune.pruner import PruneConfig, prune_to_goal

    model = tiny_depthwise()
    pruned, _ = prune_to_goal(model, (torch.rand(1, 3, 32, 32),), PruneConfig(goal="macs", amount=amount,
                                                                              round_to=round_to))
    return pruned.eval()


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
