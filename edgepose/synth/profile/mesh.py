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

__all__ = ["FACE_OVAL", "ProfileMesh", "HeadPart", "head_part", "build_mesh", "face_triangles", "mirror_pairs",
           "HEAD_CENTER", "vertex_normals", "signed_areas"]

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
    normals: np.ndarray       # (V, 3) vertex normals in the photo (border: +z)
    face_area: np.ndarray     # signed areas of the face triangles in the photo


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


def vertex_normals(V: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (counter-clockwise triangles face +z)."""
    n = np.zeros_like(V)
    fn = np.cross(V[T[:, 1]] - V[T[:, 0]], V[T[:, 2]] - V[T[:, 0]])
    for k in range(3):
        np.add.at(n, T[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def signed_areas(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Signed 2D areas of triangles (x, y of P; counter-clockwise positive)."""
    a, b, c = P[T[:, 0], :2], P[T[:, 1], :2], P[T[:, 2], :2]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


@dataclass
class HeadPart:
    """The rotating part of a fit's mesh (landmarks + anchor rings), pose-independent: built once
    per photo and reused for all its renders."""

    vertices: np.ndarray      # (H, 3) source camera frame
    triangles: np.ndarray     # face triangles first, then the rings'
    normals: np.ndarray       # (H, 3) vertex normals in the source frame
    face_area: np.ndarray     # signed areas of the face triangles in the photo
    outer: np.ndarray         # indices of the outermost ring
    outer_angle: np.ndarray   # their angles around the face centre in the photo
    centre: np.ndarray        # face centre (x, y), source camera frame
    pivot: np.ndarray
    scale: float
    n_face_tris: int


def head_part(fit: FaceFit) -> HeadPart:
    M = canonical_face()
    s, Q, t = fit.scale, fit.R.T, fit.t
    cam = image_to_camera(fit.points)
    oval = np.asarray(FACE_OVAL)
    centre = M[oval].mean(0)
    verts, rings, n = [cam], [oval], len(cam)
    for scale_r, back in _RINGS:
        head = M[oval].copy()
        head[:, :2] = centre[:2] + scale_r * (head[:, :2] - centre[:2])
        head[:, 2] -= back
        # offset from the OBSERVED oval point, so the contour stays where the fit put it
        verts.append(cam[oval] + (head - M[oval]) @ (s * Q).T)
        rings.append(np.arange(n, n + len(oval)))
        n += len(oval)
    V = np.concatenate(verts)
    ft = face_triangles()
    T = np.concatenate([ft] + [np.asarray(_ring_triangles(a, b), np.int32) for a, b in zip(rings[:-1], rings[1:])])
    c = (s * centre @ Q.T + t)[:2]
    outer = rings[-1]
    return HeadPart(vertices=V, triangles=T.astype(np.int32), normals=vertex_normals(V, T),
                    face_area=signed_areas(V, ft), outer=outer,
                    outer_angle=np.arctan2(V[outer, 1] - c[1], V[outer, 0] - c[0]), centre=c,
                    pivot=s * HEAD_CENTER @ Q.T + t, scale=s, n_face_tris=len(ft))


def build_mesh(fit: FaceFit, border: tuple[float, float, float, float], border_depth: float = 3.0,
               head: HeadPart | None = None) -> ProfileMesh:
    """The profiling mesh of ``fit``.  ``border`` = (x1, y1, x2, y2) in source image pixels: the
    region the output image shows (its border anchors stay put), ``border_depth`` eye-corner
    units behind the pivot.  ``head``: the fit's :func:`head_part`, when already built."""
    head = head or head_part(fit)
    x1, y1, x2, y2 = border
    k = _BORDER_PER_SIDE
    lin = np.linspace(0, 1, k, endpoint=False)
    bxy = np.concatenate([np.column_stack([x1 + (x2 - x1) * lin, np.full(k, y1)]),
                          np.column_stack([np.full(k, x2), y1 + (y2 - y1) * lin]),
                          np.column_stack([x2 - (x2 - x1) * lin, np.full(k, y2)]),
                          np.column_stack([np.full(k, x1), y2 - (y2 - y1) * lin])])
    bcam = np.column_stack([bxy[:, 0], -bxy[:, 1], np.full(len(bxy), head.pivot[2] - border_depth * head.scale)])
    n = len(head.vertices)
    border_idx = np.arange(n, n + len(bxy))
    V = np.concatenate([head.vertices, bcam])
    # angles in the photo around the face centre (camera frame: y up -> counter-clockwise)
    b_ang = np.arctan2(bcam[:, 1] - head.centre[1], bcam[:, 0] - head.centre[0])
    band = np.asarray(_zip(head.outer, head.outer_angle, border_idx, b_ang), np.int32)
    T = np.concatenate([head.triangles, band])  # rendered two-sided: only the face's winding matters
    rotating = np.ones(len(V), bool)
    rotating[border_idx] = False
    normals = np.concatenate([head.normals, np.tile([0.0, 0.0, 1.0], (len(bxy), 1))])
    return ProfileMesh(vertices=V, uv=np.column_stack([V[:, 0], -V[:, 1]]), triangles=T, rotating=rotating,
                       pivot=head.pivot, n_face_tris=head.n_face_tris, normals=normals, face_area=head.face_area)
