"""ONNX graph helpers shared by PTQ and the Q/DQ lint: where the backbone ends and the head starts.

The *head* is everything downstream of the backbone's pooled features: the final FC / 6D layer,
Gram-Schmidt, the bin softmax and the Euler decode.  INT8 hurts these regression layers most
(docs/quantization.md, "Profiles": why the head stays in float), so both profiles keep them in float.

The pooled-features node is found from the graph, not from names: it is the pooling node
(ReduceMean / GlobalAveragePool / ...) from which no Conv is reachable.  Squeeze-and-excitation
blocks also pool, but their result feeds 1x1 convolutions, so they never qualify.
"""
from __future__ import annotations

from collections import defaultdict, deque

from edgepose.errors import ModelError

__all__ = ["POOL_OPS", "consumers", "producers", "descendants", "find_feature_pool", "head_node_names", "opset_of"]

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


def find_feature_pool(graph):
    """The node that produces the backbone's pooled features (see module docstring)."""
    candidates = []
    for node in graph.node:
        if node.op_type in POOL_OPS:
            if not any(d.op_type in _CONV_OPS for d in descendants(graph, node)):
                candidates.append(node)
    if not candidates:
        raise ModelError("cannot find the backbone's pooled features in the ONNX graph (no pooling node "
                         "without a convolution after it); export the model with `edgepose export`")
    return candidates[0]  # the first one: later poolings, if any, are inside the head


def head_node_names(graph) -> list[str]:
    """Names of every node after the pooled features: kept in float by both INT8 profiles."""
    pool = find_feature_pool(graph)
    nodes = descendants(graph, pool)
    unnamed = [n for n in nodes if not n.name]
    if unnamed:
        raise ModelError(f"{len(unnamed)} head node(s) have no name, so they cannot be excluded from "
                         f"quantization; re-export the model (onnxslim keeps names)")
    return [n.name for n in nodes]


def opset_of(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
