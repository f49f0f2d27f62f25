"""What every backbone provides, so PoseModel can treat them alike."""
from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["Backbone", "IMAGENET_CFG"]

# Default preprocessing of ImageNet-trained torchvision / RepVGG weights (RGB, ImageNet mean/std).
IMAGENET_CFG = dict(input_size=224, color_order="RGB", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


class Backbone(nn.Module):
    """A classification network cut before its classifier.

    Subclasses set ``num_features`` (width of the pooled features), implement
    :meth:`forward_features` and name their classifier's state-dict prefixes in
    ``classifier_prefixes`` (ignored when loading ImageNet weights into a pose model).
    ``forward`` runs the classifier when one was built (``num_classes > 0``), which keeps
    the full ImageNet architecture available for parameter-count and weight-loading checks.
    """

    num_features: int = 0
    classifier_prefixes: tuple[str, ...] = ()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Apply the ImageNet classifier; identity when the backbone was built without one."""
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.forward_features(x))

    def reparameterize(self) -> None:
        """Convert to the deployment form; a no-op for single-branch networks."""

    @property
    def is_deploy(self) -> bool:
        return False

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load ImageNet weights from a local file, ignoring the classifier."""
        from ..pretrained import load_pretrained

        load_pretrained(self, path, ignore_prefixes=self.classifier_prefixes, what=type(self).__name__)


def init_weights(module: nn.Module) -> None:
    """torchvision's initialisation: Kaiming (fan_out) convs, unit BN, small-normal linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
