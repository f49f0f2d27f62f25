"""RepVGG-A0 / B0 / B1g2 (Ding et al., CVPR 2021) with the authors' state-dict keys.

Training form: every block sums a 3x3 conv-BN, a 1x1 conv-BN and (when shapes allow) an
identity BN, then applies ReLU.  :meth:`RepVGG.reparameterize` folds the three branches into one
3x3 conv with bias (``rbr_reparam``), giving a plain VGG-style network for deployment; the
outputs are the same up to float rounding (in eval mode, where BN uses running statistics).
INT8 quantization must run on the re-parameterized form (docs/backbones.md, "RepVGG deployment form").

Keys follow ``DingXiaoH/RepVGG`` (``stage0.rbr_dense.conv.weight``, ``stage1.0.rbr_identity.*``,
``linear.*``), so the authors' ImageNet train-time weights load from a local file.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._registry import register_backbone
from .base import IMAGENET_CFG, Backbone, init_weights

__all__ = ["RepVGG", "RepVGGBlock", "repvgg_a0", "repvgg_b0", "repvgg_b1g2"]


def _conv_bn(cin: int, cout: int, k: int, stride: int, padding: int, groups: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(cout))
    return seq


def _fuse_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """conv (no bias) followed by BN in eval mode == conv with scaled kernel + bias."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.groups = cin, cout, stride, groups
        self.nonlinearity = nn.ReLU()
        self.rbr_identity = nn.BatchNorm2d(cin) if (cin == cout and stride == 1) else None
        self.rbr_dense = _conv_bn(cin, cout, 3, stride, 1, groups)
        self.rbr_1x1 = _conv_bn(cin, cout, 1, stride, 0, groups)
        self.rbr_reparam: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.nonlinearity(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(out)

    @torch.no_grad()
    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 kernel and bias equivalent to the three eval-mode branches."""
        k3, b3 = _fuse_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        k1, b1 = _fuse_bn(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel, bias = k3 + F.pad(k1, [1, 1, 1, 1]), b3 + b1
        if self.rbr_identity is not None:
            # Identity as a grouped 3x3 conv: centre tap 1 on each channel's own input.
            per_group = self.in_channels // self.groups
            ident = torch.zeros_like(k3)
            idx = torch.arange(self.in_channels, device=k3.device)
            ident[idx, idx % per_group, 1, 1] = 1.0
            ki, bi = _fuse_bn(ident, self.rbr_identity)
            kernel, bias = kernel + ki, bias + bi
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.rbr_reparam is not None:
            return
        kernel, bias = self.fused_kernel_bias()
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, 1, groups=self.groups, bias=True)
        conv = conv.to(device=kernel.device, dtype=kernel.dtype)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.rbr_reparam = conv
        # Drop the training branches so the deploy state dict holds only rbr_reparam.
        del self.rbr_dense, self.rbr_1x1
        self.rbr_identity = None
        self.rbr_dense = self.rbr_1x1 = None


class RepVGG(Backbone):
    classifier_prefixes = ("linear.",)

    def __init__(self, num_blocks: tuple[int, int, int, int], width_multiplier: tuple[float, float, float, float],
                 group_layers: frozenset[int] = frozenset(), groups: int = 1, num_classes: int = 0):
        super().__init__()
        self.in_planes = min(64, int(64 * width_multiplier[0]))
        self.stage0 = RepVGGBlock(3, self.in_planes, stride=2)
        # Layer indices count blocks after stage0, starting at 1 (as in the authors' code), so
        # "g2" variants put groups=2 on the same layers as the published weights.
        self._layer_idx = 1
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            width = int(planes * width_multiplier[i])
            blocks = []
            for j in range(n):
                g = groups if self._layer_idx in group_layers else 1
                blocks.append(RepVGGBlock(self.in_planes, width, stride=2 if j == 0 else 1, groups=g))
                self.in_planes = width
                self._layer_idx += 1
            setattr(self, f"stage{i + 1}", nn.Sequential(*blocks))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.in_planes
        self.linear = nn.Linear(self.num_features, num_classes) if num_classes > 0 else None
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage0(x)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return torch.flatten(self.gap(x), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.linear is None else self.linear(features)

    def reparameterize(self) -> None:
        for m in self.modules():
            if isinstance(m, RepVGGBlock):
                m.reparameterize()

    @property
    def is_deploy(self) -> bool:
        return self.stage0.rbr_reparam is not None

    def load_pretrained(self, path) -> None:
        # A deploy-form file (rbr_reparam keys) loads into a re-parameterized model only.
        from ..pretrained import read_state_dict

        if not self.is_deploy and any(".rbr_reparam." in k for k in read_state_dict(path)):
            self.reparameterize()
        super().load_pretrained(path)


_ODD_GROUP_LAYERS = frozenset(range(2, 27, 2))  # the authors' optional_groupwise_layers


def _build(num_blocks, widths, num_classes: int, pretrained: str | None, deploy: bool, groups: int = 1) -> RepVGG:
    model = RepVGG(num_blocks, widths, _ODD_GROUP_LAYERS if groups > 1 else frozenset(), groups, num_classes)
    if pretrained:
        model.load_pretrained(pretrained)
    if deploy:
        model.reparameterize()
    return model


@register_backbone("repvgg_a0", **IMAGENET_CFG)
def repvgg_a0(num_classes: int = 0, pretrained: str | None = None, deploy: bool = False) -> RepVGG:
    """RepVGG-A0: blocks (2, 4, 14, 1), widths x(0.75, 0.75, 0.75, 2.5); 1280 features."""
    return _build((2, 4, 14, 1), (0.75, 0.75, 0.75, 2.5), num_classes, pretrained, deploy)


@register_backbone("repvgg_b0", **IMAGENET_CFG)
def repvgg_b0(num_classes: int = 0, pretrained: str | None = None, deploy: bool = False) -> RepVGG:
    """RepVGG-B0: blocks (4, 6, 16, 1), widths x(1, 1, 1, 2.5); 1280 features."""
    return _build((4, 6, 16, 1), (1, 1, 1, 2.5), num_classes, pretrained, deploy)


@register_backbone("repvgg_b1g2", **IMAGENET_CFG)
def repvgg_b1g2(num_classes: int = 0, pretrained: str | None = None, deploy: bool = False) -> RepVGG:
    """RepVGG-B1g2 (6DRepNet's backbone): widths x(2, 2, 2, 4), groups 2 on even layers; 2048 features."""
    return _build((4, 6, 16, 1), (2, 2, 2, 4), num_classes, pretrained, deploy, groups=2)
