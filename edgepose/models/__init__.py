"""Models: our own backbones (no torchvision/timm at run time) and pose heads.

Public API: :func:`create_model`, :func:`list_models`, :func:`register_backbone`,
:class:`PoseModel` (and :class:`RotationOutput` for exporting R only).  ``PoseModel`` is
imported lazily so that ``import edgepose.models`` stays cheap for the registry alone.
"""
from .registry import create_model, list_models, register_backbone  # noqa: F401

__all__ = ["create_model", "list_models", "register_backbone", "PoseModel", "RotationOutput"]


def __getattr__(name: str):
    if name in ("PoseModel", "RotationOutput"):
        from . import pose_model

        return getattr(pose_model, name)
    raise AttributeError(f"module 'edgepose.models' has no attribute {name!r}")
