"""Rigid (similarity) fit of the canonical face to dense landmarks: the source pose of a photo.

The canonical face (``canonical_face.json``, 468 points in MediaPipe's topology, head frame of
:mod:`edgepose.geometry`: x = the subject's left, y up, z out of the face; units: the outer
eye-corner distance is 1) was built with :func:`build_canonical` from the MediaPipe landmarks of
the 17 Apache-2.0 ``faces-aws`` photos: generalised Procrustes, then mirror-symmetrised, then
oriented.  Its pitch zero is fixed by one offset, ``pitch_offset_deg`` in the JSON, chosen as
the median pitch residual on the AFLW2000-3D / 300W-LP fixtures (their 3DMM's frontal
definition; see docs/results/profiling.md): the file stores numbers, never pixels.

Landmarks are a weak-perspective 3D point set in image pixels (x right, y down, z toward the
viewer); in the camera frame of :mod:`edgepose.geometry` (x right, y up, z toward the viewer)
they are ``(x, -y, z)``.  The fit solves ``cam ~ s R3 M + t`` (Umeyama) with ``R3 = R.T``,
so ``R`` is an ordinary edgepose label (rows = head axes in camera coordinates).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ... import geometry

__all__ = ["FaceFit", "fit_pose", "canonical_face", "umeyama", "build_canonical", "image_to_camera"]

_CANONICAL = Path(__file__).with_name("canonical_face.json")
_EYES = (33, 263)  # outer eye corners: subject's right, left


@dataclass
class FaceFit:
    """A photo's dense fit: ``points`` (468, 3) image px (z toward the viewer), the similarity
    ``cam ~ scale * R.T @ M + t`` to the canonical face (``t``: camera frame, pixels, y up) and
    the RMS residual in units of the eye-corner distance."""

    points: np.ndarray
    R: np.ndarray
    scale: float
    t: np.ndarray
    residual: float

    @property
    def euler(self) -> np.ndarray:
        return geometry.matrix_to_euler(self.R)


def image_to_camera(points: np.ndarray) -> np.ndarray:
    """Image pixels (x right, y down, z toward the viewer) -> camera frame (y up)."""
    p = np.array(points, np.float64)
    p[..., 1] *= -1
    return p


def umeyama(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, Q, t) minimising sum w |dst - (s Q src + t)|^2 (Q a proper rotation)."""
    w = np.ones(len(src)) if w is None else np.asarray(w, np.float64)
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    a, b = src - ms, dst - md
    cov = (b * w[:, None]).T @ a
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt)) or 1.0
    D = np.diag([1.0, 1.0, d])
    Q = U @ D @ Vt
    var = float((w * (a ** 2).sum(1)).sum())
    s = float(np.trace(np.diag(S) @ D) / var)
    return s, Q, md - s * Q @ ms


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """(468, 3) canonical face in the head frame, pitch offset applied."""
    d = json.loads(_CANONICAL.read_text())
    M = np.asarray(d["points"], np.float64)
    return M @ geometry.rot_x(np.radians(d.get("pitch_offset_deg", 0.0))).T


def fit_pose(points: np.ndarray, trim: float = 0.2) -> FaceFit:
    """Similarity fit of the canonical face to ``points``; one refit without the worst ``trim``
    fraction of points (mouth and eye motion, lost contour points)."""
    M = canonical_face()
    cam = image_to_camera(points)
    s, Q, t = umeyama(M, cam)
    r = np.linalg.norm(cam - (s * M @ Q.T + t), axis=1)
    if trim > 0:
        keep = r <= np.quantile(r, 1.0 - trim)
        s, Q, t = umeyama(M[keep], cam[keep])
        r = np.linalg.norm(cam - (s * M @ Q.T + t), axis=1)
    return FaceFit(points=np.asarray(points, np.float64), R=Q.T, scale=s, t=t,
                   residual=float(np.sqrt(np.mean(r ** 2)) / s))


def build_canonical(shapes: list[np.ndarray], iters: int = 5) -> np.ndarray:
    """Canonical face from landmark sets (image px): Procrustes mean, mirror-symmetrised, in the
    head frame (x = right eye -> left eye, y = chin -> forehead orthogonalised, z = x cross y),
    eye-corner distance 1.  The symmetry pairing comes from the mean shape itself."""
    cams = [image_to_camera(p) for p in shapes]
    mean = cams[0] - cams[0].mean(0)
    for _ in range(iters):
        aligned = []
        for c in cams:
            s, Q, t = umeyama(c, mean)
            aligned.append(s * c @ Q.T + t)
        mean = np.mean(aligned, 0)
        mean = mean - mean.mean(0)
        mean /= np.linalg.norm(mean[_EYES[1]] - mean[_EYES[0]])
    # the symmetry plane: normal along the eye line; pair every point with its mirror image
    for _ in range(3):
        n = mean[_EYES[1]] - mean[_EYES[0]]
        n /= np.linalg.norm(n)
        c = mean.mean(0)
        mirror = mean - 2 * ((mean - c) @ n)[:, None] * n
        pair = np.argmin(((mirror[:, None] - mean[None]) ** 2).sum(-1), 1)
        mean = (mean + mirror[pair]) / 2
    x = mean[_EYES[1]] - mean[_EYES[0]]
    x /= np.linalg.norm(x)
    y = mean[10] - mean[152]  # chin -> top of the forehead
    y -= (y @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return (mean - mean.mean(0)) @ np.stack([x, y, z]).T
