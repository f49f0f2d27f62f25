"""MobileNetV3-Small / -Large with torchvision's structure and state-dict keys.

``features.N...`` (Conv-BN-activation blocks as ``nn.Sequential``, inverted residuals under
``features.N.block.M``, squeeze-excitation ``fc1``/``fc2`` convs with hard-sigmoid gating) and
``classifier.0`` / ``classifier.3``; BatchNorm eps 1e-3, momentum 0.01 as torchvision.
The pose features are the pooled output of the last 1x1 conv (576 / 960 channels); the
classifier's 1024 / 1280-wide hidden layer belongs to ImageNet classification only.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from .._registry import register_backbone
from .base import IMAGENET_CFG, Backbone, init_weights

__all__ = ["MobileNetV3", "mobilenetv3_small", "mobilenetv3_small_075", "mobilenetv3_large", "scale_setting"]

_BN = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10 % (torchvision rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), _BN(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        squeeze = make_divisible(channels // 4, 8)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.fc2(self.relu(self.fc1(s)))
        return x * F.hardsigmoid(s)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, k: int, cexp: int, cout: int, use_se: bool, hs: bool, stride: int):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = []
        if cexp != cin:
            layers.append(conv_bn_act(cin, cexp, 1, act=act))
        layers.append(conv_bn_act(cexp, cexp, k, stride, groups=cexp, act=act))
        if use_se:
            layers.append(SqueezeExcitation(cexp))
        layers.append(conv_bn_act(cexp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


# (in, kernel, expanded, out, SE, hard-swish, stride) -- Howard et al. 2019, Tables 1 and 2.
_LARGE = [
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1),
]
_SMALL = [
    (16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2), (24, 3, 88, 24, False, False, 1),
    (24, 5, 96, 40, True, True, 2), (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
    (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1), (48, 5, 288, 96, True, True, 2),
    (96, 5, 576, 96, True, True, 1), (96, 5, 576, 96, True, True, 1),
]


class MobileNetV3(Backbone):
    classifier_prefixes = ("classifier.",)

    def __init__(self, setting, last_channel: int, num_classes: int = 0, dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, setting[0][0], 3, 2, act=nn.Hardswish)]
        layers += [InvertedResidual(*cfg) for cfg in setting]
        last_in = setting[-1][3]
        layers.append(conv_bn_act(last_in, 6 * last_in, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 6 * last_in
        self.classifier = None
        if num_classes > 0:
            self.classifier = nn.Sequential(
                nn.Linear(self.num_features, last_channel), nn.Hardswish(inplace=True),
                nn.Dropout(p=dropout, inplace=True), nn.Linear(last_channel, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.classifier is None else self.classifier(features)


def scale_setting(setting, width_mult: float):
    """Channels of a block table scaled as torchvision's ``mobilenet_v3_*(width_mult=...)`` does
    (``_make_divisible(c * width_mult, 8)`` for in / expanded / out channels)."""
    return [(make_divisible(cin * width_mult), k, make_divisible(cexp * width_mult), make_divisible(cout * width_mult),
             se, hs, s) for cin, k, cexp, cout, se, hs, s in setting]


def _build(setting, last_channel: int, num_classes: int, pretrained: str | None) -> MobileNetV3:
    model = MobileNetV3(setting, last_channel, num_classes=num_classes)
    if pretrained:
        model.load_pretrained(pretrained)
    return model


@register_backbone("mobilenetv3_small", **IMAGENET_CFG)
def mobilenetv3_small(num_classes: int = 0, pretrained: str | None = None) -> MobileNetV3:
    """MobileNetV3-Small; 576 pooled features."""
    return _build(_SMALL, 1024, num_classes, pretrained)


@register_backbone("mobilenetv3_small_075", **IMAGENET_CFG)
def mobilenetv3_small_075(num_classes: int = 0, pretrained: str | None = None) -> MobileNetV3:
    """MobileNetV3-Small at width 0.75 (torchvision ``mobilenet_v3_small(width_mult=0.75)``); 432 pooled
    features.  The default shipped student: FP32 + two INT8 copies fit the package's size budget."""
    return _build(scale_setting(_SMALL, 0.75), make_divisible(1024 * 0.75), num_classes, pretrained)


@register_backbone("mobilenetv3_large", **IMAGENET_CFG)
def mobilenetv3_large(num_classes: int = 0, pretrained: str | None = None) -> MobileNetV3:
    """MobileNetV3-Large; 960 pooled features."""
    return _build(_LARGE, 1280, num_classes, pretrained)
