"""MobileNetV1 (Howard et al. 2017) with 3DDFA_V2's module names and a width multiplier.

3DDFA_V2 (``cleardusk/3DDFA_V2``, ``models/mobilenet_v1.py``) names its layers ``conv1`` / ``bn1``
(the 3x3 stride-2 stem), ``dw2_1 ... dw6`` (depthwise-separable blocks, each ``conv_dw`` /
``bn_dw`` / ``conv_sep`` / ``bn_sep``, ReLU after both BNs) and ``fc``; its released
``mb05_120x120.pth`` keeps exactly these keys under a ``module.`` prefix (plus ``fc_param`` /
``fc_lm``, the 62-parameter and landmark regressors).  Keeping the names means that checkpoint
loads here unchanged (``pretrained=``) and :func:`edgepose.models.transfer.copy_matching_weights`
initialises a student from the imported 3DDFA_V2 teacher.

Channel widths are ``int(c * widen_factor)`` as upstream (no rounding to multiples of 8).  The
trunk ends in global average pooling, so any input size >= 32 px works.

``depth`` keeps only the first blocks: ``mobilenet_v1_050_d12`` drops ``dw6``, the last 512 -> 512 block, which
runs on a 3 x 3 map at the default student's 96 px and costs 2.4 of its 27.4 M MACs (a smaller input does not cut
that cost: the stride-32 grid is 3 x 3 from 66 to 96 px; docs/models.md "Speed").  The kept blocks keep 3DDFA_V2's
names and shapes, so the teacher's weights still initialise them.

``skip`` leaves out shape-preserving blocks in the middle instead: at width 0.5 the five repeated 256-channel
blocks ``dw5_1 ... dw5_5`` run on the stride-16 map (6 x 6 at 96 px) and are 12 of the 27.4 M MACs, the one place
where removing work does not shrink the final representation (``dw6``, 512 channels, stays).
``mobilenet_v1_050_m3`` keeps three of them (``dw5_4`` and ``dw5_5`` skipped: 22.5 M MACs at 96 px, 0.82 x); the
kept blocks keep their names, so 3DDFA_V2's weights initialise them and ``dw5_6`` then reads ``dw5_3``'s output.
"""
from __future__ import annotations

import torch
from torch import nn

from .._registry import register_backbone
from .base import Backbone, init_weights

__all__ = ["MobileNetV1", "DepthWiseBlock", "mobilenet_v1", "mobilenet_v1_050", "mobilenet_v1_050_d12",
           "mobilenet_v1_050_m3", "MOBILENET_V1_BLOCKS"]

# (name, in, out, stride) at width 1.0: the 13 depthwise-separable blocks of MobileNetV1, Table 1.
MOBILENET_V1_BLOCKS = (
    ("dw2_1", 32, 64, 1), ("dw2_2", 64, 128, 2), ("dw3_1", 128, 128, 1), ("dw3_2", 128, 256, 2),
    ("dw4_1", 256, 256, 1), ("dw4_2", 256, 512, 2), ("dw5_1", 512, 512, 1), ("dw5_2", 512, 512, 1),
    ("dw5_3", 512, 512, 1), ("dw5_4", 512, 512, 1), ("dw5_5", 512, 512, 1), ("dw5_6", 512, 1024, 2),
    ("dw6", 1024, 1024, 1),
)

# 3DDFA_V2's input: BGR, (x - 127.5) / 128, 120 px.
TDDFA_CFG = dict(input_size=120, color_order="BGR", mean=(127.5 / 255,) * 3, std=(128 / 255,) * 3)


class DepthWiseBlock(nn.Module):
    """3x3 depthwise conv -> BN -> ReLU -> 1x1 conv -> BN -> ReLU (3DDFA_V2's ``DepthWiseBlock``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_dw(self.conv_dw(x)))
        return self.relu(self.bn_sep(self.conv_sep(x)))


class MobileNetV1(Backbone):
    # fc_param / fc_lm: 3DDFA_V2's regressors, in its checkpoint beside the trunk.
    classifier_prefixes = ("fc.", "fc_param.", "fc_lm.")

    def __init__(self, widen_factor: float = 1.0, num_classes: int = 0, depth: int = len(MOBILENET_V1_BLOCKS),
                 skip: tuple[str, ...] = ()):
        super().__init__()
        if not widen_factor > 0:
            raise ValueError(f"widen_factor must be positive, got {widen_factor}")
        if not 1 <= depth <= len(MOBILENET_V1_BLOCKS):
            raise ValueError(f"depth must be 1..{len(MOBILENET_V1_BLOCKS)} blocks, got {depth}")
        shape_preserving = {name for name, cin, cout, stride in MOBILENET_V1_BLOCKS[:depth] if cin == cout and stride == 1}
        if set(skip) - shape_preserving:
            raise ValueError(f"skip: only stride-1 blocks whose input and output widths match can be left out "
                             f"({', '.join(sorted(shape_preserving))}), got {sorted(set(skip) - shape_preserving)}")
        self.widen_factor = float(widen_factor)
        self.blocks = tuple(b for b in MOBILENET_V1_BLOCKS[:depth] if b[0] not in skip)
        # a full-depth checkpoint (3DDFA_V2's) loads into a shortened trunk: its dropped blocks are ignored like fc
        kept = {name for name, *_ in self.blocks}
        self.classifier_prefixes = type(self).classifier_prefixes + tuple(
            f"{name}." for name, *_ in MOBILENET_V1_BLOCKS if name not in kept)

        def c(ch: int) -> int:
            return int(ch * widen_factor)

        self.conv1 = nn.Conv2d(3, c(32), 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c(32))
        self.relu = nn.ReLU(inplace=True)
        for name, cin, cout, stride in self.blocks:
            self.add_module(name, DepthWiseBlock(c(cin), c(cout), stride))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c(self.blocks[-1][2])
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else None
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for name, *_ in self.blocks:
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.fc is None else self.fc(features)


def _build(widen_factor: float, num_classes: int, pretrained: str | None,
           depth: int = len(MOBILENET_V1_BLOCKS), skip: tuple[str, ...] = ()) -> MobileNetV1:
    model = MobileNetV1(widen_factor, num_classes, depth, skip)
    if pretrained:
        model.load_pretrained(pretrained)
    return model


@register_backbone("mobilenet_v1", **TDDFA_CFG)
def mobilenet_v1(widen_factor: float = 1.0, num_classes: int = 0, pretrained: str | None = None) -> MobileNetV1:
    """MobileNetV1 at any width (``widen_factor``); ``int(1024 * widen_factor)`` pooled features."""
    return _build(widen_factor, num_classes, pretrained)


@register_backbone("mobilenet_v1_050", **TDDFA_CFG)
def mobilenet_v1_050(num_classes: int = 0, pretrained: str | None = None) -> MobileNetV1:
    """MobileNetV1 x0.5 = 3DDFA_V2's ``mb05_120x120`` trunk; 512 pooled features, 0.83 M parameters."""
    return _build(0.5, num_classes, pretrained)


@register_backbone("mobilenet_v1_050_d12", **TDDFA_CFG)
def mobilenet_v1_050_d12(num_classes: int = 0, pretrained: str | None = None) -> MobileNetV1:
    """MobileNetV1 x0.5 without its last block (``dw6``): 3DDFA_V2's trunk up to ``dw5_6``, 512 pooled features,
    0.57 M parameters; ~9 % fewer MACs than :func:`mobilenet_v1_050` at 96 px (the default model's speed target)."""
    return _build(0.5, num_classes, pretrained, depth=12)


@register_backbone("mobilenet_v1_050_m3", **TDDFA_CFG)
def mobilenet_v1_050_m3(num_classes: int = 0, pretrained: str | None = None) -> MobileNetV1:
    """MobileNetV1 x0.5 with three of its five repeated 256-channel blocks (``dw5_4``, ``dw5_5`` skipped):
    0.68 M parameters, 512 pooled features, 0.82 x :func:`mobilenet_v1_050`'s MACs at 96 px."""
    return _build(0.5, num_classes, pretrained, skip=("dw5_4", "dw5_5"))
