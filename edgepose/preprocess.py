"""Preprocessing: the single implementation shared by training, export and every runtime.

A face box becomes a network input in three steps, each defined exactly once here:

1. :func:`crop_box` -- box -> square crop region (centre, side) by the :class:`CropPolicy`;
2. :func:`crop_affine` / :func:`crop_image` -- bilinear sampling of that region into an
   ``S x S`` image (pixels outside the frame are filled with ``fill``).  The sampling rule is
   written as an explicit affine map so the CUDA kernel in ``edgepose.jetson`` can copy it:
   ``src = origin + (dst + 0.5) * side / S - 0.5`` per axis (pixel centres aligned);
3. :func:`normalize` -- colour order, scale, mean/std and CHW layout.

Frames entering edgepose are **BGR uint8** (OpenCV's order) or single-channel GRAY8.  The
model's expected channel order is recorded in :class:`PreprocessSpec.color_order` and travels
with every artifact through :mod:`edgepose.metadata`, so an export or a runtime can never feed a
model differently from how it was trained.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import cv2
import numpy as np

__all__ = ["CropPolicy", "PreprocessSpec", "crop_box", "box_in_crop", "box_from_crop", "crop_affine", "crop_image", "normalize",
           "preprocess", "preprocess_batch", "to_bgr"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class CropPolicy:
    """How a face box becomes a square crop.

    side = max(w, h) * scale; the centre is the box centre shifted by (shift_x * w, shift_y * h).
    The same policy must be used for training crops and deployment crops (docs/data.md, "Crop policy: train as you deploy");
    detector-box crops and landmark-box crops differ, so the policy names its ``box_source``.
    """

    scale: float = 1.4
    shift_x: float = 0.0
    shift_y: float = 0.0
    box_source: str = "detector"  # "detector" | "landmarks" | "any" (documentation for users)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreprocessSpec:
    """Everything needed to turn a frame + box into the model's input tensor."""

    input_size: int = 224
    color_order: str = "RGB"  # channel order the network expects: RGB | BGR | GRAY
    channels: int = 3  # GRAY input replicated to 3 channels when channels == 3
    mean: Sequence[float] = IMAGENET_MEAN  # applied after scaling to [0, 1]
    std: Sequence[float] = IMAGENET_STD
    pixel_scale: float = 1.0 / 255.0
    layout: str = "NCHW"
    interpolation: str = "bilinear"
    fill: int = 0  # value for pixels outside the frame
    crop: CropPolicy = field(default_factory=CropPolicy)

    def __post_init__(self):
        if isinstance(self.crop, dict):
            self.crop = CropPolicy(**self.crop)
        self.color_order = self.color_order.upper()
        if self.color_order not in ("RGB", "BGR", "GRAY"):
            raise ValueError(f"color_order must be RGB, BGR or GRAY, got {self.color_order!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        d = dict(d)
        crop = d.pop("crop", {})
        return cls(crop=CropPolicy(**crop), **d)


def crop_box(box, policy: CropPolicy) -> tuple[float, float, float]:
    """Box (x1, y1, x2, y2) -> square region (cx, cy, side) in frame pixels."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    if not (w > 0 and h > 0):
        raise ValueError(f"empty face box {tuple(box[:4])}: x2 must exceed x1 and y2 must exceed y1")
    cx = (x1 + x2) / 2.0 + policy.shift_x * w
    cy = (y1 + y2) / 2.0 + policy.shift_y * h
    return cx, cy, max(w, h) * policy.scale


def box_in_crop(box, crop: tuple[float, float, float]) -> np.ndarray:
    """Frame box (x1, y1, x2, y2) -> the same box in **crop units** of the square ``crop`` = (cx, cy, side)
    from :func:`crop_box`: 0 is the crop's left / top edge, 1 its right / bottom edge (the ROI heads'
    box target and output, edgepose.models.roi_heads)."""
    cx, cy, side = (float(v) for v in crop)
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    b = np.asarray(box, np.float64)[:4]
    return (b - np.array([x0, y0, x0, y0])) / side


def box_from_crop(units, crop: tuple[float, float, float]) -> np.ndarray:
    """Inverse of :func:`box_in_crop`: a box in crop units -> frame pixels."""
    cx, cy, side = (float(v) for v in crop)
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    return np.asarray(units, np.float64)[:4] * side + np.array([x0, y0, x0, y0])


def crop_affine(cx: float, cy: float, side: float, size: int, angle_deg: float = 0.0,
                flip: bool = False) -> np.ndarray:
    """2x3 matrix mapping OUTPUT pixel (x, y) to SOURCE pixel, for cv2.WARP_INVERSE_MAP.

    ``angle_deg`` rotates the *output* image counter-clockwise on screen (augmentation);
    ``flip`` mirrors it horizontally.  With angle 0 and no flip this is exactly
    src = origin + (dst + 0.5) * side / size - 0.5.
    """
    s = side / size
    a = np.radians(angle_deg)
    c, sn = np.cos(a), np.sin(a)
    fx = -1.0 if flip else 1.0
    # The output is the source rotated CCW on screen by ``angle`` and then mirrored, so an output
    # offset d (y down) reads the source at Q(-angle) @ diag(fx, 1) @ d, where
    # Q(t) = [[cos t, sin t], [-sin t, cos t]] is a CCW on-screen rotation in y-down coordinates.
    A = np.array([[c, -sn], [sn, c]]) @ np.diag([fx, 1.0]) * s
    # continuous source point = centre + A @ (dst + 0.5 - size/2); pixel index = continuous - 0.5
    t = np.array([cx, cy]) - 0.5 - A @ np.full(2, size / 2.0 - 0.5)
    return np.array([[A[0, 0], A[0, 1], t[0]], [A[1, 0], A[1, 1], t[1]]], dtype=np.float64)


def crop_image(frame: np.ndarray, box, spec: PreprocessSpec, angle_deg: float = 0.0,
               flip: bool = False) -> np.ndarray:
    """Crop + resize a face into an ``input_size`` square uint8 image (same channels as frame)."""
    if frame is None or frame.ndim not in (2, 3) or frame.size == 0:
        raise ValueError("frame must be a non-empty HxW (GRAY) or HxWxC (BGR) uint8 array")
    cx, cy, side = crop_box(box, spec.crop)
    M = crop_affine(cx, cy, side, spec.input_size, angle_deg, flip)
    fill = (spec.fill,) * (1 if frame.ndim == 2 else frame.shape[2])
    return cv2.warpAffine(frame, M, (spec.input_size, spec.input_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """GRAY (HxW or HxWx1) or BGRA -> BGR; BGR passes through."""
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame.reshape(frame.shape[0], frame.shape[1]), cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def normalize(crop: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 crop (BGR HxWx3 or GRAY HxW) -> float32 CHW (or HWC) network input."""
    if spec.color_order == "GRAY":
        g = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        x = np.repeat(g[..., None], spec.channels, axis=2)
    else:
        bgr = to_bgr(crop)  # grayscale/IR frames are replicated to 3 channels
        x = bgr[..., ::-1] if spec.color_order == "RGB" else bgr
    x = x.astype(np.float32) * np.float32(spec.pixel_scale)
    mean = np.asarray(spec.mean[: x.shape[2]] if len(spec.mean) >= x.shape[2] else spec.mean * x.shape[2], np.float32)
    std = np.asarray(spec.std[: x.shape[2]] if len(spec.std) >= x.shape[2] else spec.std * x.shape[2], np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1) if spec.layout == "NCHW" else x)


def preprocess(frame: np.ndarray, box, spec: PreprocessSpec) -> np.ndarray:
    """One face: frame + box -> (C, S, S) float32."""
    return normalize(crop_image(frame, box, spec), spec)


def preprocess_batch(frame: np.ndarray, boxes, spec: PreprocessSpec) -> np.ndarray:
    """All faces of a frame -> (N, C, S, S) float32 (N may be 0)."""
    boxes = list(boxes)
    if not boxes:
        c = spec.channels
        shape = (0, c, spec.input_size, spec.input_size) if spec.layout == "NCHW" else (0, spec.input_size, spec.input_size, c)
        return np.zeros(shape, np.float32)
    return np.stack([preprocess(frame, b, spec) for b in boxes])
