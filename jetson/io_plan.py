"""Pure-Python I/O planning for the TensorRT runner (testable without TensorRT or a GPU).

* :class:`TensorSpec`  one engine I/O tensor: name, input/output, dtype, shape (-1 = dynamic),
  and for inputs the optimisation-profile min/max shapes;
* :func:`validate_feed` checks a feed against the input specs (names, rank, fixed dims);
* :func:`batch_chunks`  splits N faces into runs the profile accepts (dynamic: up to max;
  static engines, e.g. DLA: exactly the fixed batch, last chunk padded by the caller);
* :class:`BufferPlan`   device-buffer capacities: grow (reallocate) only when a shape needs more
  bytes than held, never shrink, so steady-state inference does no allocation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from edgepose.errors import ModelError

__all__ = ["TensorSpec", "validate_feed", "batch_chunks", "nbytes", "BufferPlan", "resolve_shape"]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]  # engine shape, -1 for dynamic dims
    min_shape: tuple[int, ...] | None = None  # inputs: profile 0
    max_shape: tuple[int, ...] | None = None

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.shape) and self.shape[0] < 0

    @property
    def batch_range(self) -> tuple[int, int]:
        if self.min_shape and self.max_shape:
            return int(self.min_shape[0]), int(self.max_shape[0])
        b = self.shape[0]
        return (b, b) if b > 0 else (1, 1)


def nbytes(shape: Iterable[int], dtype) -> int:
    n = 1
    for d in shape:
        if d < 0:
            raise ValueError(f"cannot size a buffer for unresolved shape {tuple(shape)}")
        n *= int(d)
    return n * np.dtype(dtype).itemsize


def resolve_shape(engine_shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    """Fill a dynamic batch dim; other dims must already be fixed."""
    out = (batch,) + tuple(engine_shape[1:]) if engine_shape and engine_shape[0] < 0 else tuple(engine_shape)
    if any(d < 0 for d in out):
        raise ModelError(f"engine tensor shape {engine_shape} has dynamic dims other than the batch; "
                         f"rebuild it from an ONNX with a fixed input size")
    return out


def validate_feed(feed: dict, inputs: list[TensorSpec]) -> int:
    """Check names / rank / fixed dims of every input; return the batch size N (same for all)."""
    names = {s.name for s in inputs}
    missing = names - set(feed)
    extra = set(feed) - names
    if missing or extra:
        raise ModelError(f"engine inputs are {sorted(names)}; the feed has {sorted(feed)}")
    batch = None
    for s in inputs:
        arr = np.asarray(feed[s.name])
        if arr.ndim != len(s.shape):
            raise ModelError(f"input {s.name!r} needs {len(s.shape)} dims {s.shape}, got shape {arr.shape}")
        for i, (got, want) in enumerate(zip(arr.shape[1:], s.shape[1:]), start=1):
            if want > 0 and got != want:
                raise ModelError(f"input {s.name!r} dim {i} is {got} but the engine was built for {want} "
                                 f"(engine shape {s.shape}); preprocess with the engine's sidecar metadata")
        if batch is None:
            batch = arr.shape[0]
        elif arr.shape[0] != batch:
            raise ModelError(f"inputs disagree on the batch size ({batch} vs {arr.shape[0]} for {s.name!r})")
    return int(batch or 0)


def batch_chunks(n: int, spec: TensorSpec) -> list[tuple[int, int, int]]:
    """(start, stop, run_batch) runs covering n rows.

    Dynamic engines run each chunk at its own size (<= profile max, >= profile min; a chunk
    smaller than min is padded up to min).  Static engines always run at the fixed batch.
    """
    lo, hi = spec.batch_range
    if not spec.dynamic_batch:
        lo = hi = spec.shape[0]
    chunks = []
    for start in range(0, n, hi):
        stop = min(n, start + hi)
        chunks.append((start, stop, max(stop - start, lo)))
    return chunks


@dataclass
class BufferPlan:
    """Byte capacity per tensor; ``grow`` says which buffers must be (re)allocated."""

    capacity: dict[str, int] = field(default_factory=dict)

    def grow(self, needed: dict[str, int]) -> dict[str, int]:
        """Return {name: new_capacity} for tensors whose current buffer is too small."""
        changes = {name: size for name, size in needed.items() if size > self.capacity.get(name, 0)}
        self.capacity.update(changes)
        return changes

    def clear(self) -> None:
        self.capacity.clear()
