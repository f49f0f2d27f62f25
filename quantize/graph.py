"""ONNX graph helpers shared by PTQ and the Q/DQ lint: where the backbone ends and the head starts.

The *head* is everything downstream of the backbone's pooled features: the final FC / 6D layer,
Gram-Schmidt, the bin softmax and the Euler decode.  INT8 hurts these regression layers most
(docs/quantization.md, "Profiles": why the head stays in float), so both profiles keep them in float.

The pooled-features nodes are found from the graph, not from names: the pooling nodes
(ReduceMean / GlobalAveragePool / ...) from which no Conv is reachable.  Squeeze-and-excitation
blocks also pool, but their result feeds 1x1 convolutions, so they never qualify.  A one-stream
trunk (every edgepose student) has one such node; a multi-stream net such as FSA-Net pools each
stream and aggregates the pooled maps (attention, capsules, stage-wise regression), so its head is
the pools and everything downstream of *any* of them (:func:`head_nodes`), whatever order the nodes
are listed in.
"""
from __future__ import annotations

from collections import defaultdict, deque

from edgepose.errors import ModelError

__all__ = ["POOL_OPS", "consumers", "producers", "descendants", "find_feature_pools", "find_feature_pool",
           "head_nodes", "head_node_names", "batched_weight_matmuls", "node_attr", "opset_of"]

POOL_OPS = ("GlobalAveragePool", "ReduceMean", "GlobalMaxPool", "ReduceMax", "AveragePool")
_CONV_OPS = ("Conv", "ConvInteger", "QLinearConv")


def consumers(graph) -> dict[str, list]:
    """tensor name -> nodes that read it."""
    out: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                out[name].append(node)
    return out


def producers(graph) -> dict[str, object]:
    """tensor name -> the node that writes it."""
    return {name: node for node in graph.node for name in node.output if name}


def descendants(graph, node) -> list:
    """Nodes reachable from ``node``'s outputs (excluding ``node``), in graph order."""
    cons = consumers(graph)
    seen: set[int] = set()
    queue = deque(node.output)
    while queue:
        tensor = queue.popleft()
        for nxt in cons.get(tensor, ()):
            if id(nxt) not in seen:
                seen.add(id(nxt))
                queue.extend(nxt.output)
    return [n for n in graph.node if id(n) in seen]


def find_feature_pools(graph) -> list:
    """Every pooling node from which no convolution is reachable, in graph order (see module docstring)."""
    pools = [node for node in graph.node
             if node.op_type in POOL_OPS and not any(d.op_type in _CONV_OPS for d in descendants(graph, node))]
    if not pools:
        raise ModelError("cannot find the backbone's pooled features in the ONNX graph (no pooling node "
                         "without a convolution after it); export the model with `edgepose export`")
    return pools


def find_feature_pool(graph):
    """The first pooled-features node: the one a one-stream trunk has (later poolings are in its head)."""
    return find_feature_pools(graph)[0]


def head_nodes(graph) -> list:
    """The pooled-features nodes and every node downstream of any of them, in graph order: the head both INT8
    profiles keep in float. The pools themselves are in it because ONNX Runtime quantizes an AveragePool /
    GlobalAveragePool's output (a Q on the pooled features, the head's input); a ReduceMean pool, what every
    torch export here has, is left alone by ORT either way, so excluding it changes no file."""
    # keyed by output tensor names (unique in a valid graph): protobuf hands out a new wrapper object per
    # access, so identities from separate walks of the graph cannot be compared
    pools = find_feature_pools(graph)
    below = {t for pool in pools for n in [pool, *descendants(graph, pool)] for t in n.output}
    return [n for n in graph.node if any(t in below for t in n.output)]


def head_node_names(graph) -> list[str]:
    """Names of :func:`head_nodes` (ORT's ``nodes_to_exclude`` takes names)."""
    nodes = head_nodes(graph)
    unnamed = [n for n in nodes if not n.name]
    if unnamed:
        raise ModelError(f"{len(unnamed)} head node(s) have no name, so they cannot be excluded from "
                         f"quantization; re-export the model (onnxslim keeps names)")
    return [n.name for n in nodes]


def batched_weight_matmuls(graph) -> list[str]:
    """Names of MatMul nodes whose constant weight has more than two dimensions (FSA-Net's capsule
    transforms): per-channel scales need a 2-D weight, so ORT gives them one per-tensor scale, which the
    tensorrt profile's Q/DQ lint refuses; that profile keeps them in float."""
    inits = {t.name: len(t.dims) for t in graph.initializer}
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and n.name and any(inits.get(i, 0) > 2 for i in n.input[:2])]


def node_attr(node, name: str, default=None):
    """The value of ``node``'s attribute ``name`` (ints, floats, lists, tensors as ONNX gives them), or ``default``."""
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


def opset_of(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
