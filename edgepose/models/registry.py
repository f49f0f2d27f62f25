"""timm-style model registry.

Backbones register themselves with :func:`register_backbone`; :func:`create_model` joins a
backbone with a pose head into a :class:`edgepose.models.pose_model.PoseModel`::

    model = create_model("resnet18", head="6d")                  # 6D + Gram-Schmidt
    model = create_model("mobilenetv3_small", head="6d+bins", input_size=128)
    list_models("repvgg*")                                       # ['repvgg_a0', 'repvgg_b0', 'repvgg_b1g2']
"""
from __future__ import annotations

import fnmatch
from typing import Callable

_BACKBONES: dict[str, Callable] = {}
_DEFAULT_CFG: dict[str, dict] = {}


def register_backbone(name: str | None = None, **default_cfg):
    """Decorator: register a backbone factory ``fn(**kw) -> nn.Module``.

    The module must expose ``num_features`` (pooled feature width) and
    ``forward_features(x) -> (N, num_features)``.  ``default_cfg`` may hold e.g.
    ``input_size`` and ``mean``/``std`` for its pretrained weights, and ``imported_only=True`` for
    backbones that only an importer can build (hidden from :func:`list_models` and training).
    """

    def deco(fn):
        key = name or fn.__name__
        if key in _BACKBONES:
            raise ValueError(f"backbone {key!r} registered twice")
        _BACKBONES[key] = fn
        _DEFAULT_CFG[key] = dict(default_cfg)
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the modules runs their @register_backbone decorators.
    from . import backbones  # noqa: F401


def list_models(pattern: str = "*", include_imported: bool = False) -> list[str]:
    """Registered backbones; those that only an importer can build (``imported_only=True`` in their
    default cfg: e.g. converted ONNX graphs, which need the graph) are listed with ``include_imported``."""
    _ensure_loaded()
    return sorted(n for n in _BACKBONES if fnmatch.fnmatch(n, pattern)
                  and (include_imported or not _DEFAULT_CFG[n].get("imported_only")))


def backbone_default_cfg(name: str) -> dict:
    _ensure_loaded()
    return dict(_DEFAULT_CFG[name])


def create_backbone(name: str, **kw):
    _ensure_loaded()
    if name not in _BACKBONES:
        from ..errors import ModelError

        raise ModelError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _BACKBONES[name](**kw)


def create_model(name: str, head: str = "6d", pretrained: str | None = None, **kw):
    """Backbone ``name`` + pose head -> PoseModel.  See PoseModel for the head options."""
    from .pose_model import PoseModel

    return PoseModel.build(name, head=head, pretrained=pretrained, **kw)
