"""Augmentation with exact label updates.

Geometry (box jitter, in-plane rotation, horizontal flip) is applied in ONE resampling through
:func:`edgepose.preprocess.crop_image`, whose affine rotates the crop counter-clockwise on
screen and then mirrors it; the label follows through :func:`edgepose.geometry.rotate_label`
and then :func:`edgepose.geometry.flip_label` in that same order, and landmarks go through the
same affine.  Box jitter only translates/scales the crop, which leaves an orthographic pose
label unchanged.

Photometric ops (brightness/contrast, blur, noise, grayscale, an IR/NIR look, occlusion) run
on the crop afterwards and never touch the label.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import cv2
import numpy as np

from .. import geometry
from ..preprocess import PreprocessSpec, crop_affine, crop_box, crop_image
from .sample import Sample

__all__ = ["Augment", "GeometryParams", "crop_sample", "transform_points", "jitter_box", "closest_euler",
           "euler_label"]


@dataclass
class GeometryParams:
    angle_deg: float = 0.0  # CCW on screen
    flip: bool = False
    box: tuple | None = None  # the (jittered) box actually cropped


def _full_box(image: np.ndarray) -> tuple[float, float, float, float]:
    h, w = image.shape[:2]
    return 0.0, 0.0, float(w), float(h)


def transform_points(pts: np.ndarray | None, box, spec: PreprocessSpec, angle_deg: float = 0.0,
                     flip: bool = False) -> np.ndarray | None:
    """Frame pixels -> crop pixels under the exact affine :func:`crop_image` samples with."""
    if pts is None:
        return None
    cx, cy, side = crop_box(box, spec.crop)
    M = crop_affine(cx, cy, side, spec.input_size, angle_deg, flip)  # crop -> frame
    A, t = M[:, :2], M[:, 2]
    return (np.asarray(pts, np.float64) - t) @ np.linalg.inv(A).T


def crop_sample(sample: Sample, spec: PreprocessSpec, angle_deg: float = 0.0, flip: bool = False,
                box=None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Crop a sample (optionally rotated/flipped) and update its label and landmarks exactly.

    Returns (crop uint8 SxS[x3], R' or None, landmarks in crop pixels or None).
    """
    box = box if box is not None else (sample.box if sample.box is not None else _full_box(sample.image))
    crop = crop_image(sample.image, box, spec, angle_deg=angle_deg, flip=flip)
    R = sample.R
    if R is not None:
        R = geometry.rotate_label(R, angle_deg) if angle_deg else np.array(R, dtype=np.float64)
        if flip:
            R = geometry.flip_label(R)
    lm = transform_points(sample.landmarks, box, spec, angle_deg, flip)
    return crop, R, lm


def closest_euler(R: np.ndarray, ref) -> np.ndarray:
    """The one of R's two Euler triples (:func:`geometry.euler_solutions`) nearest to ``ref``.

    Distance: summed wrapped angle differences.  The two triples differ by (180, 180 - 2y, 180),
    so any reference within ~180 deg (summed) of the right one picks it; this keeps a label
    continuous (yaw 95 stays 95) through image transforms that do not preserve the triple exactly.
    """
    a, b = geometry.euler_solutions(R)
    ref = np.asarray(ref, dtype=np.float64)
    da = np.abs(geometry.angle_diff(a, ref)).sum(-1)
    db = np.abs(geometry.angle_diff(b, ref)).sum(-1)
    return np.where((db < da)[..., None], b, a)


def euler_label(sample: Sample, R: np.ndarray, angle_deg: float = 0.0, flip: bool = False) -> np.ndarray:
    """(pitch, yaw, roll) degrees for the label ``R`` that :func:`crop_sample` returned for
    ``sample`` under (``angle_deg``, ``flip``).

    R stays the source of truth and the result always decomposes it exactly.  With the reader's
    own triple (``sample.extra["pyr_deg"]``, e.g. 300W-LP ``Pose_Para``, which may hold
    |yaw| > 90) the label keeps it: unchanged without geometry, ``(p, -y, -r)`` after a
    horizontal flip (exact: F Rz Ry Rx F = Rz(-r) Ry(-y) Rx(p)), and after an in-plane rotation
    the solution of R closest to the transformed triple.  Without one, the decode of R
    (|yaw| <= 90) is all there is.
    """
    R = np.asarray(R, dtype=np.float64)
    own = sample.extra.get("pyr_deg") if sample.extra else None
    if own is None:
        return geometry.matrix_to_euler(R)
    p, y, r = (float(v) for v in np.asarray(own, dtype=np.float64).reshape(3))
    # first-order guess of the rotated triple: a CCW image rotation lowers roll by the angle
    # (exact for a frontal face); closest_euler only needs it to pick the right branch
    r = r - float(angle_deg)
    ref = np.array([p, -y, -r] if flip else [p, y, r])
    if not angle_deg and geometry.euler_describes(ref, R):
        return ref
    # rotated, or a reader triple that does not describe R: take R's nearest decomposition
    return closest_euler(R, ref)


def jitter_box(box, scale: float, shift: float, rng: np.random.Generator):
    """Scale the box about its centre by U(1-scale, 1+scale) and shift it by U(-shift, shift)
    times its width/height."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    f = rng.uniform(1 - scale, 1 + scale) if scale > 0 else 1.0
    dx = rng.uniform(-shift, shift) * w if shift > 0 else 0.0
    dy = rng.uniform(-shift, shift) * h if shift > 0 else 0.0
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    return cx - f * w / 2, cy - f * h / 2, cx + f * w / 2, cy + f * h / 2


@dataclass
class Augment:
    """Random augmentation policy; every field is a probability or a magnitude (0 = off).

    ``rotate_deg``: the crop is rotated by U(-rotate_deg, rotate_deg); 180 or more means the
    full circle (for full-range models).  ``box_scale`` / ``box_shift``: box jitter (fractions).
    ``nir_p``: IR look = gray + gamma/contrast + vignetting + specular hot spots.
    ``occlusion_p``: a random rectangle or a hand-like blob covering part of the face.
    """

    flip_p: float = 0.5
    rotate_p: float = 0.0
    rotate_deg: float = 30.0
    box_scale: float = 0.0
    box_shift: float = 0.0
    brightness: float = 0.0  # +- fraction of 255
    contrast: float = 0.0  # gain in [1 - c, 1 + c]
    blur_p: float = 0.0
    blur_sigma: Sequence[float] = (0.5, 2.0)
    noise_p: float = 0.0
    noise_std: float = 8.0  # max gray levels
    gray_p: float = 0.0
    nir_p: float = 0.0
    occlusion_p: float = 0.0
    occlusion_size: Sequence[float] = (0.15, 0.45)  # fraction of the crop side

    def __post_init__(self):
        self.blur_sigma, self.occlusion_size = tuple(self.blur_sigma), tuple(self.occlusion_size)
        for name in ("flip_p", "rotate_p", "blur_p", "noise_p", "gray_p", "nir_p", "occlusion_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                from ..errors import DataError

                raise DataError(f"augmentation {name} is a probability in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "Augment | None":
        if d is None:
            return None
        from ..errors import DataError

        valid = set(cls.__dataclass_fields__)
        bad = set(d) - valid
        if bad:
            raise DataError(f"unknown augmentation keys {sorted(bad)}; valid keys: {sorted(valid)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blur_sigma"], d["occlusion_size"] = list(self.blur_sigma), list(self.occlusion_size)
        return d

    # -- geometry ---------------------------------------------------------------------------
    def sample_geometry(self, sample: Sample, rng: np.random.Generator) -> GeometryParams:
        box = sample.box if sample.box is not None else _full_box(sample.image)
        if self.box_scale > 0 or self.box_shift > 0:
            box = jitter_box(box, self.box_scale, self.box_shift, rng)
        angle = 0.0
        if self.rotate_p > 0 and rng.random() < self.rotate_p:
            r = min(float(self.rotate_deg), 180.0)
            angle = float(rng.uniform(-r, r))
        flip = bool(self.flip_p > 0 and rng.random() < self.flip_p)
        return GeometryParams(angle_deg=angle, flip=flip, box=tuple(box))

    # -- photometric ------------------------------------------------------------------------
    def photometric(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = crop.astype(np.float32)
        if self.contrast > 0 or self.brightness > 0:
            gain = rng.uniform(1 - self.contrast, 1 + self.contrast) if self.contrast > 0 else 1.0
            bias = rng.uniform(-self.brightness, self.brightness) * 255 if self.brightness > 0 else 0.0
            x = (x - 127.5) * gain + 127.5 + bias
        if self.nir_p > 0 and rng.random() < self.nir_p:
            x = nir_look(x, rng)
        elif self.gray_p > 0 and rng.random() < self.gray_p and x.ndim == 3:
            g = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
            x = np.repeat(g[..., None], 3, axis=2)
        if self.blur_p > 0 and rng.random() < self.blur_p:
            s = float(rng.uniform(*self.blur_sigma))
            x = cv2.GaussianBlur(x, (0, 0), s)
        if self.occlusion_p > 0 and rng.random() < self.occlusion_p:
            x = occlude(x, rng, tuple(self.occlusion_size))
        if self.noise_p > 0 and rng.random() < self.noise_p:
            x = x + rng.normal(0.0, rng.uniform(0, self.noise_std), size=x.shape).astype(np.float32)
        return np.clip(x, 0, 255).astype(np.uint8)

    def __call__(self, sample: Sample, spec: PreprocessSpec, rng: np.random.Generator):
        """-> (crop uint8, R' or None, landmarks' or None, GeometryParams)."""
        g = self.sample_geometry(sample, rng)
        crop, R, lm = crop_sample(sample, spec, g.angle_deg, g.flip, box=g.box)
        return self.photometric(crop, rng), R, lm, g


def nir_look(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make a colour crop look like an in-cabin NIR frame: one channel, skin brighter and flat
    (gamma), strong falloff from the active illuminator (vignetting) and specular hot spots."""
    h, w = x.shape[:2]
    g = x if x.ndim == 2 else cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
    gamma = rng.uniform(0.6, 1.3)
    g = 255.0 * (np.clip(g, 0, 255) / 255.0) ** gamma
    g = (g - g.mean()) * rng.uniform(0.8, 1.5) + g.mean()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (0.5 * max(h, w)) ** 2
    g = g * (1.0 - rng.uniform(0.2, 0.6) * np.clip(r2, 0, 1.5) / 1.5)
    for _ in range(int(rng.integers(0, 3))):  # glints on glasses / skin
        hx, hy = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(0.01, 0.04) * max(h, w)
        g = g + rng.uniform(80, 200) * np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * s * s))
    return g if x.ndim == 2 else np.repeat(g[..., None], x.shape[2], axis=2)


def occlude(x: np.ndarray, rng: np.random.Generator, size=(0.15, 0.45)) -> np.ndarray:
    """Cover part of the crop with a flat rectangle or a hand-like blob (palm + fingers)."""
    h, w = x.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    s = rng.uniform(*size) * min(h, w)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    if rng.random() < 0.5:
        aspect = rng.uniform(0.5, 2.0)
        x1, y1 = int(cx - s * aspect / 2), int(cy - s / aspect / 2)
        cv2.rectangle(mask, (x1, y1), (int(x1 + s * aspect), int(y1 + s / aspect)), 255, -1)
    else:
        ang = rng.uniform(0, 360)
        cv2.ellipse(mask, (int(cx), int(cy)), (int(s * 0.45), int(s * 0.35)), ang, 0, 360, 255, -1)
        for k in range(4):  # fingers fan out from the palm
            a = np.radians(ang - 45 + 30 * k)
            fx, fy = cx + np.cos(a) * s * 0.55, cy + np.sin(a) * s * 0.55
            cv2.ellipse(mask, (int(fx), int(fy)), (int(s * 0.28), int(s * 0.08)), np.degrees(a), 0, 360, 255, -1)
    if x.ndim == 2:
        colour = rng.uniform(0, 255)
    else:
        skin = np.array([rng.uniform(60, 200), rng.uniform(90, 210), rng.uniform(120, 240)], np.float32)
        colour = skin if rng.random() < 0.6 else rng.uniform(0, 255, size=x.shape[2]).astype(np.float32)
    m = cv2.GaussianBlur(mask, (0, 0), 1.0).astype(np.float32) / 255.0
    if x.ndim == 3:
        m = m[..., None]
    return x * (1 - m) + colour * m
