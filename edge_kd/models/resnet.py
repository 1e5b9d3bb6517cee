"""ResNet-18 in torchvision's module layout (same state-dict keys), without importing torchvision.

A user who has torchvision-trained ResNet-18 weights (``conv1``, ``layer1.0.conv1``, ..., ``fc``)
loads them with ``load_state_dict`` directly. No pretrained weights ship with edge_kd (none are on
PyPI without the hub), so this is an architecture for users' own weights and for tests.
Expects ImageNet mean/std scaling (``preprocessing="imagenet"``).

    model = resnet18(num_classes=81).eval()
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        self.feature_dim = 512
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(image))

    @property
    def head(self) -> nn.Linear:
        return self.fc

    def replace_head(self, num_classes: int) -> None:
        self.fc = nn.Linear(512, num_classes)

    def tail_blocks(self) -> Iterator[nn.Module]:
        for layer in (self.layer4, self.layer3, self.layer2, self.layer1):
            yield from reversed(layer)


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 (randomly initialised; load torchvision-layout weights with ``load_state_dict``).

    >>> model = resnet18(num_classes=10).eval()
    """
    return ResNet((2, 2, 2, 2), num_classes).eval()
