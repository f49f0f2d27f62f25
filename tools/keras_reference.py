"""Write the Keras side of the EfficientNet-B0 activation check (a developer tool, not installed).

    python tools/keras_reference.py ref.npz        # random-weight keras EfficientNetB0 -> ref.npz

Runs under a Python that has Keras 3 + TensorFlow and imports nothing from edgepose (that
environment need not have it).  The edgepose side reads the file with
:func:`edgepose.importers.keras_reference.compare_with_keras`, which documents the format and what
the comparison proves; ``tests/test_efficientnet.py`` runs both when ``EDGEPOSE_KERAS_PYTHON`` names
such a Python.
"""
from __future__ import annotations

import sys

import numpy as np


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


if __name__ == "__main__":  # pragma: no cover - runs under a Keras interpreter
    write_reference(sys.argv[1] if len(sys.argv) > 1 else "keras_efficientnet_b0_ref.npz")
