"""Pose backends: a runner + the artifact's metadata = batched head pose from face crops.

``load_backend(path)`` opens the runner by suffix (:func:`edgepose.runtime.runners.open_runner`),
reads :func:`edgepose.metadata.load_metadata`, checks that the model really takes the input its
metadata describes, and decodes whatever the model outputs (``rotation``, ``euler`` or a 6D
vector) into ``R`` and ``euler`` on the host with :mod:`edgepose.geometry`.

``predict(frame, boxes)`` runs ONE batched inference for all faces of a frame.  Its crops come
from :func:`edgepose.preprocess.preprocess_batch` on the CPU, or -- for a runner that crops on the
device (``infer_frame``: the TensorRT runner, with ``gpu_preprocess``) -- from the CUDA kernel
of :mod:`edgepose.jetson.gpu_preprocess`, one launch for all faces, written straight into the
engine's input buffer.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import geometry
from ..errors import ModelError
from ..metadata import ArtifactMetadata, MetadataError, has_roi_outputs, load_metadata
from ..preprocess import preprocess_batch
from ..safe_load import load_torch_file
from .runners import TORCH_SUFFIXES, TorchRunner, open_runner

__all__ = ["PoseBackend", "load_backend", "decode_pose_outputs"]

log = logging.getLogger(__name__)


def decode_pose_outputs(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Runner outputs -> (R (N,3,3) float32, euler (N,3) float32 (pitch, yaw, roll) degrees).

    Accepts ``rotation``/``R`` (N,3,3), otherwise a 6D output (``sixd`` or any (N,6) tensor),
    decoded by Gram-Schmidt.  Euler angles always come from geometry.matrix_to_euler so every
    backend reports the same decode (a model's own ``euler`` output is ignored on purpose).
    """
    R = outputs.get("rotation", outputs.get("R"))
    if R is None:
        sixd = outputs.get("sixd")
        if sixd is None:
            sixd = next((v for v in outputs.values() if v.ndim == 2 and v.shape[-1] == 6), None)
        if sixd is None:
            shapes = {k: tuple(v.shape) for k, v in outputs.items()}
            raise ModelError(f"pose model outputs {shapes} contain no rotation (N,3,3) or 6D (N,6) tensor; "
                             f"export it with `edgepose export` so it has the 'rotation' output")
        R = geometry.sixd_to_matrix(np.asarray(sixd, np.float64))
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    euler = geometry.matrix_to_euler(R)
    return R.astype(np.float32), euler.astype(np.float32)


class PoseBackend:
    """Head pose for face crops, whatever engine runs the model.

    ``infer(batch)`` returns ``{"R": (N,3,3), "euler": (N,3), "valid": (N,) bool}`` -- plus
    ``"presence"`` (N,) probability and ``"box"`` (N,4) crop units when the model's metadata declares the
    ROI heads' outputs (:attr:`has_roi`, :func:`edgepose.metadata.has_roi_outputs`); rows whose
    outputs are not finite (NaN/Inf, e.g. from a broken INT8 calibration) have ``valid=False``
    and NaN poses, and a warning is logged -- unless ``on_nan="raise"``, which raises ModelError.
    """

    def __init__(self, runner, meta: ArtifactMetadata, on_nan: str = "flag", gpu_preprocess: bool = True):
        if on_nan not in ("flag", "raise"):
            raise ValueError("on_nan must be 'flag' or 'raise'")
        self.runner = runner
        self.meta = meta
        self.spec = meta.preprocess
        self.on_nan = on_nan
        self.gpu_preprocess = bool(gpu_preprocess)
        self._nan_warned = False
        #: the model outputs a face-presence probability and a refined box (ROI tracking, runtime.frame)
        self.has_roi = has_roi_outputs(meta)
        self._check_input_shape()

    # -- contract ----------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple:
        s = self.spec.input_size
        c = self.spec.channels
        return (c, s, s) if self.spec.layout == "NCHW" else (s, s, c)

    @property
    def max_batch(self) -> int | None:
        return getattr(self.runner, "max_batch", None)

    def _check_input_shape(self) -> None:
        shape = tuple(getattr(self.runner, "input_shape", ()) or ())
        if len(shape) != 4:
            return
        expected = self.input_shape
        for got, want, what in zip(shape[1:], expected, ("dim 1", "dim 2", "dim 3")):
            if got is not None and got != want:
                raise ModelError(
                    f"model {getattr(self.runner, 'path', '')} takes input {shape} but its metadata says "
                    f"{self.spec.layout} {expected} (input_size={self.spec.input_size}, channels={self.spec.channels}); "
                    f"the sidecar belongs to another model: re-export it or fix preprocess.input_size in the sidecar")

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ModelError(f"pose input batch has shape {batch.shape}, expected (N, {', '.join(map(str, self.input_shape))})")
        n = batch.shape[0]
        if n == 0:
            empty = {"R": np.zeros((0, 3, 3), np.float32), "euler": np.zeros((0, 3), np.float32),
                     "valid": np.zeros((0,), bool)}
            if self.has_roi:
                empty.update(presence=np.zeros((0,), np.float32), box=np.zeros((0, 4), np.float32))
            return empty
        step = self.max_batch or n
        Rs, eulers, presences, crop_boxes = [], [], [], []
        for start in range(0, n, step):
            chunk = batch[start:start + step]
            m = chunk.shape[0]
            if self.max_batch and m < self.max_batch:
                # fixed-batch engines/ONNX graphs need exactly max_batch rows: pad with zeros
                chunk = np.concatenate([chunk, np.zeros((self.max_batch - m,) + chunk.shape[1:], np.float32)])
            out = self.runner.infer({self.runner.input_name: chunk})
            R, e = decode_pose_outputs(out)
            Rs.append(R[:m])
            eulers.append(e[:m])
            if self.has_roi:
                presences.append(self._roi_output(out, "presence", 1)[:m, 0])
                crop_boxes.append(self._roi_output(out, "box", 4)[:m])
        return self._checked(np.concatenate(Rs), np.concatenate(eulers),
                             np.concatenate(presences) if self.has_roi else None,
                             np.concatenate(crop_boxes) if self.has_roi else None)

    def _checked(self, R: np.ndarray, euler: np.ndarray, presence: np.ndarray | None = None,
                 box: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Flag (or raise on) faces whose pose is not finite; the result dict of infer/predict (with the ROI
        heads' ``presence`` / ``box`` when the model has them)."""
        n = R.shape[0]
        valid = np.isfinite(R).all(axis=(1, 2)) & np.isfinite(euler).all(axis=1)
        if not valid.all():
            msg = (f"pose model {getattr(self.runner, 'path', '')} produced non-finite outputs for "
                   f"{int((~valid).sum())} of {n} faces; check the model (INT8 calibration, FP16 overflow) "
                   f"and its preprocessing")
            if self.on_nan == "raise":
                raise ModelError(msg)
            if not self._nan_warned:
                log.warning("%s (further occurrences are not logged)", msg)
                self._nan_warned = True
            R[~valid] = np.nan
            euler[~valid] = np.nan
        result = {"R": R, "euler": euler, "valid": valid}
        if self.has_roi:
            # a non-finite presence is no face: the tracker then re-detects instead of following a NaN box
            bad = ~(np.isfinite(presence) & np.isfinite(box).all(axis=1))
            presence[bad] = 0.0
            box[bad] = np.nan
            result.update(presence=presence, box=box)
        return result

    def _roi_output(self, out: dict[str, np.ndarray], name: str, width: int) -> np.ndarray:
        value = out.get(name)
        if value is None:
            raise ModelError(f"pose model {getattr(self.runner, 'path', '')} declares the {name!r} output in its "
                             f"metadata but returned only {sorted(out)}; the sidecar belongs to another model")
        return np.asarray(value, np.float32).reshape(-1, width)

    @property
    def crops_on_device(self) -> bool:
        """True when :meth:`predict` crops with the runner's CUDA kernel (TensorRT + gpu_preprocess)."""
        return self.gpu_preprocess and callable(getattr(self.runner, "infer_frame", None))

    def predict(self, frame: np.ndarray, boxes: Sequence) -> dict[str, np.ndarray]:
        """Faces of one frame (BGR or GRAY) -> poses, one batched inference; preprocessing only from
        ``meta.preprocess`` (on the CPU, or by the runner's CUDA kernel: :attr:`crops_on_device`)."""
        boxes = list(boxes)
        frame = np.asarray(frame)
        # the kernel reads BGR (HxWx3) or GRAY (HxW) uint8; anything else (BGRA) is cropped on the CPU
        if boxes and self.crops_on_device and frame.dtype == np.uint8 and (
                frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
            out = self.runner.infer_frame(frame, boxes, self.spec)
            R, euler = decode_pose_outputs(out)
            if self.has_roi:
                return self._checked(R, euler, self._roi_output(out, "presence", 1)[:, 0],
                                     self._roi_output(out, "box", 4))
            return self._checked(R, euler)
        return self.infer(preprocess_batch(frame, boxes, self.spec))

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def __enter__(self) -> "PoseBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PoseBackend({type(self.runner).__name__}, model={self.meta.model}, "
                f"input={self.input_shape}, precision={self.meta.precision})")


def load_backend(path: str | os.PathLike, device: str = "cpu", providers: Sequence[str] | None = None,
                 intra_op_threads: int | None = None, on_nan: str = "flag", gpu_preprocess: bool = True) -> PoseBackend:
    """Open a pose model (.pt/.pth/.ckpt, .onnx, .engine/.plan) with its metadata; ``gpu_preprocess``:
    crop on the device where the runner can (TensorRT engines), see :meth:`PoseBackend.predict`."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"pose model not found: {path}")
    # A checkpoint is read once: its metadata and its weights come from the same loaded dict.
    ckpt = load_torch_file(path) if path.suffix.lower() in TORCH_SUFFIXES else None
    try:
        meta = load_metadata(path, checkpoint=ckpt)
    except MetadataError as exc:
        raise ModelError(str(exc)) from None
    if ckpt is not None:
        runner = TorchRunner.from_checkpoint(path, device=device, checkpoint=ckpt)
    else:
        runner = open_runner(path, device=device, providers=providers, intra_op_threads=intra_op_threads)
    if isinstance(runner, TorchRunner):
        runner.input_name = meta.input_name
    try:
        return PoseBackend(runner, meta, on_nan=on_nan, gpu_preprocess=gpu_preprocess)
    except BaseException:
        runner.close()
        raise
