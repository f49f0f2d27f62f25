"""The model registry: backbone names -> factories, and each one's default cfg (timm's
``_registry.py``).  Backbones register here with :func:`register_backbone`; building a model is
:mod:`edgepose.models._factory`'s job.  This module imports no backbone (checked by
.importlinter), so a backbone module can import it without an import circle.
"""
from __future__ import annotations

from typing import Callable

from ..errors import ModelError
from ..registry import Registry

__all__ = ["BACKBONES", "register_backbone"]

#: backbone name -> ``fn(**kw) -> nn.Module``; info = its default cfg (input size, mean/std,
#: ``imported_only``: only an importer can build it, so it is hidden from listings)
BACKBONES: Registry[Callable] = Registry("model", error=ModelError, hide="imported_only")


def register_backbone(name: str | None = None, **default_cfg):
    """Decorator: register a backbone factory ``fn(**kw) -> nn.Module``.

    The module must expose ``num_features`` (pooled feature width) and
    ``forward_features(x) -> (N, num_features)``.  ``default_cfg`` may hold e.g.
    ``input_size`` and ``mean``/``std`` for its pretrained weights, and ``imported_only=True`` for
    backbones that only an importer can build (hidden from :func:`list_models` and training).
    """
    return BACKBONES.register(name, **default_cfg)
