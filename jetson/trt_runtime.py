"""TensorRT runtime backend: ``TrtRunner`` behind the edgepose runner contract.

``edgepose.runtime.runners.open_runner`` opens ``.engine`` / ``.plan`` files with
``TrtRunner(path)``; ``PoseBackend`` then calls ``infer({input_name: batch}) -> {name: array}``.

TensorRT 10/11 named-tensor API (NVIDIA TensorRT Python API reference): ``num_io_tensors``, ``get_tensor_name``,
``get_tensor_mode``, ``get_tensor_dtype``, ``get_tensor_profile_shape``, per call
``set_input_shape`` -> ``get_tensor_shape`` (outputs) -> ``set_tensor_address`` ->
``execute_async_v3(stream.handle)``.  pycuda provides device buffers (``mem_alloc``), pinned host
memory (``pagelocked_empty``) and a stream; buffers grow when a larger batch arrives and are
freed in :meth:`close`.  The runner works in the device's *primary* CUDA context (the one the
CUDA runtime inside TensorRT uses), pushed around every call so any thread may call it.

Batches larger than the profile maximum are split into chunks; for a static engine (DLA) the
runner advertises ``max_batch`` so PoseBackend pads to it.  ``infer_frame`` runs the GPU
preprocessing kernel straight into the input buffer (see :mod:`.gpu_preprocess`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from edgepose.errors import ModelError, require

from .io_plan import BufferPlan, TensorSpec, batch_chunks, nbytes, resolve_shape, validate_feed

__all__ = ["TrtRunner"]

log = logging.getLogger(__name__)


class TrtRunner:
    def __init__(self, path: str | os.PathLike, device: int = 0):
        from .build import load_engine, trt_module, trt_version

        self.path = Path(path)
        self.trt = trt_module()
        self.version = trt_version(self.trt)
        self.cuda = require("pycuda.driver", "pycuda", f"running the TensorRT engine {self.path.name}")
        self.cuda.init()
        self._ctx = self.cuda.Device(int(device)).retain_primary_context()
        self._ctx.push()
        try:
            self._logger = self.trt.Logger(self.trt.Logger.WARNING)
            self._runtime, self.engine = load_engine(self.trt, self.path, self._logger)
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise ModelError(f"TensorRT could not create an execution context for {self.path} (out of GPU memory?)")
            self.specs = self._read_specs()
            self.stream = self.cuda.Stream()
            self._plan = BufferPlan()
            self._device: dict[str, object] = {}
            self._host: dict[str, np.ndarray] = {}
            self._preprocessor = None
        except BaseException:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None  # nothing to free in close()
            raise
        self._ctx.pop()
        ins = self.inputs
        if len(ins) != 1:
            log.warning("%s has %d inputs; PoseBackend feeds only %s", self.path.name, len(ins), ins[0].name)
        self.input_name = ins[0].name
        s = ins[0]
        self.input_shape = ((None,) if s.dynamic_batch else (s.shape[0],)) + tuple(s.shape[1:])
        self.output_names = [o.name for o in self.outputs]
        log.debug("TensorRT %s: %s", self.version, self.specs)

    # -- engine description ------------------------------------------------------------------
    def _read_specs(self) -> list[TensorSpec]:
        trt, eng = self.trt, self.engine
        specs = []
        for i in range(eng.num_io_tensors):
            name = eng.get_tensor_name(i)
            is_input = eng.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = np.dtype(trt.nptype(eng.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in eng.get_tensor_shape(name))
            mn = mx = None
            if is_input:
                mn_, _opt, mx_ = eng.get_tensor_profile_shape(name, 0)
                mn, mx = tuple(int(d) for d in mn_), tuple(int(d) for d in mx_)
            specs.append(TensorSpec(name, is_input, dtype, shape, mn, mx))
        return specs

    @property
    def inputs(self) -> list[TensorSpec]:
        return [s for s in self.specs if s.is_input]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [s for s in self.specs if not s.is_input]

    @property
    def max_batch(self) -> int | None:
        """Fixed batch of a static engine (PoseBackend pads to it); None when dynamic (chunked here)."""
        s = self.inputs[0]
        return None if s.dynamic_batch else int(s.shape[0])

    @property
    def profile_max_batch(self) -> int:
        return self.inputs[0].batch_range[1]

    # -- buffers -----------------------------------------------------------------------------
    def _ensure_buffers(self, shapes: dict[str, tuple]) -> None:
        specs = {s.name: s for s in self.specs}
        changes = self._plan.grow({n: nbytes(shape, specs[n].dtype) for n, shape in shapes.items()})
        for name, size in changes.items():
            old = self._device.pop(name, None)
            if old is not None:
                old.free()
            self._device[name] = self.cuda.mem_alloc(size)
            self._host[name] = self.cuda.pagelocked_empty(size // specs[name].dtype.itemsize, specs[name].dtype)

    def _bind(self, batch: int) -> dict[str, tuple]:
        """set_input_shape for the inputs, read the output shapes, make buffers, set addresses."""
        shapes = {}
        for s in self.inputs:
            shape = resolve_shape(s.shape, batch)
            if not self.context.set_input_shape(s.name, shape):
                raise ModelError(f"TensorRT rejected input shape {shape} for {s.name!r} (profile {s.min_shape}.."
                                 f"{s.max_shape})")
            shapes[s.name] = shape
        for s in self.outputs:
            shapes[s.name] = tuple(int(d) for d in self.context.get_tensor_shape(s.name))
        self._ensure_buffers(shapes)
        for name in shapes:
            self.context.set_tensor_address(name, int(self._device[name]))
        return shapes

    def _execute(self, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
        if not self.context.execute_async_v3(self.stream.handle):
            raise ModelError(f"TensorRT execution failed for {self.path.name}")
        views = {}
        for s in self.outputs:
            n = int(np.prod(shapes[s.name]))
            host = self._host[s.name][:n]
            self.cuda.memcpy_dtoh_async(host, self._device[s.name], self.stream)
            views[s.name] = host
        self.stream.synchronize()
        return {k: v.reshape(shapes[k]).copy() for k, v in views.items()}

    # -- inference ---------------------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = validate_feed(feed, self.inputs)
        if n == 0:
            raise ModelError("empty batch: PoseBackend handles zero faces before calling the runner")
        results: list[dict[str, np.ndarray]] = []
        self._ctx.push()
        try:
            for start, stop, run in batch_chunks(n, self.inputs[0]):
                shapes = self._bind(run)
                for s in self.inputs:
                    chunk = np.asarray(feed[s.name][start:stop], dtype=s.dtype)
                    count = int(np.prod(shapes[s.name]))
                    host = self._host[s.name][:count].reshape(shapes[s.name])
                    host[: stop - start] = chunk
                    host[stop - start:] = 0  # pad rows (static engines / profile minimum)
                    self.cuda.memcpy_htod_async(self._device[s.name], host, self.stream)
                out = self._execute(shapes)
                results.append({k: v[: stop - start] for k, v in out.items()})
        finally:
            self._ctx.pop()
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}

    def infer_frame(self, frame: np.ndarray, boxes: Sequence, spec) -> dict[str, np.ndarray]:
        """All faces of a frame on the GPU: the frame and every face's affine are uploaded once, the crop
        kernel writes the crops straight into the engine's input buffer (one launch per engine batch:
        one for all faces up to the profile's maximum) and the engine runs on them.  The per-frame path
        of ``PoseBackend.predict`` for TensorRT engines (``pose.gpu_preprocess``)."""
        from .gpu_preprocess import GpuPreprocessor

        boxes = list(boxes)
        if not boxes:
            raise ModelError("no face boxes given")
        s = self.inputs[0]
        results = []
        self._ctx.push()
        try:
            if self._preprocessor is None or self._preprocessor.spec != spec:
                if self._preprocessor is not None:
                    self._preprocessor.close()
                self._preprocessor = GpuPreprocessor(spec)
            params, shape, _ = self._preprocessor.upload(frame, boxes, self.stream)
            for start, stop, run in batch_chunks(len(boxes), s):
                shapes = self._bind(run)
                if stop - start < run:  # zero the pad rows: the kernel writes only real faces
                    size = nbytes(shapes[s.name], s.dtype)
                    if hasattr(self.cuda, "memset_d8_async"):  # newer pycuda, not in its reference docs
                        self.cuda.memset_d8_async(self._device[s.name], 0, size, self.stream)
                    else:  # the documented memset_d8(dest, data, count) is synchronous
                        self.stream.synchronize()
                        self.cuda.memset_d8(self._device[s.name], 0, size)
                self._preprocessor.launch(params, shape, stop - start, int(self._device[s.name]), self.stream,
                                          first=start)
                out = self._execute(shapes)
                results.append({k: v[: stop - start] for k, v in out.items()})
        finally:
            self._ctx.pop()
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        self._ctx.push()
        try:
            if self._preprocessor is not None:
                self._preprocessor.close()
            for buf in self._device.values():
                buf.free()
            self._device.clear()
            self._host.clear()
            self._plan.clear()
            self.context = None
            self.engine = None
            self._runtime = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None

    def __enter__(self) -> "TrtRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
