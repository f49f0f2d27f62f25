"""Preprocessing: the single implementation shared by training, export and every runtime.

A face box becomes a network input in three steps, each defined exactly once here:

1. :func:`crop_box` -- box -> square crop region (centre, side) by the :class:`CropPolicy`;
2. :func:`crop_affine` / :func:`crop_image` -- bilinear sampling of that region into an
   ``S x S`` image (pixels outside the frame are filled with ``fill``).  The sampling rule is
   written as an explicit affine map so the CUDA kernel in ``edgepose.jetson`` can copy it:
   ``src = origin + (dst + 0.5) * side / S - 0.5`` per axis (pixel centres aligned);
3. :func:`normalize` -- colour order, scale, mean/std and CHW layout.

All faces of a frame go through the same steps at once (:func:`preprocess_batch`):
:func:`crop_boxes` / :func:`crop_affines` for every box in one NumPy step, :func:`crop_images`
(a ``cv2.warpAffine`` per face, or one ``cv2.remap`` over :func:`warp_maps`, OpenCV's own
fixed-point maps, so the pixels are the same bit for bit), :func:`normalize_batch` over the
whole block.  The single-face functions are these with N = 1, so there is one arithmetic.

Frames entering edgepose are **BGR uint8** (OpenCV's order) or single-channel GRAY8.  The
model's expected channel order is recorded in :class:`PreprocessSpec.color_order` and travels
with every artifact through :mod:`edgepose.metadata`, so an export or a runtime can never feed a
model differently from how it was trained.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Sequence

import cv2
import numpy as np

__all__ = ["CropPolicy", "PreprocessSpec", "crop_box", "crop_boxes", "box_in_crop", "box_from_crop", "crop_affine",
           "crop_affines", "crop_image", "crop_images", "warp_maps", "normalize", "normalize_batch", "preprocess",
           "preprocess_batch", "to_bgr", "REMAP_MIN_FACES"]

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


def crop_boxes(boxes, policy: CropPolicy) -> np.ndarray:
    """Boxes (N, >=4) x1, y1, x2, y2 -> (N, 3) float64 square regions (cx, cy, side), all at once."""
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
        b = boxes[:, :4].astype(np.float64)
    else:  # a list of boxes, each possibly longer than 4 (score, ...)
        b = np.array([[float(v) for v in box[:4]] for box in boxes], np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    w, h = x2 - x1, y2 - y1
    bad = ~((w > 0) & (h > 0))  # also catches NaN
    if bad.any():
        raise ValueError(f"empty face box {tuple(b[int(np.argmax(bad))].tolist())}: "
                         f"x2 must exceed x1 and y2 must exceed y1")
    cx = (x1 + x2) / 2.0 + policy.shift_x * w
    cy = (y1 + y2) / 2.0 + policy.shift_y * h
    return np.stack([cx, cy, np.maximum(w, h) * policy.scale], axis=1)


def crop_box(box, policy: CropPolicy) -> tuple[float, float, float]:
    """Box (x1, y1, x2, y2) -> square region (cx, cy, side) in frame pixels (:func:`crop_boxes`)."""
    cx, cy, side = crop_boxes([tuple(box[:4])], policy)[0]
    return float(cx), float(cy), float(side)


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


def crop_affines(cx, cy, side, size: int, angle_deg=0.0, flip=False) -> np.ndarray:
    """(..., 2, 3) matrices mapping OUTPUT pixel (x, y) to SOURCE pixel, for cv2.WARP_INVERSE_MAP.

    Arguments broadcast against each other (one crop or all faces of a frame at once).
    ``angle_deg`` rotates the *output* image counter-clockwise on screen (augmentation);
    ``flip`` mirrors it horizontally.  With angle 0 and no flip this is exactly
    src = origin + (dst + 0.5) * side / size - 0.5.
    """
    cx, cy, side, ang, fl = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in
                                                  (cx, cy, side, angle_deg, flip)))
    s = side / size
    a = np.radians(ang)
    c, sn = np.cos(a), np.sin(a)
    fx = np.where(fl != 0, -1.0, 1.0)
    # The output is the source rotated CCW on screen by ``angle`` and then mirrored, so an output
    # offset d (y down) reads the source at Q(-angle) @ diag(fx, 1) @ d, where
    # Q(t) = [[cos t, sin t], [-sin t, cos t]] is a CCW on-screen rotation in y-down coordinates.
    a00, a01, a10, a11 = c * fx * s, -sn * s, sn * fx * s, c * s
    # continuous source point = centre + A @ (dst + 0.5 - size/2); pixel index = continuous - 0.5
    h = size / 2.0 - 0.5
    M = np.empty(cx.shape + (2, 3), np.float64)
    M[..., 0, 0], M[..., 0, 1], M[..., 1, 0], M[..., 1, 1] = a00, a01, a10, a11
    M[..., 0, 2] = cx - 0.5 - (a00 * h + a01 * h)
    M[..., 1, 2] = cy - 0.5 - (a10 * h + a11 * h)
    return M


def crop_affine(cx: float, cy: float, side: float, size: int, angle_deg: float = 0.0,
                flip: bool = False) -> np.ndarray:
    """One crop's 2x3 matrix (output pixel -> source pixel); see :func:`crop_affines`."""
    return crop_affines(cx, cy, side, size, angle_deg, flip)


def _check_frame(frame) -> None:
    if frame is None or frame.ndim not in (2, 3) or frame.size == 0:
        raise ValueError("frame must be a non-empty HxW (GRAY) or HxWxC (BGR) uint8 array")


def _fill(frame: np.ndarray, spec: PreprocessSpec) -> tuple:
    return (spec.fill,) * (1 if frame.ndim == 2 else frame.shape[2])


def crop_image(frame: np.ndarray, box, spec: PreprocessSpec, angle_deg: float = 0.0,
               flip: bool = False) -> np.ndarray:
    """Crop + resize a face into an ``input_size`` square uint8 image (same channels as frame)."""
    _check_frame(frame)
    cx, cy, side = crop_box(box, spec.crop)
    M = crop_affine(cx, cy, side, spec.input_size, angle_deg, flip)
    return cv2.warpAffine(frame, M, (spec.input_size, spec.input_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=_fill(frame, spec))


# OpenCV's fixed-point warp: coordinates carry AB_BITS fraction bits, sampling uses INTER_BITS
# (1/32 pixel) with cv2.remap's interpolation tables (imgproc/src/imgwarp.cpp, WarpAffineInvoker).
_AB_BITS, _INTER_BITS = 10, 5
_AB_SCALE, _INTER_TAB = 1 << _AB_BITS, 1 << _INTER_BITS
_I32 = (-(2 ** 31), 2 ** 31 - 1)


def _round_i32(x: np.ndarray) -> np.ndarray:
    # saturate_cast<int>(double): round half to even (cvRound), clamped to int32
    return np.clip(np.rint(x), *_I32).astype(np.int64)


def warp_maps(M: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2, 3) inverse affines -> the fixed-point maps cv2.warpAffine builds for them.

    Returns (map1 (N*size, size, 2) int16 integer source pixels, map2 (N*size, size) uint16
    interpolation-table indices) for ONE ``cv2.remap`` that samples all N crops stacked on top of
    each other.  The arithmetic is OpenCV's own (``WarpAffineInvoker``: per-column and per-row
    offsets rounded at 1/1024 px, their sum taken to 1/32 px), so the crops equal
    ``cv2.warpAffine``'s bit for bit (tests/test_preprocess_batch.py checks it on real frames).
    """
    M = np.asarray(M, np.float64).reshape(-1, 2, 3)
    n = M.shape[0]
    x = np.arange(size, dtype=np.float64)
    half = _AB_SCALE // _INTER_TAB // 2  # round_delta for bilinear
    shift = _AB_BITS - _INTER_BITS
    # per output column (adelta, bdelta) and per output row (X0, Y0), (N, S) each, rounded at once
    adelta, bdelta, X0, Y0 = _round_i32(np.stack([
        M[:, 0, 0, None] * x * _AB_SCALE, M[:, 1, 0, None] * x * _AB_SCALE,
        (M[:, 0, 1, None] * x + M[:, 0, 2, None]) * _AB_SCALE, (M[:, 1, 1, None] * x + M[:, 1, 2, None]) * _AB_SCALE]))
    X0, Y0 = X0 + half, Y0 + half
    if not (M[:, 0, 1].any() or M[:, 1, 0].any()) and sys.byteorder == "little":
        # unrotated crops (the runtime's): the source column depends on the output column only,
        # the source row on the output row only -- build (N, S) vectors and broadcast them once
        X = (X0[:, :1] + adelta) >> shift  # (N, cols), 1/32 px
        Y = (Y0 + bdelta[:, :1]) >> shift  # (N, rows)
        xi = np.clip(X >> _INTER_BITS, -32768, 32767).astype(np.int32) & 0xFFFF
        yi = np.clip(Y >> _INTER_BITS, -32768, 32767).astype(np.int32) << 16
        # one int32 per pixel = the (x, y) int16 pair of map1 (little-endian: x in the low half)
        map1 = (yi[:, :, None] | xi[:, None, :]).view(np.int16).reshape(n, size, size, 2)
        map2 = (((Y & (_INTER_TAB - 1)) * _INTER_TAB).astype(np.uint16)[:, :, None]
                + (X & (_INTER_TAB - 1)).astype(np.uint16)[:, None, :])
    else:
        X = (X0[:, :, None] + adelta[:, None, :]) >> shift  # (N, rows, cols), 1/32 px
        Y = (Y0[:, :, None] + bdelta[:, None, :]) >> shift
        map1 = np.empty((n, size, size, 2), np.int16)
        map1[..., 0] = np.clip(X >> _INTER_BITS, -32768, 32767)
        map1[..., 1] = np.clip(Y >> _INTER_BITS, -32768, 32767)
        map2 = ((Y & (_INTER_TAB - 1)) * _INTER_TAB + (X & (_INTER_TAB - 1))).astype(np.uint16)
    return map1.reshape(-1, size, 2), map2.reshape(-1, size)


#: faces per frame from which ``method="auto"`` samples with one cv2.remap over stacked maps instead
#: of a warpAffine per face; None = never.  Measured (``edgepose-bench profile --face-sweep``,
#: docs/results/pipeline.md): building the maps in NumPy costs more than the per-face calls save,
#: so the per-face warpAffine was the faster one at every N in 1..8 on the 2-core CPU.
REMAP_MIN_FACES: int | None = None


def crop_images(frame: np.ndarray, boxes, spec: PreprocessSpec, angle_deg=0.0, flip=False,
                method: str = "auto") -> np.ndarray:
    """All faces of a frame -> (N, S, S[, C]) uint8 crops, identical to :func:`crop_image` per face.

    ``method``: ``"remap"`` samples every crop in one ``cv2.remap`` over stacked fixed-point
    maps (:func:`warp_maps`); ``"per_face"`` calls ``cv2.warpAffine`` once per face; ``"auto"``
    takes remap from :data:`REMAP_MIN_FACES` faces on (never, as measured).  Both give the same
    pixels.  ``angle_deg`` / ``flip``: one value or one per face.
    """
    if method not in ("auto", "remap", "per_face"):
        raise ValueError(f"method must be auto, remap or per_face, got {method!r}")
    _check_frame(frame)
    S = spec.input_size
    regions = crop_boxes(list(boxes), spec.crop)
    n = regions.shape[0]
    shape = (n, S, S) + (() if frame.ndim == 2 else (frame.shape[2],))
    if n == 0:
        return np.zeros(shape, np.uint8)
    M = crop_affines(regions[:, 0], regions[:, 1], regions[:, 2], S,
                     np.broadcast_to(np.asarray(angle_deg, np.float64), (n,)),
                     np.broadcast_to(np.asarray(flip), (n,)))
    if method == "per_face" or (method == "auto" and (REMAP_MIN_FACES is None or n < REMAP_MIN_FACES)):
        out = np.empty(shape, frame.dtype)
        for i in range(n):
            out[i] = cv2.warpAffine(frame, M[i], (S, S), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=_fill(frame, spec))
        return out
    map1, map2 = warp_maps(M, S)
    out = cv2.remap(frame, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=_fill(frame, spec))
    return out.reshape(shape)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """GRAY (HxW or HxWx1) or BGRA -> BGR; BGR passes through."""
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame.reshape(frame.shape[0], frame.shape[1]), cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _per_channel(values: Sequence[float], n: int) -> np.ndarray:
    # the first n values, or a short list repeated (one mean/std for every channel)
    vals = tuple(values)
    return np.asarray(vals[:n] if len(vals) >= n else vals * n, np.float32)[:n]


def _planes(crops: np.ndarray, spec: PreprocessSpec) -> list[np.ndarray]:
    """uint8 crops (N, S, S[, C]) -> one (N, S, S) source plane per network input channel."""
    if spec.color_order == "GRAY":
        if crops.ndim == 3 or crops.shape[3] == 1:
            g = crops.reshape(crops.shape[:3])
        else:  # one cvtColor over the crops stacked on top of each other
            n, S, W = crops.shape[:3]
            bgr = to_bgr(crops.reshape(n * S, W, crops.shape[3]))
            g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).reshape(n, S, W)
        return [g] * spec.channels
    if crops.ndim == 3 or crops.shape[3] == 1:  # grayscale/IR frames are replicated to 3 channels
        g = crops.reshape(crops.shape[:3])
        return [g, g, g]
    order = (2, 1, 0) if spec.color_order == "RGB" else (0, 1, 2)  # BGR(A) input; alpha is dropped
    return [crops[..., c] for c in order]


def normalize_batch(crops: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 crops (N, S, S, 3 BGR) or (N, S, S) GRAY -> float32 (N, C, S, S) (or NHWC) in one step.

    Each output value is ``(v * pixel_scale - mean[c]) / std[c]`` in float32.  For uint8 input
    that is a 256-entry table per channel, applied with ``cv2.LUT`` to each channel plane of
    the whole block (the same float32 operations on the same values, so bit-identical to the
    arithmetic, and 5-8x faster than it on 8 faces of 96 px).
    """
    crops = np.asarray(crops)
    if crops.ndim not in (3, 4):
        raise ValueError(f"crops must be (N, S, S) or (N, S, S, C), got shape {crops.shape}")
    planes = _planes(crops, spec)
    C = len(planes)
    n, S, W = crops.shape[:3]
    mean, std = _per_channel(spec.mean, C), _per_channel(spec.std, C)
    scale = np.float32(spec.pixel_scale)
    out = np.empty((n, C, S, W), np.float32)
    if crops.dtype == np.uint8:
        levels = np.arange(256, dtype=np.float32)
        for c, p in enumerate(planes):
            lut = (levels * scale - mean[c]) / std[c]
            flat = np.ascontiguousarray(p).reshape(n * S, W)
            out[:, c] = cv2.LUT(flat, lut).reshape(n, S, W)
    else:  # float crops (e.g. from an augmentation): the same arithmetic, no table
        for c, p in enumerate(planes):
            out[:, c] = (p.astype(np.float32) * scale - mean[c]) / std[c]
    return out if spec.layout == "NCHW" else np.ascontiguousarray(out.transpose(0, 2, 3, 1))


def normalize(crop: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 crop (BGR HxWx3 or GRAY HxW) -> float32 CHW (or HWC) network input."""
    return normalize_batch(np.asarray(crop)[None], spec)[0]


def preprocess(frame: np.ndarray, box, spec: PreprocessSpec) -> np.ndarray:
    """One face: frame + box -> (C, S, S) float32."""
    return normalize(crop_image(frame, box, spec), spec)


def preprocess_batch(frame: np.ndarray, boxes, spec: PreprocessSpec, method: str = "auto") -> np.ndarray:
    """All faces of a frame -> (N, C, S, S) float32 (N may be 0), in one step.

    Boxes and affines of all faces are computed at once, the crops come from :func:`crop_images`
    (a warpAffine per face, or one ``cv2.remap`` for all faces; identical pixels either way), the
    normalisation from :func:`normalize_batch` over the whole block.  The result equals stacking :func:`preprocess`
    per face exactly.
    """
    boxes = list(boxes)
    if not boxes:
        c = spec.channels
        shape = (0, c, spec.input_size, spec.input_size) if spec.layout == "NCHW" else (0, spec.input_size, spec.input_size, c)
        return np.zeros(shape, np.float32)
    return normalize_batch(crop_images(frame, boxes, spec, method=method), spec)
