"""Activation-level check of our EfficientNet-B0 against Keras itself.

Run the *writer* with a Python that has Keras 3 + TensorFlow (it imports nothing from edgepose)::

    python edgepose/importers/keras_reference.py ref.npz        # random-weight keras EfficientNetB0

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

import sys

import numpy as np

__all__ = ["write_reference", "read_reference", "compare_with_keras"]


def write_reference(out_path: str, seed: int = 0) -> None:  # runs in a Keras/TensorFlow environment
    import keras

    model = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(224, 224, 3),
                                              pooling="avg")
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    n = 0
    for layer in model.layers:
        if not layer.weights or type(layer).__name__ in ("Normalization", "Rescaling"):
            continue
        names, values = [], []
        for w in layer.weights:
            name = w.name.split("/")[-1].split(":")[0]
            shape = tuple(w.shape)
            if name == "gamma":
                a = rng.uniform(0.5, 1.5, shape)
            elif name in ("beta", "moving_mean"):
                a = rng.normal(0.0, 0.2, shape)
            elif name == "moving_variance":
                a = rng.uniform(0.2, 2.0, shape)
            elif name == "bias":
                a = rng.normal(0.0, 0.1, shape)
            else:
                a = rng.normal(0.0, 1.0, shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
            names.append("depthwise_kernel" if type(layer).__name__ == "DepthwiseConv2D" and name == "kernel" else name)
            values.append(a.astype(np.float32))
        layer.set_weights(values)
        data[f"L{n}_names"] = np.array([layer.name, *names])
        data.update({f"L{n}_{j}": v for j, v in enumerate(values)})
        n += 1
    x = rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    data.update(x=x, y=np.asarray(model.predict(x, verbose=0)), n=np.array(n), keras=np.array(keras.__version__))
    np.savez(out_path, **data)


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


if __name__ == "__main__":  # pragma: no cover - runs under a Keras interpreter
    write_reference(sys.argv[1] if len(sys.argv) > 1 else "keras_efficientnet_b0_ref.npz")
