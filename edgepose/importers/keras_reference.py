"""Activation-level check of our EfficientNet-B0 against Keras itself.

Run the *writer*, ``tools/keras_reference.py`` (a developer tool outside the package), with a Python that
has Keras 3 + TensorFlow (it imports nothing from edgepose)::

    python tools/keras_reference.py ref.npz        # random-weight keras EfficientNetB0 -> ref.npz

then compare in the edgepose environment (``tests/test_efficientnet.py`` does this when
``EDGEPOSE_KERAS_PYTHON`` names such a Python)::

    from edgepose.importers.keras_reference import compare_with_keras
    compare_with_keras("ref.npz")      # -> max |features_torch - features_keras|

The Keras model is ``keras.applications.EfficientNetB0(include_top=False, weights=None,
pooling="avg")``: the same architecture as the ``efficientnet`` package WHENet was built with
(TF "same" padding via ``ZeroPadding2D(correct_pad)`` + valid convs, BN eps 1e-3, swish, SE).
Its un-adapted ``Normalization`` layer is the identity, so Keras sees ``x`` and we feed ``x/255``.
Random BN statistics make a wrong epsilon or padding visible.
"""
from __future__ import annotations

import numpy as np

__all__ = ["read_reference", "compare_with_keras"]


def read_reference(path: str):
    """(KerasLayer list in model order, input NHWC 0..255, Keras pooled features)."""
    from .keras_h5 import KerasLayer

    d = np.load(path)
    layers = []
    for i in range(int(d["n"])):
        meta = [str(s) for s in d[f"L{i}_names"]]
        layers.append(KerasLayer(meta[0], {name: d[f"L{i}_{j}"] for j, name in enumerate(meta[1:])}))
    return layers, d["x"], d["y"]


def compare_with_keras(path: str, **backbone_kw) -> float:
    """Max |our pooled features - Keras pooled features| with the reference's weights."""
    import torch

    from ..models.backbones.efficientnet import efficientnet_b0
    from .whenet_weights import load_trunk

    layers, x, y = read_reference(path)
    net = efficientnet_b0(**backbone_kw).eval()
    load_trunk(net, layers)
    with torch.no_grad():
        f = net.forward_features(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)) / 255.0).float())
    return float(np.abs(f.numpy() - y).max())

