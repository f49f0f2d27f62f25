"""FP32 networks with their weights stored as float16: half the bytes, the same arithmetic.

The default model ships three files in a 5 MB package budget. Its FP32 file is mostly weights, so each large
float32 initializer is stored as float16 and cast back to float32 by a ``Cast`` node in front of its users.
ONNX Runtime folds those casts when it opens the session (constant folding), so the network runs in float32
exactly as before; only the weights are rounded to float16 (11 significant bits, about 3 decimal digits), a
change far below what the pose head can resolve (``tests/test_weight_storage.py`` bounds it).

TensorRT wants plain float32 weights for an FP32 or FP16 build: :func:`materialize_fp32_weights` turns such a
file back into an ordinary FP32 graph (``edgepose engine build`` does it before parsing), and
:func:`stores_fp16_weights` tells the two kinds apart from a real FP16 model.
"""
from __future__ import annotations

import numpy as np

__all__ = ["store_weights_fp16", "materialize_fp32_weights", "stores_fp16_weights", "SUFFIX"]

SUFFIX = "__fp16_storage"  # name of the float16 initializer; the Cast's output keeps the original name
MIN_ELEMENTS = 1024  # smaller tensors (biases, BN folded scales) stay float32: they cost nothing


def store_weights_fp16(model, min_elements: int = MIN_ELEMENTS):
    """``onnx.ModelProto`` -> a copy whose float32 initializers of at least ``min_elements`` values are float16
    behind a Cast to float32. Inputs, outputs and every computation stay float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    graph_inputs = {i.name for i in graph.input}
    keep, casts = [], []
    for init in graph.initializer:
        if (init.data_type != TensorProto.FLOAT or init.name in graph_inputs
                or int(np.prod(init.dims)) < min_elements):
            keep.append(init)
            continue
        value = numpy_helper.to_array(init)
        if not np.all(np.isfinite(value.astype(np.float16))):  # out of float16's range: leave it exact
            keep.append(init)
            continue
        keep.append(numpy_helper.from_array(value.astype(np.float16), init.name + SUFFIX))
        casts.append(helper.make_node("Cast", [init.name + SUFFIX], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}{SUFFIX}_cast"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts first: the graph stays topologically sorted
    return out


def stores_fp16_weights(model) -> bool:
    """True when every float16 initializer only feeds a Cast to float32 (:func:`store_weights_fp16`'s pattern)."""
    from onnx import TensorProto

    fp16 = {i.name for i in model.graph.initializer if i.data_type == TensorProto.FLOAT16}
    if not fp16:
        return False
    users: dict[str, list] = {n: [] for n in fp16}
    for node in model.graph.node:
        for name in node.input:
            if name in users:
                users[name].append(node)
    return all(us and all(u.op_type == "Cast" and any(a.name == "to" and a.i == TensorProto.FLOAT for a in u.attribute)
                          for u in us) for us in users.values())


def materialize_fp32_weights(model):
    """The inverse of :func:`store_weights_fp16`: float32 initializers under the original names, casts removed."""
    import onnx
    from onnx import TensorProto, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    fp16 = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT16 and i.name.endswith(SUFFIX)}
    cast_outputs = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "Cast" and len(node.input) == 1 and node.input[0] in fp16:
            cast_outputs[node.output[0]] = fp16[node.input[0]]
            continue
        nodes.append(node)
    inits = [i for i in graph.initializer if i.name not in fp16]
    for name, init in cast_outputs.items():
        inits.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), name))
    del graph.initializer[:]
    graph.initializer.extend(inits)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(out)
    return out

