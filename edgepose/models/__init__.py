"""Models: our own backbones (no torchvision/timm at run time) and pose heads.

Public API: :func:`create_model`, :func:`list_models`, :class:`PoseModel`, :class:`PoseOutput`.
"""
from .registry import create_model, list_models, register_backbone  # noqa: F401

__all__ = ["create_model", "list_models", "register_backbone"]
