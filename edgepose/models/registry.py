"""timm-style model registry (public names; the names live in ``_registry``, construction in
``_factory``, so backbones import the registry without an import circle).

Backbones register themselves with :func:`register_backbone`; :func:`create_model` joins a
backbone with a pose head into a :class:`edgepose.models.pose_model.PoseModel`::

    model = create_model("resnet18", head="6d")                  # 6D + Gram-Schmidt
    model = create_model("mobilenetv3_small", head="6d+bins", input_size=128)
    list_models("repvgg*")                                       # ['repvgg_a0', 'repvgg_b0', 'repvgg_b1g2']
"""
from __future__ import annotations

from ._factory import backbone_default_cfg, create_backbone, create_model, list_models
from ._registry import BACKBONES, register_backbone

__all__ = ["BACKBONES", "register_backbone", "list_models", "backbone_default_cfg", "create_backbone",
           "create_model"]
