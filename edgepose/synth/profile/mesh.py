"""The profiling mesh: the fitted face, depth-estimated anchors around it, and the image border.

Zhu et al. (300W-LP, CVPR 2016, "face profiling") extend the fitted face with anchors on the face
contour, hair and image border, with estimated depth, so that the rotated image has no holes.
Here, in the head frame of the canonical face (units: outer eye-corner distance):

* ``face``: the 468 fitted landmarks themselves (their own depth), triangulated once
  (Delaunay on the canonical face seen from the front);
* ``rings``: three rings of anchors outside the face oval, each a radial step out and a step back
  along a head-sized ellipsoid (hair and forehead above, ears at the sides, neck below); each
  ring point is placed relative to its OBSERVED oval point (so the contour stays continuous) by
  the fitted similarity;
* ``border``: points on the output image's border that do not rotate (background), joined to the
  outermost ring by a band of triangles.  The mesh is a disk whose boundary is fixed on the
  image border, so every output pixel is covered, whatever the rotation.

Texture coordinates of every vertex are its position in the source photo (padded by
reflection), so the face keeps its own pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .fit import FaceFit, canonical_face, image_to_camera

__all__ = ["FACE_OVAL", "ProfileMesh", "build_mesh", "face_triangles", "mirror_pairs", "HEAD_CENTER"]

#: MediaPipe Face Mesh face-oval landmarks in order (forehead top, subject's left side, chin, right side)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
#: the rotation pivot (head centre) in the canonical frame: about a head's half depth behind the
#: face oval (a head is ~2.1 eye-corner distances deep), level with the upper cheeks
HEAD_CENTER = np.array([0.0, 0.1, -1.05])
# rings: (radial scale of the oval about the face centre, step back in z, eye-corner units)
_RINGS = ((1.12, 0.18), (1.32, 0.5), (1.55, 0.95))
_BORDER_PER_SIDE = 8
NOSE_TIP = 1


@lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:
    """(T, 3) triangles of the 468 landmarks, counter-clockwise seen from the front."""
    from scipy.spatial import Delaunay

    M = canonical_face()
    tri = Delaunay(M[:, :2]).simplices.astype(np.int32)
    a, b, c = (M[tri[:, k], :2] for k in range(3))
    ccw = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) > 0
    tri[~ccw] = tri[~ccw][:, [0, 2, 1]]
    return tri


@lru_cache(maxsize=1)
def mirror_pairs() -> np.ndarray:
    """For each landmark, its mirror-image landmark (x -> -x on the symmetric canonical face)."""
    M = canonical_face()
    m = M * np.array([-1.0, 1.0, 1.0])
    return np.argmin(((m[:, None] - M[None]) ** 2).sum(-1), 1).astype(np.int32)


@dataclass
class ProfileMesh:
    """Vertices in the SOURCE camera frame (pixels; x right, y up, z toward the viewer)."""

    vertices: np.ndarray      # (V, 3); the first 468 are the landmarks
    uv: np.ndarray            # (V, 2) source image pixels (x right, y down)
    triangles: np.ndarray     # (T, 3) int32; the face's counter-clockwise seen from the front
    rotating: np.ndarray      # (V,) bool: False for the static border
    pivot: np.ndarray         # (3,) rotation centre, source camera frame
    n_face_tris: int          # the first n_face_tris triangles are the face's


def _ring_triangles(a: np.ndarray, b: np.ndarray) -> list:
    """Quads between two equally long closed rings of vertex indices, split into triangles."""
    out = []
    n = len(a)
    for i in range(n):
        j = (i + 1) % n
        out += [(a[i], b[i], b[j]), (a[i], b[j], a[j])]
    return out


def _zip(inner: np.ndarray, inner_ang: np.ndarray, outer: np.ndarray, outer_ang: np.ndarray) -> list:
    """Triangles joining two closed loops sorted by angle (both counter-clockwise)."""
    oi, oo = np.argsort(inner_ang), np.argsort(outer_ang)
    inner, inner_ang, outer, outer_ang = inner[oi], inner_ang[oi], outer[oo], outer_ang[oo]
    i = j = 0
    out = []
    ni, no = len(inner), len(outer)
    while i < ni or j < no:
        a_next = inner_ang[(i + 1) % ni] + (2 * np.pi if i + 1 >= ni else 0)
        b_next = outer_ang[(j + 1) % no] + (2 * np.pi if j + 1 >= no else 0)
        if j >= no or (i < ni and a_next <= b_next):
            out.append((inner[i % ni], outer[j % no], inner[(i + 1) % ni]))
            i += 1
        else:
            out.append((inner[i % ni], outer[j % no], outer[(j + 1) % no]))
            j += 1
    return out


def build_mesh(fit: FaceFit, border: tuple[float, float, float, float], border_depth: float = 3.0) -> ProfileMesh:
    """The profiling mesh of ``fit``.  ``border`` = (x1, y1, x2, y2) in source image pixels: the
    region the output image shows (its border anchors stay put), ``border_depth`` eye-corner
    units behind the pivot."""
    M = canonical_face()
    s, Q, t = fit.scale, fit.R.T, fit.t
    cam = image_to_camera(fit.points)
    to_cam = lambda p: s * p @ Q.T + t  # noqa: E731  canonical -> source camera frame
    oval = np.asarray(FACE_OVAL)
    centre = M[oval].mean(0)
    verts = [cam]
    rings = [oval]
    n = len(cam)
    for scale_r, back in _RINGS:
        head = M[oval].copy()
        head[:, :2] = centre[:2] + scale_r * (head[:, :2] - centre[:2])
        head[:, 2] -= back
        # offset from the OBSERVED oval point, so the contour stays where the fit put it
        ring = cam[oval] + (head - M[oval]) @ (s * Q).T
        verts.append(ring)
        rings.append(np.arange(n, n + len(oval)))
        n += len(oval)
    x1, y1, x2, y2 = border
    k = _BORDER_PER_SIDE
    lin = np.linspace(0, 1, k, endpoint=False)
    bxy = np.concatenate([np.column_stack([x1 + (x2 - x1) * lin, np.full(k, y1)]),
                          np.column_stack([np.full(k, x2), y1 + (y2 - y1) * lin]),
                          np.column_stack([x2 - (x2 - x1) * lin, np.full(k, y2)]),
                          np.column_stack([np.full(k, x1), y2 - (y2 - y1) * lin])])
    pivot = to_cam(HEAD_CENTER)
    bz = np.full(len(bxy), pivot[2] - border_depth * s)
    bcam = np.column_stack([bxy[:, 0], -bxy[:, 1], bz])
    verts.append(bcam)
    border_idx = np.arange(n, n + len(bxy))
    V = np.concatenate(verts)
    tris = [face_triangles()]
    for a, b in zip(rings[:-1], rings[1:]):
        tris.append(np.asarray(_ring_triangles(a, b), np.int32))
    # angles in the source image around the face centre (camera frame: y up -> CCW)
    c = to_cam(centre)[:2]
    ang = lambda idx: np.arctan2(V[idx, 1] - c[1], V[idx, 0] - c[0])  # noqa: E731
    tris.append(np.asarray(_zip(rings[-1], ang(rings[-1]), border_idx, ang(border_idx)), np.int32))
    T = np.concatenate(tris).astype(np.int32)  # rendered two-sided: only the face's winding matters
    uv = np.column_stack([V[:, 0], -V[:, 1]])
    rotating = np.ones(len(V), bool)
    rotating[border_idx] = False
    return ProfileMesh(vertices=V, uv=uv, triangles=T, rotating=rotating, pivot=pivot,
                       n_face_tris=len(tris[0]))
