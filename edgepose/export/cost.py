"""How much arithmetic a model does and how much of the CPU it uses: MACs counted from an ONNX graph and a
single-core GEMM peak measured on this machine.

MACs (multiply-accumulates) per image: every Conv (``out_h * out_w * out_c * in_c / groups * kh * kw``),
Gemm and MatMul (``M * N * K``) of the graph, from ONNX shape inference at batch 1. Element-wise work
(ReLU, BatchNorm folded or not, pooling) is left out, as MAC tables usually do. The peak is what ONNX
Runtime's MatMul reaches on one thread for large square float32 matrices, the best case for this core;
``2 * MACs / time / peak`` says how far a small network is from it (depthwise convolutions and small
feature maps keep mobile networks far below).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["onnx_macs", "gemm_peak_gflops"]


def _dims(value_info) -> list[int] | None:
    shape = value_info.type.tensor_type.shape
    out = []
    for d in shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            return None
    return out


def onnx_macs(path: str | Path, batch: int = 1) -> int:
    """Multiply-accumulates for one image of the FP32 graph at ``path`` (dynamic batch fixed to ``batch``)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    for inp in model.graph.input:  # fix a symbolic batch so every shape is concrete
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
    model = shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w, y = shapes.get(node.input[1]), shapes.get(node.output[0])
            if w is None or y is None:
                continue
            # weight (out_c, in_c / groups, kh, kw): each output value costs in_c/groups * kh * kw MACs
            macs += int(np.prod(y)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, y = shapes.get(node.input[0]), shapes.get(node.output[0])
            if a is None or y is None:
                continue
            transposed = node.op_type == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if transposed else a[-1]
            macs += int(np.prod(y)) * int(k)
    return macs // batch


def gemm_peak_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Single-thread float32 GEMM rate of ONNX Runtime on this CPU (GFLOP/s; 2 FLOPs per MAC), best of ``repeats``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    sess.run(None, {"a": x, "b": y})
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {"a": x, "b": y})
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9
