"""Q/DQ lint for the ``tensorrt`` profile: the rules TensorRT's explicit quantization needs.

Rules (docs/quantization.md, "Q/DQ lint"), each violation reported with the offending node / tensor:

1. ``opset``: default-domain opset >= 13 (per-axis QuantizeLinear);
2. ``zero-point``: every zero point is 0 (TensorRT supports symmetric quantization only);
3. ``int8``: every zero point is signed INT8 (not uint8, int16, int4 ...);
4. ``per-channel``: every Conv / Gemm / MatMul weight is dequantized with one scale per output
   channel (1-D scale, axis 0 for Conv / 1 for Gemm-transB=0);
5. ``bias``: no int32 DequantizeLinear (ORT's QuantizeBias; TensorRT rejects it);
6. ``head``: nothing after the pooled features is quantized (no Q/DQ on head activations, no
   quantized head weights, no QLinear / Integer ops);
7. ``no-qdq``: the model has Q/DQ nodes at all (a float model is not an INT8 artifact);
8. ``operator``: no QOperator-format ops (QLinearConv, ConvInteger, ...: CPU-EP specific).

``lint_qdq(model) -> list[Violation]``; ``check_tensorrt_qdq(model)`` raises
:class:`QDQLintError` listing them all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepose.errors import ModelError

from .graph import find_feature_pools, head_nodes, node_attr, opset_of, producers

__all__ = ["Violation", "QDQLintError", "lint_qdq", "check_tensorrt_qdq"]

_QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
                  "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "ConvInteger",
                  "MatMulInteger", "QGemm", "DynamicQuantizeLinear"}
_WEIGHTED_OPS = {"Conv": 0, "ConvTranspose": 1, "Gemm": None, "MatMul": None}


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


class QDQLintError(ModelError):
    """The model breaks the tensorrt profile's Q/DQ rules; the message lists every violation."""

    def __init__(self, violations: list[Violation], source: str = "model"):
        self.violations = violations
        shown = "\n  ".join(str(v) for v in violations[:30])
        more = f"\n  ... and {len(violations) - 30} more" if len(violations) > 30 else ""
        super().__init__(f"{source} is not a valid TensorRT Q/DQ model ({len(violations)} violation(s)):\n  "
                         f"{shown}{more}\nre-quantize it with `edgepose quantize --profiles tensorrt`")


def _load(model):
    import onnx

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"ONNX file not found: {path}")
        return onnx.load(str(path))
    return model


def _initializers(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _const(name: str, inits: dict, prods: dict):
    """Initializer or Constant-node value of a tensor, else None."""
    if name in inits:
        return inits[name]
    node = prods.get(name)
    if node is not None and node.op_type == "Constant":
        from onnx import numpy_helper

        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    return None


def lint_qdq(model) -> list[Violation]:
    """Every violation of the tensorrt profile's rules (empty list: the model passes)."""
    model = _load(model)
    graph = model.graph
    out: list[Violation] = []
    opset = opset_of(model)
    if opset < 13:
        out.append(Violation("opset", "model", f"opset {opset} < 13: per-channel QuantizeLinear needs opset 13+"))
    inits = _initializers(graph)
    prods = producers(graph)
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        out.append(Violation("no-qdq", "model", "no QuantizeLinear/DequantizeLinear nodes: this is not an INT8 Q/DQ model"))
    for n in graph.node:
        if n.op_type in _QOPERATOR_OPS:
            out.append(Violation("operator", n.name or n.op_type,
                                 f"{n.op_type} is a QOperator-format op; TensorRT needs QuantFormat.QDQ"))

    for n in qdq:
        where = n.name or n.output[0]
        zp = _const(n.input[2], inits, prods) if len(n.input) > 2 and n.input[2] else None
        if n.op_type == "DequantizeLinear":
            x = _const(n.input[0], inits, prods)
            if x is not None and x.dtype == np.int32:
                out.append(Violation("bias", where, "int32 DequantizeLinear (quantized bias); quantize with "
                                                     "QuantizeBias=False, TensorRT handles the bias itself"))
                continue
        if zp is None:
            if n.op_type == "QuantizeLinear":
                # no zero-point input means uint8 output by the ONNX spec
                out.append(Violation("int8", where, "QuantizeLinear without a zero point outputs uint8; "
                                                     "TensorRT needs an int8 zero point of 0"))
            continue
        if zp.dtype != np.int8:
            out.append(Violation("int8", where, f"zero point is {zp.dtype}, TensorRT needs signed int8"))
        if np.any(zp != 0):
            out.append(Violation("zero-point", where, f"non-zero zero point(s) {np.unique(zp)[:5].tolist()}; "
                                                       f"TensorRT supports symmetric quantization only"))

    # per-channel weights on weighted ops
    for n in graph.node:
        if n.op_type not in _WEIGHTED_OPS or len(n.input) < 2:
            continue
        w_src = prods.get(n.input[1])
        if w_src is None or w_src.op_type != "DequantizeLinear":
            continue  # float weights (excluded layer): not a per-channel question
        w = _const(w_src.input[0], inits, prods)
        if w is None:
            continue  # activation x activation MatMul
        scale = _const(w_src.input[1], inits, prods)
        channels = w.shape[0] if n.op_type == "Conv" else w.shape[-1] if n.op_type in ("MatMul",) else (
            w.shape[0] if node_attr(n, "transB", 0) else w.shape[-1])
        if scale is None or scale.ndim != 1 or scale.size != channels:
            out.append(Violation("per-channel", n.name or n.op_type,
                                 f"weight {w_src.input[0]!r} uses a per-tensor scale; quantize with per_channel=True"))

    # head stays in float
    try:
        pools = ", ".join(repr(p.output[0]) for p in find_feature_pools(graph))
        head = head_nodes(graph)
    except ModelError as exc:
        out.append(Violation("head", "model", str(exc)))
        return out
    for n in head:
        where = n.name or n.op_type
        if n.op_type in ("QuantizeLinear",) or n.op_type in _QOPERATOR_OPS:
            out.append(Violation("head", where, f"head activation {n.input[0]!r} is quantized "
                                                 f"(after the pooled features {pools})"))
        elif n.op_type == "DequantizeLinear" and _const(n.input[0], inits, prods) is not None:
            out.append(Violation("head", where, f"head weight {n.input[0]!r} is quantized; keep the head in float "
                                                 f"(nodes_to_exclude)"))
    return out


def check_tensorrt_qdq(model, source: str | None = None) -> None:
    """Raise :class:`QDQLintError` unless ``model`` (path or ModelProto) follows every rule."""
    name = source or (str(model) if isinstance(model, (str, os.PathLike)) else "model")
    violations = lint_qdq(model)
    if violations:
        raise QDQLintError(violations, name)
