"""The INT8 head of a multi-stream net (FSA-Net style): everything after *any* pooled-features node.

A one-stream trunk has one pooling node with no convolution after it; a multi-stream net pools each
stream. Before ``head_nodes`` took the union, the quantizer excluded what followed the first pool in
its (pre-processed) graph's order and the lint checked what followed the first pool in the output's
order, so a layer after the other stream's pool got INT8 weights and the tensorrt profile failed.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgepose.quantize.graph import descendants, find_feature_pool, find_feature_pools, head_node_names  # noqa: E402
from edgepose.quantize.lint import lint_qdq  # noqa: E402
from edgepose.quantize.ptq import quantize_onnx  # noqa: E402

SIZE = 16


def _two_streams(path, b_first: bool = False):
    """input -> conv_a -> pool_a -> flat_a ---------------------> add -> 6D
       input -> conv_b -> pool_b -> flat_b -> mm_b (weights) --/        (stream b has a layer of its own)"""
    from onnx import helper
    from onnx_graphs import save_pose_graph

    rng = np.random.default_rng(0)
    init = {"wa": rng.standard_normal((8, 3, 3, 3)), "wb": rng.standard_normal((8, 3, 3, 3)),
            "mb": rng.standard_normal((8, 8)), "w6": 0.1 * rng.standard_normal((8, 6)),
            "b6": np.array([1, 0, 0, 0, 1, 0])}
    stream = {s: [helper.make_node("Conv", ["input", f"w{s}"], [f"c{s}"], name=f"conv_{s}", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{s}"], [f"r{s}"], name=f"relu_{s}"),
                  helper.make_node("GlobalAveragePool", [f"r{s}"], [f"p{s}"], name=f"pool_{s}"),
                  helper.make_node("Flatten", [f"p{s}"], [f"f{s}"], name=f"flat_{s}")] for s in "ab"}
    stream["b"].append(helper.make_node("MatMul", ["fb", "mb"], ["gb"], name="mm_b"))
    tail = [helper.make_node("Add", ["fa", "gb"], ["feat"], name="add"),
            helper.make_node("Gemm", ["feat", "w6", "b6"], ["sixd"], name="sixd")]
    nodes = (stream["b"] + stream["a"] if b_first else stream["a"] + stream["b"]) + tail
    return save_pose_graph(path, "two-streams", nodes, init, SIZE)


@pytest.mark.parametrize("b_first", [False, True])
def test_head_is_everything_after_any_pool(tmp_path, b_first):
    g = onnx.load(str(_two_streams(tmp_path / "m.onnx", b_first))).graph
    assert {p.name for p in find_feature_pools(g)} == {"pool_a", "pool_b"}
    assert set(head_node_names(g)) == {"pool_a", "pool_b", "flat_a", "flat_b", "mm_b", "add", "sixd"}
    # what the first pool alone reaches depends on the listing order: the reason for the union
    first = {n.name for n in descendants(g, find_feature_pool(g))}
    assert ("mm_b" in first) == b_first


@pytest.mark.parametrize("b_first", [False, True])
def test_tensorrt_profile_keeps_every_stream_head_float(tmp_path, b_first):
    fp32 = _two_streams(tmp_path / "m.onnx", b_first)
    crops = np.random.default_rng(1).standard_normal((8, 3, SIZE, SIZE)).astype(np.float32)
    res = quantize_onnx(fp32, tmp_path / "m-trt.onnx", crops, "tensorrt", command="test")
    m = onnx.load(str(res.path))
    assert lint_qdq(m) == []
    assert {"pool_a", "pool_b", "sixd"} <= set(res.excluded_nodes)
    assert any(n.startswith("mm_b") for n in res.excluded_nodes)  # ORT's pre-processing may fuse it with the Add
    assert res.num_q >= 2  # the two convolutions are INT8


def _batched_weight(path):
    """input -> MatMul(x, W[3, S, S]) -> conv -> relu -> pool -> 6D: a batched constant weight before the head."""
    from onnx import helper
    from onnx_graphs import save_pose_graph

    rng = np.random.default_rng(2)
    init = {"wt": 0.2 * rng.standard_normal((3, SIZE, SIZE)), "wc": rng.standard_normal((8, 3, 3, 3)),
            "w6": 0.1 * rng.standard_normal((8, 6)), "b6": np.array([1, 0, 0, 0, 1, 0])}
    nodes = [helper.make_node("MatMul", ["input", "wt"], ["t"], name="transform"),
             helper.make_node("Conv", ["t", "wc"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("ReduceMean", ["r"], ["p"], name="pool", axes=[2, 3], keepdims=0),
             helper.make_node("Gemm", ["p", "w6", "b6"], ["sixd"], name="sixd")]
    return save_pose_graph(path, "batched-weight", nodes, init, SIZE)


def test_tensorrt_profile_keeps_batched_weight_matmuls_float(tmp_path):
    from edgepose.quantize.graph import batched_weight_matmuls

    fp32 = _batched_weight(tmp_path / "m.onnx")
    assert batched_weight_matmuls(onnx.load(str(fp32)).graph) == ["transform"]
    crops = np.random.default_rng(3).standard_normal((8, 3, SIZE, SIZE)).astype(np.float32)
    trt = quantize_onnx(fp32, tmp_path / "m-trt.onnx", crops, "tensorrt", command="test")
    assert lint_qdq(onnx.load(str(trt.path))) == [] and "transform" in trt.excluded_nodes
    cpu = quantize_onnx(fp32, tmp_path / "m-cpu.onnx", crops, "cpu", command="test")
    assert "transform" not in cpu.excluded_nodes  # per-tensor weights are fine on ORT's CPU kernels
