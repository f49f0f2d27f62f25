"""GPU preprocessing: the CUDA kernel ``kernels/crop_resize_normalize.cu`` and its NumPy twin.

The kernel turns one frame in device memory + N face boxes into the network input (N, C, S, S)
directly in the TensorRT input buffer, following :mod:`edgepose.preprocess` exactly:

* per-face affines come from :func:`edgepose.preprocess.crop_boxes` + :func:`crop_affines` (the one
  implementation of the crop rule, ``src = origin + (dst + 0.5) * side / S - 0.5``);
* bilinear sampling with out-of-frame neighbours = ``spec.fill``, rounded to uint8 like the
  NumPy crop; colour order / GRAY conversion; ``(v * pixel_scale - mean) / std``; NCHW or NHWC.

:func:`reference_crop_resize_normalize` is the kernel's per-pixel formula in vectorised float32
NumPy (same operations, same order).  On the CPU it is tested against
``edgepose.preprocess.preprocess_batch`` (tests/test_jetson_preprocess.py), which proves the
kernel's math without a GPU; the GPU test then only has to show kernel == reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import numpy as np

from edgepose.errors import UserError, require
from edgepose.preprocess import PreprocessSpec, crop_affines, crop_boxes

__all__ = ["KERNEL_FILE", "kernel_source", "KernelParams", "kernel_params", "face_affines",
           "reference_crop_resize_normalize", "GpuPreprocessor", "COLOR_KEEP", "COLOR_SWAP", "COLOR_GRAY"]

KERNEL_FILE = "crop_resize_normalize.cu"
COLOR_KEEP, COLOR_SWAP, COLOR_GRAY = 0, 1, 2


def kernel_source() -> str:
    return resources.files("edgepose.jetson.kernels").joinpath(KERNEL_FILE).read_text()


def face_affines(boxes: Sequence, spec: PreprocessSpec) -> np.ndarray:
    """(N, 6) float32 affines (output pixel -> source pixel), one per face box."""
    r = crop_boxes(list(boxes), spec.crop)  # all faces at once, the arithmetic of crop_box / crop_affine
    return crop_affines(r[:, 0], r[:, 1], r[:, 2], spec.input_size).reshape(-1, 6).astype(np.float32)


@dataclass(frozen=True)
class KernelParams:
    """Scalar kernel arguments derived from the frame and the PreprocessSpec."""

    in_channels: int
    out_channels: int
    color_mode: int
    mean: np.ndarray  # (out_channels,) float32
    std: np.ndarray
    pixel_scale: float
    fill: float
    nhwc: bool
    size: int


def _per_channel(values: Sequence[float], n: int) -> np.ndarray:
    # same rule as edgepose.preprocess.normalize: take the first n values, or repeat a short list
    vals = tuple(values)
    return np.asarray(vals[:n] if len(vals) >= n else vals * n, np.float32)[:n]


def kernel_params(frame_shape: tuple, spec: PreprocessSpec) -> KernelParams:
    if len(frame_shape) == 2 or (len(frame_shape) == 3 and frame_shape[2] == 1):
        in_ch = 1
    elif len(frame_shape) == 3 and frame_shape[2] == 3:
        in_ch = 3
    else:
        raise UserError(f"GPU preprocessing takes BGR (HxWx3) or GRAY (HxW) uint8 frames, got shape {frame_shape}; "
                        f"convert BGRA/other formats in the GStreamer pipeline (videoconvert / nvvidconv)")
    order = spec.color_order
    out_ch = spec.channels if order == "GRAY" else 3
    mode = COLOR_GRAY if order == "GRAY" else (COLOR_SWAP if order == "RGB" else COLOR_KEEP)
    return KernelParams(in_channels=in_ch, out_channels=out_ch, color_mode=mode,
                        mean=_per_channel(spec.mean, out_ch), std=_per_channel(spec.std, out_ch),
                        pixel_scale=float(np.float32(spec.pixel_scale)), fill=float(spec.fill),
                        nhwc=spec.layout == "NHWC", size=int(spec.input_size))


def reference_crop_resize_normalize(frame: np.ndarray, boxes: Sequence, spec: PreprocessSpec) -> np.ndarray:
    """The kernel's arithmetic in NumPy float32: frame (BGR/GRAY uint8) + boxes -> (N, C, S, S)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise UserError(f"frames must be uint8, got {frame.dtype}")
    p = kernel_params(frame.shape, spec)
    A = face_affines(list(boxes), spec)
    n, S = A.shape[0], p.size
    if n == 0:
        shape = (0, S, S, p.out_channels) if p.nhwc else (0, p.out_channels, S, S)
        return np.zeros(shape, np.float32)
    img = frame.reshape(frame.shape[0], frame.shape[1], p.in_channels)
    H, W = img.shape[:2]
    f32 = np.float32
    fy, fx = np.meshgrid(np.arange(S, dtype=f32), np.arange(S, dtype=f32), indexing="ij")
    a = A[:, :, None, None]  # (N, 6, 1, 1)
    sx = (a[:, 0] * fx + a[:, 1] * fy) + a[:, 2]  # float32 throughout, no fused multiply-add
    sy = (a[:, 3] * fx + a[:, 4] * fy) + a[:, 5]
    x0f, y0f = np.floor(sx), np.floor(sy)
    wx, wy = (sx - x0f)[..., None], (sy - y0f)[..., None]
    x0, y0 = x0f.astype(np.int64), y0f.astype(np.int64)

    def tap(xx, yy):
        inside = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
        vals = img[np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)].astype(f32)
        return np.where(inside[..., None], vals, f32(p.fill))

    v00, v01, v10, v11 = tap(x0, y0), tap(x0 + 1, y0), tap(x0, y0 + 1), tap(x0 + 1, y0 + 1)
    top = v00 + wx * (v01 - v00)
    bot = v10 + wx * (v11 - v10)
    s = top + wy * (bot - top)
    px = np.clip(np.floor(s + f32(0.5)), 0, 255).astype(f32)  # (N, S, S, in_ch) uint8 crop values
    if p.in_channels == 1:
        v = np.repeat(px, p.out_channels, axis=3)
    elif p.color_mode == COLOR_GRAY:
        q = px.astype(np.int64)
        g = ((4899 * q[..., 2] + 9617 * q[..., 1] + 1868 * q[..., 0] + 8192) >> 14).astype(f32)
        v = np.repeat(g[..., None], p.out_channels, axis=3)
    elif p.color_mode == COLOR_SWAP:
        v = px[..., ::-1]
    else:
        v = px
    y = (v * f32(p.pixel_scale) - p.mean) / p.std
    y = y.astype(f32)
    return np.ascontiguousarray(y if p.nhwc else y.transpose(0, 3, 1, 2))


class GpuPreprocessor:
    """Runs the kernel with pycuda: frame upload (pinned staging), affines, launch into a device buffer.

    ``run(frame, boxes, out_ptr, stream)`` writes (N, C, S, S) float32 at device address ``out_ptr``
    (e.g. the TensorRT input buffer), so crops never travel back to the host.
    """

    BLOCK = (16, 16, 1)

    def __init__(self, spec: PreprocessSpec):
        self.spec = spec
        self.cuda = require("pycuda.driver", "pycuda", "GPU preprocessing")
        compiler = require("pycuda.compiler", "pycuda", "compiling the GPU preprocessing kernel")
        self.module = compiler.SourceModule(kernel_source(), no_extern_c=True)
        self.kernel = self.module.get_function("crop_resize_normalize")
        self._frame_dev = None
        self._frame_cap = 0
        self._host = None
        self._affine_dev = self.cuda.mem_alloc(6 * 4 * 64)
        self._affine_cap = 64
        self._stats = {}

    def _ensure_frame(self, nbytes: int):
        if nbytes > self._frame_cap:
            if self._frame_dev is not None:
                self._frame_dev.free()
            self._frame_dev = self.cuda.mem_alloc(nbytes)
            self._host = self.cuda.pagelocked_empty(nbytes, np.uint8)
            self._frame_cap = nbytes

    def _stat_buffers(self, p: KernelParams):
        key = (p.out_channels, tuple(p.mean.tolist()), tuple(p.std.tolist()))
        if key not in self._stats:
            for m, s in self._stats.values():  # one statistics pair at a time
                m.free()
                s.free()
            self._stats = {key: (self.cuda.to_device(p.mean), self.cuda.to_device(p.std))}
        return self._stats[key]

    def upload(self, frame: np.ndarray, boxes: Sequence, stream=None) -> tuple[KernelParams, tuple, int]:
        """Copy the frame (through pinned staging) and the face affines to the device.

        Returns what :meth:`launch` needs: the kernel parameters, the frame shape and the number
        of faces.  Split from :meth:`launch` so a frame that is already on the device (or a
        benchmark timing the kernel alone) can skip the copy.
        """
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        p = kernel_params(frame.shape, self.spec)
        A = face_affines(list(boxes), self.spec)
        n = A.shape[0]
        if n == 0:
            return p, frame.shape, 0
        if n > self._affine_cap:
            self._affine_dev.free()
            self._affine_dev = self.cuda.mem_alloc(A.nbytes)
            self._affine_cap = n
        self._ensure_frame(frame.nbytes)
        self._host[:frame.nbytes] = frame.reshape(-1)
        self.cuda.memcpy_htod_async(self._frame_dev, self._host[:frame.nbytes], stream)
        self.cuda.memcpy_htod_async(self._affine_dev, A, stream)
        return p, frame.shape, n

    def launch(self, p: KernelParams, frame_shape: tuple, n: int, out_ptr: int, stream=None, first: int = 0) -> None:
        """ONE kernel launch on the uploaded frame: faces ``first .. first + n - 1`` of the uploaded boxes
        -> (n, C, S, S) float32 at device address ``out_ptr`` (grid z = face)."""
        if n == 0:
            return
        mean_dev, std_dev = self._stat_buffers(p)
        S = p.size
        grid = ((S + 15) // 16, (S + 15) // 16, n)
        row_stride = frame_shape[1] * p.in_channels  # upload() made the frame contiguous
        # a pointer argument may be a DeviceAllocation or a numpy integer holding the address
        # (pycuda Function.__call__ / param_set); the offset selects this chunk's affines
        affines = np.uintp(int(self._affine_dev) + 6 * 4 * int(first))
        self.kernel(self._frame_dev, np.int32(frame_shape[0]), np.int32(frame_shape[1]), np.int32(row_stride),
                    np.int32(p.in_channels), affines, np.int32(n), np.int32(S), np.int32(p.out_channels),
                    np.int32(p.color_mode), np.float32(p.pixel_scale), mean_dev, std_dev, np.float32(p.fill),
                    np.int32(1 if p.nhwc else 0), np.uintp(int(out_ptr)), block=self.BLOCK, grid=grid, stream=stream)

    def run(self, frame: np.ndarray, boxes: Sequence, out_ptr: int, stream=None) -> int:
        """Upload + launch; returns the number of faces written at ``out_ptr``."""
        p, shape, n = self.upload(frame, boxes, stream)
        self.launch(p, shape, n, out_ptr, stream)
        return n

    def close(self) -> None:
        for buf in (self._frame_dev, self._affine_dev):
            if buf is not None:
                buf.free()
        for m, s in self._stats.values():
            m.free()
            s.free()
        self._frame_dev = self._affine_dev = None
        self._stats = {}
