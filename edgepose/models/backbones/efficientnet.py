"""EfficientNet-B0 as built by TensorFlow/Keras (``efficientnet`` package, keras.applications).

Public teachers such as WHENet were trained with the Keras implementation, whose numerics
differ from the usual PyTorch port in ways that change every activation:

* **TF "same" padding.**  For stride 2 Keras pads ``total = max((ceil(i/s)-1)*s + k - i, 0)``
  pixels and puts the extra one at the right/bottom (``top = total // 2``).  A symmetric
  ``padding=k//2`` shifts the sampling grid by one pixel at every stride-2 layer.
* **BatchNorm eps 1e-3** (Keras default; PyTorch uses 1e-5), momentum 0.99 (PyTorch 0.01).
* **Swish** (x * sigmoid(x)) everywhere, **SE** with ``max(1, int(block_in * 0.25))`` reduced
  channels (of the block's *input* filters, not the expanded ones), bias on both SE convs.
* Drop-connect is identity at inference and therefore not modelled (no weights).

Block arguments (Tan & Le 2019, Table 1; identical in the ``efficientnet`` Keras package):
repeats, kernel, stride, expand ratio, in, out for the seven stages below.
With ``tf_padding=False`` and ``bn_eps=1e-5`` the same module is a plain PyTorch EfficientNet-B0
for training from scratch; the importer for Keras weights needs the defaults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._registry import register_backbone
from .base import IMAGENET_CFG, Backbone

__all__ = ["EfficientNet", "MBConv", "B0_STAGES", "StageArgs", "efficientnet_b0", "efficientnet_b0_s4",
           "keras_layer_order"]


@dataclass(frozen=True)
class StageArgs:
    repeats: int
    kernel: int
    stride: int
    expand: int
    c_in: int
    c_out: int
    se_ratio: float = 0.25


B0_STAGES: tuple[StageArgs, ...] = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's "same" for one spatial axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric for even totals) or PyTorch k//2."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 bias: bool = False, tf_padding: bool = True):
        # Stride 1 with odd kernels is symmetric in both conventions: let the conv pad itself.
        symmetric = not tf_padding or stride == 1
        super().__init__(c_in, c_out, kernel, stride, padding=kernel // 2 if symmetric else 0,
                         groups=groups, bias=bias)
        self.tf_dynamic = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_dynamic:
            kh, kw = self.kernel_size
            sh, sw = self.stride
            top, bottom = tf_same_pad(int(x.shape[-2]), kh, sh)
            left, right = tf_same_pad(int(x.shape[-1]), kw, sw)
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.conv_expand(F.silu(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [1x1 expand] -> depthwise -> SE -> 1x1 project (+ identity)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, se_ratio: float,
                 bn_eps: float, bn_momentum: float, tf_padding: bool):
        super().__init__()
        mid = c_in * expand
        bn = lambda c: nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)  # noqa: E731
        self.has_expand = expand != 1
        if self.has_expand:
            self.conv_pw = nn.Conv2d(c_in, mid, 1, bias=False)
            self.bn1 = bn(mid)
        self.conv_dw = SameConv2d(mid, mid, kernel, stride, groups=mid, tf_padding=tf_padding)
        self.bn2 = bn(mid)
        self.se = SqueezeExcite(mid, max(1, int(c_in * se_ratio))) if se_ratio else None
        self.conv_pwl = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = bn(c_out)
        self.has_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.bn1(self.conv_pw(x))) if self.has_expand else x
        y = F.silu(self.bn2(self.conv_dw(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_skip else y


class EfficientNet(Backbone):
    """EfficientNet trunk (stem, MBConv stages, 1x1 head conv) + global average pooling."""

    classifier_prefixes = ("classifier.",)

    def __init__(self, stages: tuple[StageArgs, ...] = B0_STAGES, stem_channels: int = 32,
                 num_features: int = 1280, tf_padding: bool = True, bn_eps: float = 1e-3,
                 bn_momentum: float = 0.01, in_chans: int = 3, num_classes: int = 0):
        super().__init__()
        self.tf_padding = tf_padding
        self.num_features = num_features
        # torch momentum = 1 - Keras momentum (0.99)
        bn = lambda c: nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)  # noqa: E731
        self.conv_stem = SameConv2d(in_chans, stem_channels, 3, 2, tf_padding=tf_padding)
        self.bn1 = bn(stem_channels)
        blocks = []
        for st in stages:
            stage = [MBConv(st.c_in if i == 0 else st.c_out, st.c_out, st.kernel, st.stride if i == 0 else 1,
                            st.expand, st.se_ratio, bn_eps, bn_momentum, tf_padding) for i in range(st.repeats)]
            blocks.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(stages[-1].c_out, num_features, 1, bias=False)
        self.bn2 = bn(num_features)
        # ImageNet classifier only when asked for (weight loading / parameter-count checks)
        self.classifier = nn.Linear(num_features, num_classes) if num_classes > 0 else None
        self._init_weights()

    def _init_weights(self) -> None:
        # Keras EfficientNet init: conv ~ N(0, sqrt(2 / fan_out)) (fan_out = k*k*out/groups).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return F.silu(self.bn2(self.conv_head(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).mean(dim=(2, 3))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.classifier is None else self.classifier(features)



def keras_layer_order(net: EfficientNet) -> list[tuple[str, nn.Module]]:
    """Weighted layers in the order the Keras ``efficientnet`` package creates them.

    Each entry is (kind, module) with kind "conv" | "dwconv" | "bn"; the WHENet importer zips this
    list with the weighted layers of a Keras .h5 file (in its ``layer_names`` order).
    """
    order: list[tuple[str, nn.Module]] = [("conv", net.conv_stem), ("bn", net.bn1)]
    for stage in net.blocks:
        for b in stage:
            if b.has_expand:
                order += [("conv", b.conv_pw), ("bn", b.bn1)]
            order += [("dwconv", b.conv_dw), ("bn", b.bn2)]
            if b.se is not None:
                order += [("conv", b.se.conv_reduce), ("conv", b.se.conv_expand)]
            order += [("conv", b.conv_pwl), ("bn", b.bn3)]
    order += [("conv", net.conv_head), ("bn", net.bn2)]
    return order


@register_backbone("efficientnet_b0", **IMAGENET_CFG)
def efficientnet_b0(num_classes: int = 0, pretrained: str | None = None, tf_padding: bool = True,
                    bn_eps: float = 1e-3) -> EfficientNet:
    """EfficientNet-B0 (5.3 M parameters with the 1000-class top), Keras numerics by default."""
    net = EfficientNet(B0_STAGES, tf_padding=tf_padding, bn_eps=bn_eps, num_classes=num_classes)
    if pretrained:
        net.load_pretrained(pretrained)
    return net


@register_backbone("efficientnet_b0_s4", **IMAGENET_CFG)
def efficientnet_b0_s4(num_classes: int = 0, pretrained: str | None = None, tf_padding: bool = True,
                       bn_eps: float = 1e-3, num_features: int = 384) -> EfficientNet:
    """EfficientNet-B0's stem and first four stages (stride 16, 80 channels) + a 1x1 head conv: 0.34 M parameters.

    Small enough for the default student's package budget (FP32 + two INT8 copies under 5 MB), and its
    layers carry the same names and shapes as ``efficientnet_b0``'s, so a B0 trunk trained elsewhere (the
    imported WHENet teacher's, through ``edgepose.models.transfer.copy_matching_weights``) initialises it by
    name. Only the head conv (80 -> ``num_features``) and its BatchNorm are new.
    """
    net = EfficientNet(B0_STAGES[:4], tf_padding=tf_padding, bn_eps=bn_eps, num_features=num_features,
                       num_classes=num_classes)
    if pretrained:
        net.load_pretrained(pretrained)
    return net
