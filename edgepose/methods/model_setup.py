"""Model section of a training config -> :class:`edgepose.models.PoseModel` and the run's preprocessing.

Beside the Method interface because methods build their trainable module from it."""
from __future__ import annotations

from ..errors import ModelError
from typing import Any

__all__ = ["build_pose_model", "training_spec"]


def build_pose_model(model_cfg: Any, spec):
    """``create_model`` with the run's preprocessing spec, so the checkpoint's metadata records
    exactly how the training crops were made (export and runtimes read it from there)."""
    from ..models import create_model
    from ..models.pretrained_sources import check_spec

    # one-line errors naming model.pretrained; a registry file is downloaded (once, then cached) by create_model
    check_spec(model_cfg.pretrained, model_cfg.name, key="model.pretrained")
    kw = dict(model_cfg.kwargs)
    if model_cfg.bins:
        kw["bins"] = model_cfg.bins
    return create_model(model_cfg.name, head=model_cfg.head, pretrained=model_cfg.pretrained,
                        preprocess=spec, **kw)


def training_spec(model_cfg: Any, crop_scale: float | None, color_order: str | None):
    """The preprocessing of a run: the backbone's defaults (mean/std/colour order of its
    pretrained weights) + the config's input size, crop scale and colour-order override."""
    from ..models.registry import backbone_default_cfg, list_models
    from ..preprocess import CropPolicy, PreprocessSpec

    if model_cfg.name not in list_models():
        raise ModelError(f"model.name: unknown model {model_cfg.name!r}; available: {', '.join(list_models())}")
    d = backbone_default_cfg(model_cfg.name)
    kw = {k: d[k] for k in ("mean", "std") if k in d}
    crop = CropPolicy(scale=crop_scale) if crop_scale is not None else CropPolicy()
    return PreprocessSpec(input_size=model_cfg.input_size, color_order=color_order or d.get("color_order", "RGB"),
                          crop=crop, **kw)
