"""MobileNetV2-style image student: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1
project) with a width multiplier (the size knob) and an input resolution (the second knob, fixed by
the recipe). Only Conv2d, BatchNorm2d, ReLU6, adaptive average pooling and Linear: ops every target
runtime delegates (XNNPACK, ORT mobile, TFLite builtins).

    model = mobilenet_student(width_mult=0.5, num_classes=81, resolution=128)
    logits = model(torch.zeros(1, 3, 128, 128))
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from edge_kd.models.spec import InputSpec
from edge_kd.models.students.base import FAMILIES, StudentFamily, knob_values

#: (expansion t, output channels c, repeats n, first stride s): MobileNetV2's table, one stage shorter
#: than the ImageNet model because edge students see small inputs.
DEFAULT_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 160, 2, 2),
)


def _divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(inp: int, out: int, kernel: int, stride: int, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(out)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(inp, hidden, 1, 1))
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, out, 1, 1, act=False)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetStudent(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 10, resolution: int = 224,
                 blocks: Sequence[Sequence[int]] = DEFAULT_BLOCKS, last_channels: int = 512, dropout: float = 0.2):
        super().__init__()
        self.resolution = int(resolution)
        stem = _divisible(32 * width_mult)
        layers: list[nn.Module] = [_conv_bn(3, stem, 3, 2)]
        channels = stem
        for t, c, n, s in blocks:
            out = _divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        last = _divisible(last_channels * max(1.0, width_mult))
        layers.append(_conv_bn(channels, last, 1, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(image)), 1))


def mobilenet_student(width_mult: float = 1.0, num_classes: int = 10, resolution: int = 224,
                      last_channels: int = 512, dropout: float = 0.2) -> MobileNetStudent:
    """Factory used by ModelSpec (``edge_kd.models.students.image:mobilenet_student``)."""
    return MobileNetStudent(width_mult, num_classes, resolution, DEFAULT_BLOCKS, last_channels, dropout)


def _image_inputs(value: Any, kwargs: dict[str, Any]) -> tuple[InputSpec, ...]:
    r = int(kwargs.get("resolution", 224))
    return (InputSpec("image", (1, 3, r, r), "float32", -1.0, 1.0),)


@FAMILIES.register("mobilenet")
def image_family(num_classes: int, *, knob: str = "width_mult", low: float = 0.1, high: float = 1.4,
                 step: float = 0.05, resolution: int = 224, width_mult: float = 1.0, last_channels: int = 512,
                 dropout: float = 0.2) -> StudentFamily:
    """MobileNetV2-style family; knob ``width_mult`` (0.1..1.4 by 0.05) or ``last_channels``."""
    from edge_kd.errors import InputError

    if knob not in ("width_mult", "last_channels"):
        raise InputError(f"mobilenet student: knob must be 'width_mult' or 'last_channels', got {knob!r}")
    kwargs = {"width_mult": width_mult, "num_classes": num_classes, "resolution": resolution,
              "last_channels": last_channels, "dropout": dropout}
    kwargs.pop(knob)
    return StudentFamily("mobilenet", "edge_kd.models.students.image:mobilenet_student", knob,
                         knob_values(low, high, step), kwargs, input_fn=_image_inputs)
