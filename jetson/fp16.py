"""FP16 ONNX conversion for strongly typed TensorRT builds (TensorRT 11 has no BuilderFlag.FP16).

Uses ``onnxconverter_common.float16.convert_float_to_float16`` with ``keep_io_types=True`` (the
engine still takes and returns float32, so the runtime and DeepStream need no change).  The
pose *decode* stays float32 on purpose (docs/quantization.md, why the head stays in float: Gram-Schmidt and the Euler atan2s
lose too much in half precision): every terminal weighted layer (the last Conv/Gemm/MatMul on
each path to an output, i.e. the head FCs) and everything after it is put on the block list.
Chosen over ModelOpt AutoCast because it is a small pure-Python wheel that installs and runs
here, so the converted graph is checked in onnxruntime on the CPU (tests/test_trt_fp16.py).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from edgepose.errors import ModelError, require
from edgepose.metadata import atomic_write_bytes, file_sha256, load_metadata, save_sidecar, MetadataError

__all__ = ["convert_fp16", "decode_tail_nodes", "drop_fp16_round_trips", "HEAVY_OPS"]

log = logging.getLogger(__name__)

HEAVY_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def decode_tail_nodes(graph) -> list[str]:
    """Names of the terminal weighted layers and every node downstream of them.

    A weighted node is *terminal* when no other weighted node depends on it (the head FCs);
    those nodes and all their descendants form the float32 tail.
    """
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def descendants(node) -> list:
        seen, stack, out = set(), [node], []
        while stack:
            n = stack.pop()
            for o in n.output:
                for c in consumers.get(o, []):
                    if id(c) not in seen:
                        seen.add(id(c))
                        out.append(c)
                        stack.append(c)
        return out

    tail: dict[int, object] = {}
    for node in graph.node:
        if node.op_type not in HEAVY_OPS:
            continue
        below = descendants(node)
        if any(d.op_type in HEAVY_OPS for d in below):
            continue
        for n in [node] + below:
            tail[id(n)] = n
    # unnamed nodes cannot be block-listed by name: name them first (stable, index based)
    names = []
    for i, node in enumerate(graph.node):
        if id(node) in tail:
            if not node.name:
                node.name = f"edgepose_fp32_tail_{i}"
            names.append(node.name)
    return names


def _convert(float16, model, block: list[str]):
    """convert_float_to_float16 with our own Cast-pair clean-up.

    onnxconverter-common 1.16's ``remove_unnecessary_cast_node`` crashes (``'list' object has no
    attribute 'input'``) when a removable Cast pair feeds several nodes, which our float32 tail
    produces, so it is disabled and :func:`drop_fp16_round_trips` does that job.
    """
    original = float16.remove_unnecessary_cast_node
    float16.remove_unnecessary_cast_node = lambda graph: None
    try:
        converted = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=block)
    except Exception as exc:
        raise ModelError(f"FP16 conversion failed: {exc}") from None
    finally:
        float16.remove_unnecessary_cast_node = original
    removed = drop_fp16_round_trips(converted.graph)
    log.debug("removed %d float32->float16->float32 round trips", removed)
    return converted


def drop_fp16_round_trips(graph) -> int:
    """Remove ``Cast(to=float16) -> Cast(to=float)`` pairs.

    The converter wraps each block-listed node separately, so two float32 tail nodes talk
    through float16 (``X -> Cast16 -> Cast32 -> Y``).  The second Cast becomes an Identity of the
    first Cast's input (the value never leaves float32); unused first Casts are removed.
    Returns the number of pairs rewired.
    """
    from onnx import TensorProto, helper

    def cast_to(node) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    producer = {o: n for n in graph.node for o in n.output}
    rewired = 0
    for idx, node in enumerate(list(graph.node)):
        if cast_to(node) != TensorProto.FLOAT:
            continue
        first = producer.get(node.input[0])
        if first is None or cast_to(first) != TensorProto.FLOAT16:
            continue
        identity = helper.make_node("Identity", [first.input[0]], list(node.output), name=node.name)
        pos = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(pos, identity)
        rewired += 1
    # collapse the new Identities except those that name a graph output
    outputs = {o.name for o in graph.output}
    for ident in [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in outputs
                  and n.name and n.output[0] and cast_to(n) is None]:
        src, dst = ident.input[0], ident.output[0]
        for n in graph.node:
            for k, name in enumerate(n.input):
                if name == dst:
                    n.input[k] = src
        graph.node.remove(ident)
    used = {i for n in graph.node for i in n.input} | outputs
    for node in [n for n in graph.node if cast_to(n) == TensorProto.FLOAT16]:
        if not any(o in used for o in node.output):
            graph.node.remove(node)
    live = {o for n in graph.node for o in n.output}
    for vi in [v for v in graph.value_info if v.name not in live]:
        graph.value_info.remove(vi)
    return rewired


def convert_fp16(onnx_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
                 keep_decode_fp32: bool = True) -> Path:
    """Write ``<stem>.fp16.onnx`` (float16 weights/activations, float32 IO) with its sidecar."""
    onnx = require("onnx", "cpu", "FP16 ONNX conversion")
    float16 = require("onnxconverter_common.float16", "fp16",
                      "FP16 ONNX conversion for TensorRT 11 (strongly typed FP16)")
    src = Path(onnx_path)
    if not src.is_file():
        raise ModelError(f"ONNX model not found: {src}")
    out = Path(out_path) if out_path else src.with_name(src.stem + ".fp16.onnx")
    try:
        model = onnx.load(str(src))
    except Exception as exc:
        raise ModelError(f"cannot read ONNX {src}: {exc}") from None
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        raise ModelError(f"{src} already holds float16 weights; pass the FP32 ONNX from `edgepose export`")
    block = decode_tail_nodes(model.graph) if keep_decode_fp32 else []
    log.info("FP16 conversion of %s: %d tail nodes kept float32", src.name, len(block))
    converted = _convert(float16, model, block)
    atomic_write_bytes(out, converted.SerializeToString())
    try:
        meta = load_metadata(src)
    except MetadataError:
        log.warning("%s has no edgepose metadata; %s gets no sidecar", src, out)
        return out
    derived = meta.derive(precision="fp16", format="onnx",
                          provenance={**meta.provenance, "parent_sha256": file_sha256(src),
                                      "parent": src.name, "fp16": "onnxconverter-common, float32 IO + decode"})
    save_sidecar(out, derived)
    return out
