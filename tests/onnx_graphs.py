"""Tiny hand-built ONNX pose models for tests: real graphs ONNX Runtime runs, with an edgepose sidecar,
so they load through edgepose.runtime / edgepose.quantize like any exported model."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def save_pose_graph(path: Path, name: str, nodes: list, init: dict[str, np.ndarray], size: int,
                    output: str = "sixd") -> Path:
    """Save ``nodes`` (input ``input`` (batch, 3, size, size) -> ``output`` (batch, 6), a 6D head) with float32
    initializers ``init`` as opset-17 ONNX at ``path``, plus the sidecar that says how to feed it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgepose.metadata import ArtifactMetadata, save_sidecar
    from edgepose.preprocess import PreprocessSpec

    g = helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
                          [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 6])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in init.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    save_sidecar(path, ArtifactMetadata(model=name, head="6d", preprocess=PreprocessSpec(input_size=size),
                                        format="onnx"))
    return path
