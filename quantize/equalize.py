"""Activation equalization across ReLU: give every channel of a quantized activation the tensor's full range.

INT8 activations are quantized **per tensor**: one step for all channels. A channel whose calibration range is a
tenth of the tensor's largest uses a tenth of the 256 levels, so its rounding noise is ten times larger relative to
its signal, and on real faces those roundings add up to the sub-pixel jumps of docs/models.md ("INT8").

ReLU (and LeakyReLU) is positively homogeneous, ``relu(s * x) = s * relu(x)`` for ``s > 0``, so for a chain
``producer conv -> ReLU -> consumers`` the producer's output channel ``c`` may be multiplied by ``s_c`` and every
consumer's input channel ``c`` divided by it without changing the FP32 function (Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", ICCV 2019, cross-layer scaling). What the division
costs depends on the consumer:

* a **depthwise conv** (``group == in_channels``) or the **float head** after the pooled features: the division
  lands on weights quantized per channel, or not at all, so it is free; there ``s_c = R / r_c`` (``r_c``: channel
  ``c``'s calibration range, ``R``: the largest);
* a **dense conv** (``group == 1``): the division shrinks some weight columns inside one per-output-channel scale,
  so activation steps are traded for weight steps; there ``s_c = (R / r_c) ** alpha`` with ``alpha`` in [0, 1]
  (``alpha = 0`` leaves those tensors alone).

The producer's weights are quantized per output channel, so scaling its rows (and bias) costs nothing. Every other
pattern (a residual Add, a Concat, a grouped conv, a weight shared by two nodes) is left alone. All ranges are
measured once on the original graph: after the transform each equalized tensor is exactly ``diag(s)`` times its
original, because every consumer's division undoes the scale before anything else reads it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepose.errors import ModelError, UserError

from .graph import POOL_OPS, consumers, node_attr

__all__ = ["EqualizedTensor", "EqualizeResult", "find_equalizable", "equalize_activations"]

_HOMOGENEOUS = ("Relu", "LeakyRelu")
_SHAPE_ONLY = ("Flatten", "Reshape", "Squeeze")
#: channels with a calibration range under this fraction of the tensor's largest are treated as dead (scale 1):
#: a channel that never fires carries nothing to quantize
DEAD_FRACTION = 1e-6
#: the largest scale given to one channel: a nearly dead channel would otherwise get thousands, which a consumer's
#: int32 bias (cpu profile: bias / (input step x weight step)) would have to carry
MAX_SCALE = 100.0


@dataclass
class EqualizedTensor:
    """One ReLU output whose channels get scaled: the producer conv, the ReLU and how each consumer absorbs it."""
    tensor: str
    producer: str
    dense_consumer: bool  # True when a dense conv reads it (the scale then uses ``alpha``)
    # (node name, initializer name, axis, group multiplier): divide the initializer's entries along ``axis``
    absorbers: list[tuple[str, str, int, int]] = field(default_factory=list)
    scale_max: float = 1.0
    range_ratio: float = 1.0  # largest / median channel range before equalization


@dataclass
class EqualizeResult:
    path: Path
    alpha: float
    tensors: list[EqualizedTensor]

    def summary(self) -> str:
        dense = sum(t.dense_consumer for t in self.tensors)
        return (f"activation equalization (alpha {self.alpha:g} before dense convs): {len(self.tensors)} ReLU outputs "
                f"({len(self.tensors) - dense} free, {dense} before a dense conv)")

    def as_dict(self) -> dict:
        return {"alpha": self.alpha, "tensors": [
            {"tensor": t.tensor, "producer": t.producer, "dense_consumer": t.dense_consumer,
             "scale_max": round(t.scale_max, 3), "range_ratio": round(t.range_ratio, 3)} for t in self.tensors]}


def _conv_absorber(node, inits: dict, uses: dict) -> tuple[str, int, int, bool] | None:
    """(weight name, axis, group multiplier, dense?) when ``node`` is a Conv that can divide its input channels."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits or uses[node.input[1]] != 1:
        return None
    w = inits[node.input[1]]
    group = int(node_attr(node, "group", 1))
    if group == 1:
        return node.input[1], 1, 1, True
    cin = w.shape[1] * group
    if w.shape[1] == 1 and group == cin:  # depthwise: output rows [c*m, (c+1)*m) read input channel c
        return node.input[1], 0, w.shape[0] // group, False
    return None


def _linear_absorbers(pool, graph, inits: dict, consts: dict, uses: dict,
                      cons: dict) -> list[tuple[str, str, int, int]] | None:
    """The float head's linear layers reading a spatial pool (through reshapes): each divides its input rows."""
    # mean and max over the whole map both commute with a positive per-channel scale; a windowed pool leaves a
    # spatial map whose flattening would not index channels, so it is left alone
    if pool.op_type in ("ReduceMean", "ReduceMax"):
        axes = node_attr(pool, "axes", None)
        if axes is None and len(pool.input) > 1:
            from onnx import numpy_helper

            axes = ([int(v) for v in numpy_helper.to_array(consts[pool.input[1]]).ravel()]
                    if pool.input[1] in consts else None)
        if axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
            return None
    elif pool.op_type not in ("GlobalAveragePool", "GlobalMaxPool"):
        return None
    out, frontier = [], list(pool.output)
    outputs = {o.name for o in graph.output}
    while frontier:
        t = frontier.pop()
        if t in outputs or not cons.get(t):
            return None
        for n in cons[t]:
            if n.op_type in _SHAPE_ONLY and n.input[0] == t:
                frontier.extend(n.output)
            elif n.op_type == "Gemm" and n.input[0] == t and n.input[1] in inits and uses[n.input[1]] == 1 \
                    and not node_attr(n, "transA", 0):
                out.append((n.name, n.input[1], 1 if node_attr(n, "transB", 0) else 0, 1))
            elif n.op_type == "MatMul" and n.input[0] == t and n.input[1] in inits and uses[n.input[1]] == 1 \
                    and inits[n.input[1]].ndim == 2:
                out.append((n.name, n.input[1], 0, 1))
            else:
                return None
    return out


def find_equalizable(model) -> list[EqualizedTensor]:
    """Every ``Conv -> ReLU -> consumers`` chain whose consumers can all absorb a per-channel scale (module doc)."""
    from onnx import numpy_helper

    import onnx

    graph = model.graph
    # float32 weights only: a float16-stored weight (read through a Cast) is not rewritten; ORT's pre-processing
    # folds those Casts, so quantize_onnx sees float32 initializers
    consts = {t.name: t for t in graph.initializer}
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    uses: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    cons = consumers(graph)
    outputs = {o.name for o in graph.output}
    found = []
    for prod in graph.node:
        if prod.op_type != "Conv" or len(prod.input) < 2 or prod.input[1] not in inits or uses[prod.input[1]] != 1:
            continue
        if len(prod.input) > 2 and prod.input[2] and (prod.input[2] not in inits or uses[prod.input[2]] != 1):
            continue
        readers = cons.get(prod.output[0], [])
        if len(readers) != 1 or readers[0].op_type not in _HOMOGENEOUS or prod.output[0] in outputs:
            continue
        act = readers[0]
        t = act.output[0]
        if t in outputs or not cons.get(t):
            continue
        item = EqualizedTensor(tensor=t, producer=prod.name, dense_consumer=False)
        for n in cons[t]:
            conv = _conv_absorber(n, inits, uses) if n.input[0] == t else None
            if conv is not None:
                item.absorbers.append((n.name, conv[0], conv[1], conv[2]))
                item.dense_consumer |= conv[3]
                continue
            linear = _linear_absorbers(n, graph, inits, consts, uses, cons) if n.op_type in POOL_OPS else None
            if linear is None:
                item.absorbers = []
                break
            item.absorbers.extend(linear)
        if item.absorbers:
            found.append(item)
    return found


def channel_ranges(model, tensors: list[str], crops: np.ndarray, input_name: str, batch: int = 32) -> dict:
    """Per-channel max over the calibration crops of each 4-D tensor in ``tensors`` (ReLU outputs: >= 0)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for t in tensors:
        if t not in have:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every probed tensor
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    ranges: dict[str, np.ndarray] = {}
    for i in range(0, len(crops), batch):
        outs = sess.run(tensors, {input_name: crops[i:i + batch]})
        for t, v in zip(tensors, outs):
            if v.ndim < 2:
                raise UserError(f"activation equalization: tensor {t} has shape {v.shape}, expected (N, C, ...)")
            m = np.abs(v).max(axis=tuple(a for a in range(v.ndim) if a != 1))
            ranges[t] = m if t not in ranges else np.maximum(ranges[t], m)
    return ranges


def _scales(r: np.ndarray, alpha: float) -> np.ndarray:
    top = float(r.max())
    if top <= 0:
        return np.ones_like(r, dtype=np.float64)
    live = r > DEAD_FRACTION * top
    s = np.ones_like(r, dtype=np.float64)
    s[live] = np.minimum((top / r[live].astype(np.float64)) ** alpha, MAX_SCALE)
    return s


def equalize_activations(src, dst, crops: np.ndarray, alpha: float = 0.5) -> EqualizeResult:
    """Write ``src`` (a float ONNX graph, BN folded) to ``dst`` with its ReLU outputs equalized (module doc).

    ``crops``: calibration inputs (N, C, H, W) float32, the same the quantizer calibrates on; ``alpha``: the strength
    before dense convs (0 = only the free tensors, 1 = every channel to the tensor's largest range)."""
    import onnx
    from onnx import numpy_helper

    if not 0.0 <= float(alpha) <= 1.0:
        raise UserError(f"activation equalization strength {alpha} is outside [0, 1]; use 0, 0.5 or 1")
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise UserError("activation equalization would overwrite its input graph; choose another output path")
    model = onnx.load(str(src))
    found = find_equalizable(model)
    if not found:
        onnx.save(model, str(dst))
        return EqualizeResult(dst, float(alpha), [])
    input_name = model.graph.input[0].name
    ranges = channel_ranges(model, [f.tensor for f in found], np.asarray(crops, np.float32), input_name)
    inits = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    arrays = {name: numpy_helper.to_array(t).astype(np.float64) for name, t in inits.items()
              if t.data_type == onnx.TensorProto.FLOAT}
    kept = []
    for item in found:
        r = ranges[item.tensor]
        s = _scales(r, alpha if item.dense_consumer else 1.0)
        if np.allclose(s, 1.0):
            continue
        prod = nodes[item.producer]
        for k, name in enumerate(prod.input[1:3]):
            if name:  # weight rows (axis 0) and bias: output channel c times s_c
                shape = (-1,) + (1,) * (arrays[name].ndim - 1)
                arrays[name] = arrays[name] * s.reshape(shape)
        for _node, name, axis, mult in item.absorbers:
            div = np.repeat(s, mult) if axis == 0 else s
            shape = [1] * arrays[name].ndim
            shape[axis] = -1
            arrays[name] = arrays[name] / div.reshape(shape)
        live = r[r > DEAD_FRACTION * r.max()]
        item.scale_max = float(s.max())
        item.range_ratio = float(r.max() / np.median(live)) if live.size else 1.0
        kept.append(item)
    touched = {n for it in kept for n in [*[x for x in nodes[it.producer].input[1:3] if x], *[a[1] for a in it.absorbers]]}
    for name in touched:
        inits[name].CopyFrom(numpy_helper.from_array(arrays[name].astype(np.float32), name))
    onnx.save(model, str(dst))
    _check_same_function(src, dst, np.asarray(crops[:16], np.float32))
    return EqualizeResult(dst, float(alpha), kept)


def _check_same_function(src: Path, dst: Path, x: np.ndarray) -> None:
    """The transform must not change the FP32 answer: a guard against a graph pattern this module misreads.

    An element counts as moved beyond float rounding when it differs by more than 1e-3 (relative); up to 0.5 % of
    them may (an Euler angle at +-180 deg can wrap), a misread pattern moves nearly all of them."""
    from edgepose.export.checks import ort_session, run_onnx

    ref, got = (run_onnx(ort_session(p, threads=1), x) for p in (src, dst))
    for name, a in ref.items():
        a, b = np.asarray(a, np.float64), np.asarray(got[name], np.float64)
        moved = np.abs(a - b) > 1e-3 * (1.0 + np.abs(a))
        if moved.mean() > 0.005:
            raise ModelError(f"activation equalization changed the FP32 answer of {src.name} ({moved.mean():.1%} of "
                             f"an output moved); quantize without it (--equalize off) and report the graph")
