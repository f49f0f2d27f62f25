"""ResNet-18 / ResNet-50 with torchvision's module names (``conv1, bn1, layer1.0.conv1, ..., fc``).

torchvision's ImageNet ``.pth`` files therefore load unchanged (see :mod:`edgepose.models.pretrained`).
ResNet-50 uses the "V1.5" bottleneck (stride on the 3x3 conv), as torchvision does.
"""
from __future__ import annotations

import torch
from torch import nn

from .._registry import register_backbone
from .base import IMAGENET_CFG, Backbone, init_weights

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet50"]


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(Backbone):
    classifier_prefixes = ("fc.",)

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, stride=2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = cin
        # fc exists only for the ImageNet form; pose models drop it (no unused parameters).
        self.fc = nn.Linear(cin, num_classes) if num_classes > 0 else None
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.fc is None else self.fc(features)


def _build(block, layers, num_classes: int, pretrained: str | None) -> ResNet:
    model = ResNet(block, layers, num_classes=num_classes)
    if pretrained:
        model.load_pretrained(pretrained)
    return model


@register_backbone("resnet18", **IMAGENET_CFG)
def resnet18(num_classes: int = 0, pretrained: str | None = None) -> ResNet:
    """ResNet-18 (He et al. 2016); 512 pooled features."""
    return _build(BasicBlock, (2, 2, 2, 2), num_classes, pretrained)


@register_backbone("resnet50", **IMAGENET_CFG)
def resnet50(num_classes: int = 0, pretrained: str | None = None) -> ResNet:
    """ResNet-50 (V1.5 bottleneck); 2048 pooled features."""
    return _build(Bottleneck, (3, 4, 6, 3), num_classes, pretrained)
