"""Small ONNX graphs run as torch modules, and FSA-Net (two such graphs) as a backbone.

An imported network that exists only as ONNX (FSA-Net's released nets) becomes an ordinary
``nn.Module``: :class:`OnnxGraph` keeps the graph's nodes as plain data (op type, input / output
names, attributes: JSON-able, so it travels in the checkpoint metadata like any model kwarg) and
its float tensors as parameters, and ``forward`` walks the nodes with the torch function of each
op.  Checkpoints, ``edgepose eval``, distillation and ONNX re-export then treat it like any
backbone.  Only the operators those graphs use are implemented (``SUPPORTED_OPS``, ONNX opset-9
semantics: Slice / Pad / Squeeze / Unsqueeze take attributes); the converter in
:mod:`edgepose.importers.fsanet` refuses graphs with others.

Shape arithmetic (``Shape`` -> ``Gather`` -> ``Concat`` -> ``Reshape``) is kept as Python lists
of sizes rather than tensors, so the batch dimension stays symbolic when the module is exported.
"""
from __future__ import annotations

import operator

import torch
from torch import nn
from torch.nn import functional as F

from .._registry import register_backbone
from .base import Backbone

__all__ = ["OnnxGraph", "FSANet", "SUPPORTED_OPS", "FSANET_CFG"]

# FSA-Net as released by omasaht/headpose-fsanet-pytorch: BGR, (x - 127.5) / 128, 64 px.
FSANET_CFG = dict(input_size=64, color_order="BGR", mean=(127.5 / 255,) * 3, std=(128 / 255,) * 3)


def _is_size(v) -> bool:
    """A single size: an int, or (while the TorchScript exporter traces) a 0-d integer tensor."""
    return isinstance(v, int) or torch.is_tensor(v) and v.dim() == 0 and not v.is_floating_point()


def _is_shape(v) -> bool:
    return isinstance(v, list) or _is_size(v)


def _bin(fn_py, fn_t):
    def op(a, b, **_):
        if _is_shape(a) and _is_shape(b):  # shape arithmetic: elementwise on Python sizes
            if isinstance(a, list) or isinstance(b, list):
                a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
                if len(a) != len(b):  # broadcast a one-element side
                    a, b = (a * len(b), b) if len(a) == 1 else (a, b * len(a))
                return [fn_py(x, y) for x, y in zip(a, b)]
            return fn_py(a, b)
        return fn_t(a, b)
    return op


def _reshape(x, shape):
    shape = list(shape) if _is_shape(shape) else shape.tolist()
    return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)])  # ONNX: 0 copies the input's size


def _slice(x, starts, ends, axes=None, **_):
    axes = axes or list(range(len(starts)))
    if isinstance(x, list):
        return x[starts[0]:ends[0]]
    index = [slice(None)] * x.dim()
    for a, s, e in zip(axes, starts, ends):
        index[a] = slice(s, min(e, x.shape[a]))
    return x[tuple(index)]


def _gather(x, idx, axis=0, **_):
    if isinstance(x, list):
        return [x[i] for i in idx] if isinstance(idx, list) else x[idx]
    if isinstance(idx, int):
        return x.select(axis, idx)
    return torch.index_select(x, axis, torch.as_tensor(idx, device=x.device))


def _unsqueeze(x, axes, **_):
    if _is_size(x):
        return [x]
    for a in sorted(axes):
        x = x.unsqueeze(a)
    return x


def _squeeze(x, axes=None, **_):
    if axes is None:
        return x.squeeze()
    for a in sorted(axes, reverse=True):
        x = x.squeeze(a)
    return x


def _concat(*xs, axis=0):
    if all(_is_shape(v) for v in xs):
        return [s for v in xs for s in (v if isinstance(v, list) else [v])]
    return torch.cat(xs, axis)


def _reduce(fn):
    def op(x, axes=None, keepdims=1, **_):
        dims = axes if axes is not None else list(range(x.dim()))
        return fn(x, dim=dims, keepdim=bool(keepdims))
    return op


def _pad(x, pads, mode="constant", value=0.0, **_):
    if not any(pads):
        return x
    if mode != "constant":
        raise NotImplementedError(f"Pad mode {mode}")
    n = len(pads) // 2
    torch_pads = []  # torch: last dimension first, (before, after) pairs
    for d in reversed(range(n)):
        torch_pads += [pads[d], pads[d + n]]
    return F.pad(x, torch_pads, value=value)


def _pool(fn):
    def op(x, kernel_shape, strides=None, pads=None, count_include_pad=0, **_):
        pads = pads or [0] * 4
        if pads[:2] != pads[2:]:
            raise NotImplementedError("asymmetric pooling pads")
        kw = dict(stride=strides or kernel_shape, padding=pads[:2])
        if fn is F.avg_pool2d:
            kw["count_include_pad"] = bool(count_include_pad)
        return fn(x, kernel_shape, **kw)
    return op


def _conv(x, w, b=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, **_):
    if list(pads[:2]) != list(pads[2:]):
        x, pads = _pad(x, [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]), (0, 0, 0, 0)
    return F.conv2d(x, w, b, stride=strides, padding=pads[:2], dilation=dilations, groups=group)


def _gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0, **_):
    a = a.t() if transA else a
    b = b.t() if transB else b
    y = alpha * (a @ b)
    return y if c is None else y + beta * c


def _constant_of_shape(shape, value=0.0, **_):
    return torch.full(list(shape), float(value))


def _cast(x, to=1, **_):
    if _is_shape(x):
        return x
    return x.float() if to == 1 else x.long() if to == 7 else x


_OPS = {
    "Add": _bin(operator.add, operator.add), "Sub": _bin(operator.sub, operator.sub),
    "Mul": _bin(operator.mul, operator.mul), "Div": _bin(operator.floordiv, operator.truediv),
    "MatMul": lambda a, b: torch.matmul(a, b), "Pow": lambda a, b: torch.pow(a, b),
    "Relu": lambda x: F.relu(x), "Tanh": torch.tanh, "Sigmoid": torch.sigmoid, "Exp": torch.exp, "Sqrt": torch.sqrt,
    "Conv": _conv, "Gemm": _gemm,
    "BatchNormalization": lambda x, w, b, m, v, epsilon=1e-5, **_: F.batch_norm(x, m, v, w, b, False, 0.0, epsilon),
    "AveragePool": _pool(F.avg_pool2d), "MaxPool": _pool(F.max_pool2d), "Pad": _pad,
    "Shape": lambda x: list(x.shape), "Gather": _gather, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Concat": _concat, "Slice": _slice, "Reshape": _reshape,
    "Transpose": lambda x, perm: x.permute(*perm), "ReduceSum": _reduce(torch.sum), "ReduceMean": _reduce(torch.mean),
    "ConstantOfShape": _constant_of_shape, "Cast": _cast,
}
SUPPORTED_OPS = frozenset(_OPS) | {"Constant"}


class OnnxGraph(nn.Module):
    """One ONNX graph as a module.  ``graph`` = {"input", "output", "nodes": [[op, inputs, outputs, attrs]],
    "constants": {name: Python int / float / list}, "tensors": {name: shape}}; the tensors are parameters
    ``t0, t1, ...`` in the order of ``graph["tensors"]`` (their ONNX names hold dots)."""

    def __init__(self, graph: dict):
        super().__init__()
        self.graph = graph
        unknown = sorted({n[0] for n in graph["nodes"]} - set(_OPS))
        if unknown:
            raise ValueError(f"ONNX operators not supported: {', '.join(unknown)}")
        self._slots = {name: f"t{i}" for i, name in enumerate(graph["tensors"])}
        # Frozen (an imported network is a teacher); BatchNormalization's running statistics are among
        # them and may not require gradients (torch.export refuses that).
        for name, shape in graph["tensors"].items():
            self.register_parameter(self._slots[name], nn.Parameter(torch.zeros(shape), requires_grad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict = dict(self.graph["constants"])
        env[self.graph["input"]] = x
        for name, slot in self._slots.items():
            env[name] = getattr(self, slot)
        for op, inputs, outputs, attrs in self.graph["nodes"]:
            args = [env[i] if i else None for i in inputs]
            env[outputs[0]] = _OPS[op](*args, **attrs)
        return env[self.graph["output"]]


class FSANet(Backbone):
    """The FSA-Net nets of one release, averaged as upstream's demo does; features = (pitch, yaw, roll)
    in degrees (the nets output yaw, pitch, roll in the 300W-LP / AFLW signs, which are ours)."""

    def __init__(self, graphs: list[dict], num_classes: int = 0):
        super().__init__()
        if not graphs:
            raise ValueError("FSA-Net needs at least one graph")
        self.nets = nn.ModuleList(OnnxGraph(g) for g in graphs)
        self.num_features = 3

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        ypr = torch.stack([net(x) for net in self.nets]).mean(0)
        return ypr[:, [1, 0, 2]]


@register_backbone("fsanet", imported_only=True, **FSANET_CFG)
def fsanet(graphs: list[dict], num_classes: int = 0) -> FSANet:
    """FSA-Net (Yang et al., CVPR 2019) from converted ONNX graphs (:mod:`edgepose.importers.fsanet`)."""
    return FSANet(graphs, num_classes)
