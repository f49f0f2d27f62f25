"""Procedural whole-head meshes in numpy: skull, face features, ears, neck, hair, accessories.

The skull is a deformed ellipsoid written as a function of the direction ``d`` from the skull
centre (:class:`Skull`): every feature (eyes, brows, nose, lips, ears, hair line, mask) is placed
by an (azimuth, elevation) direction on that surface, so key points are exact surface points of
the same function the mesh is built from.  Head frame = :mod:`edgepose.geometry`'s model frame:
x = subject's left, y up, z out of the face; metres; origin = skull centre = rotation pivot.

Vertex layout (float32, 11 per vertex): position (3), normal (3), RGBA colour (4), material (1).
Opaque and transparent (glasses lenses) parts are separate so the renderer can draw lenses last
with blending and without depth writes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .identity import HeadIdentity

__all__ = ["HeadMesh", "Skull", "build_head", "direction", "KEYPOINT_NAMES", "MATERIALS"]

#: Material ids (the renderer's NIR reflectance table is indexed by them).
MATERIALS = {"skin": 0, "lips": 1, "sclera": 2, "iris": 3, "pupil": 4, "brow": 5, "hair": 6,
             "cloth": 7, "frame": 8, "lens": 9, "mask": 10, "cap": 11}

#: Key points: the first five in YuNet order ("right" = the subject's right, image-left when
#: frontal), then the head top and the ears.
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth", "left_mouth",
                  "head_top", "right_ear", "left_ear")


def direction(az, el) -> np.ndarray:
    """Unit direction(s) for azimuth ``az`` (deg, + toward the subject's left = +x) and
    elevation ``el`` (deg, + up); az = el = 0 is straight out of the face (+z)."""
    a, e = np.radians(np.asarray(az, float)), np.radians(np.asarray(el, float))
    return np.stack(np.broadcast_arrays(np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)), -1)


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class Skull:
    """The head surface as a function of direction: ``surface(d) -> points``."""

    def __init__(self, ident: HeadIdentity):
        self.id = ident
        i = ident
        # (direction, angular sigma (rad), radial height m): brow ridge, eye sockets (dents),
        # cheekbones, chin, nose bridge.
        bumps = []
        for s in (-1, 1):
            bumps += [(direction(s * i.eye_az, i.eye_el + 0.9 * i.brow_gap), 0.17, i.brow_ridge),
                      (direction(s * i.eye_az, i.eye_el), 0.11, -0.006),
                      (direction(s * (i.eye_az + 16), i.eye_el - 15), 0.2, i.cheekbones)]
        bumps += [(direction(0, i.chin_el + 7), 0.2, i.chin_bump), (direction(0, i.eye_el), 0.09, 0.004)]
        self.bump_dirs = np.array([b[0] for b in bumps])
        self.bump_sig = np.array([b[1] for b in bumps])
        self.bump_h = np.array([b[2] for b in bumps])

    def surface(self, d: np.ndarray) -> np.ndarray:
        i = self.id
        d = np.asarray(d, float)
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        x, y, z = d[..., 0], d[..., 1], d[..., 2]
        el = np.degrees(np.arcsin(np.clip(y, -1, 1)))
        front = np.clip(z, 0.0, 1.0)
        low = _smoothstep(0.0, -0.85, y)
        px = x * i.half_width * (1.0 - i.jaw_taper * low)
        py = y * i.half_height
        pz = z * i.half_depth
        pz = pz + i.chin_forward * i.half_depth * low * front * (1 - _smoothstep(i.chin_el, i.chin_el - 25, el))
        # under the chin the surface slopes back toward the neck (a jaw line)
        pz = pz - 0.025 * front * _smoothstep(i.chin_el, i.chin_el - 25, el)
        pz = pz - i.occiput * i.half_depth * np.clip(-z, 0, 1) * np.clip(y + 0.3, 0, 1)
        p = np.stack([px, py, pz], -1)
        dd = ((d[..., None, :] - self.bump_dirs) ** 2).sum(-1)
        radial = (self.bump_h * np.exp(-dd / (2 * self.bump_sig ** 2))).sum(-1)
        return p + d * radial[..., None]

    def normal(self, d: np.ndarray, eps: float = 1e-3) -> np.ndarray:
        """Outward surface normal by central differences in two tangent directions."""
        d = np.atleast_2d(np.asarray(d, float))
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        ref = np.where(np.abs(d[:, 1:2]) < 0.9, [[0, 1, 0]], [[1, 0, 0]])
        t1 = np.cross(d, ref)
        t1 /= np.linalg.norm(t1, axis=-1, keepdims=True)
        t2 = np.cross(d, t1)
        a = self.surface(d + eps * t1) - self.surface(d - eps * t1)
        b = self.surface(d + eps * t2) - self.surface(d - eps * t2)
        n = np.cross(a, b)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        return np.where((n * d).sum(-1, keepdims=True) < 0, -n, n)


# --- primitives --------------------------------------------------------------------------------

def _grid_tris(n_rows: int, n_cols: int) -> np.ndarray:
    """Triangles of an n_rows x n_cols vertex grid (row-major)."""
    r, c = np.meshgrid(np.arange(n_rows - 1), np.arange(n_cols - 1), indexing="ij")
    a = (r * n_cols + c).ravel()
    b, cc, dd = a + 1, a + n_cols, a + n_cols + 1
    return np.concatenate([np.stack([a, cc, b], -1), np.stack([b, cc, dd], -1)])


def _vertex_normals(p: np.ndarray, tris: np.ndarray, outward: np.ndarray | None = None) -> np.ndarray:
    fn = np.cross(p[tris[:, 1]] - p[tris[:, 0]], p[tris[:, 2]] - p[tris[:, 0]])
    n = np.zeros_like(p)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    if outward is not None:
        n = np.where((n * outward).sum(-1, keepdims=True) < 0, -n, n)
    return n


def _rot(ax: float = 0.0, ay: float = 0.0, az: float = 0.0) -> np.ndarray:
    from ..geometry import rot_x, rot_y, rot_z

    return rot_z(np.radians(az)) @ rot_y(np.radians(ay)) @ rot_x(np.radians(ax))


@dataclass
class _Part:
    pos: np.ndarray
    nrm: np.ndarray
    col: np.ndarray  # (V, 4)
    mat: float
    tris: np.ndarray


class _Builder:
    def __init__(self):
        self.parts: dict[bool, list[_Part]] = {False: [], True: []}

    def add(self, pos, nrm, tris, color, material: str, transparent: bool = False, two_sided: bool = False):
        """Add a part.  Triangles are re-wound counter-clockwise around the given (outward)
        normals so the renderer can cull back faces; open or thin parts (hair and mask shells,
        brim, frames, lenses) are ``two_sided`` and get both windings."""
        pos, nrm, tris = np.asarray(pos, float), np.asarray(nrm, float), np.asarray(tris)
        fn = np.cross(pos[tris[:, 1]] - pos[tris[:, 0]], pos[tris[:, 2]] - pos[tris[:, 0]])
        flip = (fn * nrm[tris].sum(1)).sum(-1) < 0
        tris = np.where(flip[:, None], tris[:, ::-1], tris)
        if two_sided:
            tris = np.concatenate([tris, tris[:, ::-1]])
        col = np.asarray(color, float)
        if col.ndim == 1:
            col = np.broadcast_to(col, (len(pos), col.shape[0]))
        if col.shape[1] == 3:
            col = np.concatenate([col, np.ones((len(pos), 1))], 1)
        self.parts[transparent].append(_Part(pos, nrm, col, float(MATERIALS[material]), tris))

    def ellipsoid(self, center, radii, R, color, material, n=(12, 16), color_fn=None):
        """Ellipsoid with local unit-sphere parameter u (pole along local z); returns the
        surface map so callers can compute exact surface points."""
        t = np.linspace(0, np.pi, n[0])
        ph = np.linspace(0, 2 * np.pi, n[1])
        T, P = np.meshgrid(t, ph, indexing="ij")
        u = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
        radii, R, center = np.asarray(radii, float), np.asarray(R, float), np.asarray(center, float)
        pos = (u * radii) @ R.T + center
        nrm = (u / radii) @ R.T
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
        col = color_fn(u) if color_fn is not None else color
        self.add(pos, nrm, _grid_tris(*n), col, material)

    def sphere_cap(self, center, radius, axis, max_angle_deg, color, rim_color=None, n=(7, 16)):
        """Spherical cap (skin) of ``radius`` around ``axis`` up to ``max_angle_deg`` from it;
        ``rim_color`` paints the outermost ring (eyelashes)."""
        t = np.radians(np.linspace(0.0, max_angle_deg, n[0]))
        ph = np.linspace(0, 2 * np.pi, n[1])
        T, P = np.meshgrid(t, ph, indexing="ij")
        u = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
        Rz = _rotation_to(np.asarray(axis, float)) if abs(axis[1]) < 0.99 else \
            _rot(ax=-90.0 * np.sign(axis[1]))  # local +z onto +-y
        nrm = u @ Rz.T
        col = np.broadcast_to(np.asarray(color, float), (len(u), 3)).copy()
        if rim_color is not None:
            col[-n[1]:] = rim_color  # the last ring (rings of n[1] vertices, row-major)
        self.add(center + radius * nrm, nrm, _grid_tris(*n), col, "skin", two_sided=True)

    def box(self, center, size, R, color, material):
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * 0.5
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        pos, nrm, tris = [], [], []
        for f in faces:
            q = corners[list(f)] * size @ np.asarray(R).T + center
            n = np.cross(q[1] - q[0], q[2] - q[0])
            n = n if np.dot(n, q.mean(0) - center) > 0 else -n  # outward
            base = len(pos) * 1
            pos += list(q)
            nrm += [n / max(np.linalg.norm(n), 1e-12)] * 4
            tris += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
        self.add(np.array(pos), np.array(nrm), np.array(tris), color, material)

    def build(self, transparent: bool) -> tuple[np.ndarray, np.ndarray]:
        parts = self.parts[transparent]
        if not parts:
            return np.zeros((0, 11), np.float32), np.zeros((0,), np.uint32)
        verts, idx, off = [], [], 0
        for p in parts:
            m = np.full((len(p.pos), 1), p.mat)
            verts.append(np.concatenate([p.pos, p.nrm, p.col, m], 1))
            idx.append(p.tris + off)
            off += len(p.pos)
        return np.concatenate(verts).astype(np.float32), np.concatenate(idx).astype(np.uint32).ravel()


@dataclass
class HeadMesh:
    """Render-ready geometry of one identity plus its label geometry (head frame, metres)."""

    identity: HeadIdentity
    opaque: np.ndarray           # (V, 11) float32
    opaque_idx: np.ndarray       # (3T,) uint32
    transparent: np.ndarray
    transparent_idx: np.ndarray
    keypoints: np.ndarray        # (8, 3) in KEYPOINT_NAMES order
    keypoint_normals: np.ndarray  # (8, 3) outward normals (for the facing test)
    face_points: np.ndarray      # (M, 3) face-region points whose projection defines the face box
    top_y: float                 # highest point (hair / cap included)
    chin_y: float

    @property
    def n_triangles(self) -> int:
        return (len(self.opaque_idx) + len(self.transparent_idx)) // 3


def _skull_grid(n_el: int, n_az: int):
    el = np.linspace(-90, 90, n_el)
    az = np.linspace(-180, 180, n_az)
    E, A = np.meshgrid(el, az, indexing="ij")
    return A, E, direction(A, E).reshape(-1, 3)


def _hair_margin(A, E, i: HeadIdentity, style: str) -> np.ndarray:
    """Signed distance (degrees) inside the region where hair grows for ``style`` (> 0 inside)."""
    nape = {"buzz": -15.0, "short": -25.0, "medium": -40.0, "long": -85.0, "bun": -35.0}[style]
    side = i.ear_el + (5.0 if style != "long" else -40.0)
    knots = ([0, 35, 70, 88, 110, 180], [i.hairline_el, i.hairline_el - 4, i.ear_el + 22, side, side - 6, nape])
    b = np.interp(np.abs(A), *knots)
    # distance to the hairline curve, not just its elevation gap: divide by the curve's slope so
    # steep parts (sideburns) fade over the same width as flat ones (no grid stair-steps)
    slope = (np.interp(np.abs(A) + 0.5, *knots) - np.interp(np.abs(A) - 0.5, *knots)) / np.maximum(np.cos(np.radians(E)), 0.05)
    margin = (E - b) / np.sqrt(1.0 + slope ** 2)
    if style != "long":  # keep the ears free: an elliptic hole around each ear
        ear = np.sqrt(((np.abs(A) - 92) / 15.0) ** 2 + ((E - i.ear_el) / 17.0) ** 2)
        margin = np.minimum(margin, (ear - 1.0) * 15.0)
    return margin


def _shell(builder, skull, A, E, dirs, region, offset, color_fn, material, n_el, n_az,
           extra=None):
    """An open shell over the skull (hair, cap, mask), seen from inside at its rim: two-sided.

    ``region`` is a boolean mask, or a signed margin in degrees (> 0 inside): then the shell
    sinks 2.5 mm under the skin just outside the region, so its visible edge is the smooth curve
    where it crosses the skin instead of the grid's stair-steps."""
    region = np.asarray(region).ravel()
    if region.dtype == bool:
        off, keep_v = np.full(region.shape, float(offset)), region
        tris = _grid_tris(n_el, n_az)
        tris = tris[keep_v[tris].all(1)]
    else:
        w = _smoothstep(-7.0, 7.0, region)  # wider than a grid cell (8 x 6 deg)
        off = offset * w - 0.0025 * (1.0 - w)
        tris = _grid_tris(n_el, n_az)
        tris = tris[(region[tris] > -7.0).any(1)]
    pts = skull.surface(dirs) + dirs * off[:, None]
    if extra is not None:
        pts = extra(pts)
    nrm = _vertex_normals(pts, tris, outward=dirs)
    builder.add(pts, nrm, tris, color_fn(pts), material, two_sided=True)


def build_head(ident: HeadIdentity, detail: int = 1) -> HeadMesh:
    """Build the mesh of ``ident``.  ``detail`` (1..3) scales the tessellation."""
    i = ident
    rng = np.random.default_rng([int(i.seed) & 0x7FFFFFFF, 0x3E5])
    skull = Skull(i)
    bld = _Builder()
    n_el, n_az = 30 * detail + 1, 44 * detail + 1
    A, E, dirs = _skull_grid(n_el, n_az)
    skin = np.array(i.skin)

    # --- skull with painted skin: blush on cheeks, beard shadow, slight per-vertex noise ------
    pts = skull.surface(dirs)
    tris = _grid_tris(n_el, n_az)
    col = np.broadcast_to(skin, pts.shape).copy()
    col *= (1.0 + rng.normal(0, 0.015, (len(pts), 1)))
    for s in (-1, 1):
        w = np.exp(-((dirs - direction(s * (i.eye_az + 10), i.eye_el - 22)) ** 2).sum(-1) / 0.02)
        col = col * (1 - 0.12 * w[:, None]) + 0.12 * w[:, None] * np.array([0.85, 0.45, 0.45])
    if i.beard > 0:
        jaw = (E.ravel() < i.mouth_el + 8) & (np.abs(A.ravel()) < 95) & (E.ravel() > i.chin_el - 30)
        col[jaw] = col[jaw] * (1 - 0.6 * i.beard) + 0.6 * i.beard * np.array(i.hair_color)
    bld.add(pts, _vertex_normals(pts, tris, outward=dirs), tris, np.clip(col, 0, 1), "skin")

    # --- eyes: eyeballs with sclera / iris / pupil rings around the gaze axis ------------------
    kp = {}
    kpn = {}
    for s, name in ((-1, "right_eye"), (1, "left_eye")):
        d = direction(s * i.eye_az, i.eye_el)
        n = skull.normal(d)[0]
        c = skull.surface(d) + n * (0.35 * i.eye_radius) - np.array([0, 0, i.eye_radius])
        # both eyes look at the same point ~0.8 m ahead, offset by the identity's gaze direction
        target = direction(i.gaze_yaw, i.gaze_pitch) * 0.8
        gaze = target - c
        gaze /= np.linalg.norm(gaze)
        Rg = _rotation_to(gaze)
        iris, sclera = np.array(i.iris), np.array([0.93, 0.9, 0.88])

        def eye_col(u, iris=iris, sclera=sclera):
            ang = np.degrees(np.arccos(np.clip(u[:, 2], -1, 1)))[:, None]
            c_ = np.where(ang < 15, 0.02, np.where(ang < 36, iris, sclera))
            c_ = np.where((ang >= 31) & (ang < 36), iris * 0.5, c_)
            return np.broadcast_to(c_, (len(u), 3))

        bld.ellipsoid(c, [i.eye_radius] * 3, Rg, None, "sclera", n=(14, 16), color_fn=eye_col)
        # eyelids: skin caps just outside the eyeball, rims at eye_open above / 1.4x below the gaze
        # axis; the upper rim is darker (lashes)
        for up, rim in ((1.0, i.eye_open), (-1.0, i.eye_open * 1.4)):
            axis = np.array([0.0, up, 0.0])
            lid = skin * (0.9 if up > 0 else 0.95)
            bld.sphere_cap(c, i.eye_radius * 1.07, axis, 90.0 - rim, lid,
                           rim_color=np.array(i.hair_color) * 0.5 if up > 0 else None)
        kp[name], kpn[name] = c + gaze * i.eye_radius, gaze
        # brow: a strip on the surface above the eye
        az = np.linspace(i.eye_az - 12, i.eye_az + 12, 9) * s
        arch = 2.0 * np.cos(np.radians((np.abs(az) - i.eye_az) * 6))
        half = np.degrees(i.brow_thickness / (2 * i.half_height))
        el = (i.eye_el + i.brow_gap + arch)[None, :] + np.array([-half, 0, half])[:, None] * \
            np.linspace(1.0, 0.6, 9)[None, :]
        bd = direction(np.broadcast_to(az, el.shape), el).reshape(-1, 3)
        bp = skull.surface(bd) + skull.normal(bd) * 0.0015
        bt = _grid_tris(3, 9)
        bld.add(bp, _vertex_normals(bp, bt, outward=bd), bt, np.array(i.hair_color) * 0.8, "brow")

    # --- nose: tilted ellipsoid (tip) + bridge ---------------------------------------------------
    base = skull.surface(direction(0, i.nose_el + 4))
    Rn = _rot(ax=-12)
    radii = np.array([i.nose_width, i.nose_length / 2, i.nose_depth * 0.8])
    c_n = base + np.array([0, 0, i.nose_depth * 0.25])

    def nose_col(u):
        dark = (u[:, 1] < -0.75) & (np.abs(u[:, 0]) > 0.2) & (np.abs(u[:, 0]) < 0.55) & (u[:, 2] > -0.2)
        c_ = np.broadcast_to(skin * [1.0, 0.93, 0.92], (len(u), 3)).copy()
        c_[dark] *= 0.35
        return c_

    bld.ellipsoid(c_n, radii, Rn, None, "skin", n=(12, 16), color_fn=nose_col)
    kp["nose_tip"] = _extreme_point(c_n, radii, Rn, np.array([0, 0, 1.0]))
    kpn["nose_tip"] = np.array([0, 0, 1.0])
    root = skull.surface(direction(0, i.eye_el))
    mid = (root + kp["nose_tip"]) / 2 - np.array([0, 0, 0.004])
    v = kp["nose_tip"] - root
    # rotate the ellipsoid's long (local y) axis onto the root -> tip line
    bld.ellipsoid(mid, [0.0075, np.linalg.norm(v) / 2, 0.009], _rot(ax=np.degrees(np.arctan2(v[2], v[1]))),
                  skin, "skin", n=(8, 12))

    # --- lips: a surface-following patch that bulges out of the skin; corners are surface points -
    corners = skull.surface(direction([-i.mouth_az, i.mouth_az], [i.mouth_el, i.mouth_el]))
    up_el = np.degrees(i.lip_thickness / i.half_height) * 1.1    # upper-lip height in degrees
    lo_el = np.degrees(i.lip_thickness / i.half_height) * 1.5
    la, le = np.meshgrid(np.linspace(-1, 1, 15), np.linspace(-1, 1, 9))
    el = i.mouth_el + np.where(le > 0, le * up_el, le * lo_el)
    ld = direction(la * i.mouth_az, el).reshape(-1, 3)
    across = np.sqrt(np.clip(1 - la ** 2, 0, 1))
    bulge = (i.lip_thickness * 0.45 * across * np.cos(le * np.pi / 2) ** 0.5).reshape(-1, 1)
    lp = skull.surface(ld) + skull.normal(ld) * (bulge + 0.0004)
    lt = _grid_tris(9, 15)
    lips = np.array(i.lips)
    lcol = np.broadcast_to(lips, lp.shape).copy()
    lcol[np.abs(le.ravel()) < 0.2] *= 0.45  # the dark line between the lips
    bld.add(lp, _vertex_normals(lp, lt, outward=ld), lt, lcol, "lips")
    cn = skull.normal(direction([-i.mouth_az, i.mouth_az], [i.mouth_el, i.mouth_el]))
    kp["right_mouth"], kp["left_mouth"] = corners[0] + cn[0] * 0.001, corners[1] + cn[1] * 0.001
    kpn["right_mouth"], kpn["left_mouth"] = cn[0], cn[1]

    # --- ears ------------------------------------------------------------------------------------
    for s, name in ((-1, "right_ear"), (1, "left_ear")):
        d = direction(s * 90.0, i.ear_el)
        c = skull.surface(d) + np.array([s * 0.004, 0, -0.006])
        Re = _rot(ay=s * 18)
        radii = np.array([0.0065, i.ear_size, i.ear_size * 0.55])

        def ear_col(u, s=s):
            inner = (u[:, 0] * s > 0.6) & (np.abs(u[:, 1]) < 0.7) & (np.abs(u[:, 2]) < 0.6)
            c_ = np.broadcast_to(skin * [0.97, 0.88, 0.86], (len(u), 3)).copy()
            c_[inner] *= 0.7
            return c_

        # the ellipsoid's pole axis is local z; orient its thin axis along x
        bld.ellipsoid(c, radii, Re, None, "skin", n=(10, 14), color_fn=ear_col)
        kp[name] = _extreme_point(c, radii, Re, np.array([s * 1.0, 0, 0]))
        # the ear's rim is seen from the front too: its facing normal leans 30 deg forward
        kpn[name] = np.array([s * np.cos(np.radians(30)), 0, np.sin(np.radians(30))])

    # --- neck and shoulders ----------------------------------------------------------------------
    n_a = 20
    th = np.linspace(0, 2 * np.pi, n_a)
    ys = np.linspace(-0.035, -0.2, 6)
    T, Y = np.meshgrid(th, ys, indexing="ij")
    neck = np.stack([i.neck_radius * np.cos(T), Y, i.neck_radius * 1.05 * np.sin(T) - 0.02], -1).reshape(-1, 3)
    nt = _grid_tris(n_a, len(ys))
    out = np.stack([np.cos(T), np.zeros_like(T), np.sin(T)], -1).reshape(-1, 3)
    bld.add(neck, out, nt, skin * 0.95, "skin", two_sided=True)  # an open tube
    cloth = np.array(i.clothing)
    bld.ellipsoid([0, -0.265, -0.03], [0.19, 0.10, 0.07], _rot(ax=90), cloth, "cloth", n=(10, 20))
    bld.ellipsoid([0, -0.19, -0.02], [i.neck_radius + 0.01, i.neck_radius + 0.012, 0.02], _rot(ax=90),
                  cloth * 0.9, "cloth", n=(8, 16))

    # --- hair ----------------------------------------------------------------------------------
    hair = np.array(i.hair_color)
    top_extra = 0.0
    if i.hair_style != "bald":
        thick = 0.002 if i.hair_style == "buzz" else i.hair_thickness
        region = _hair_margin(A, E, i, i.hair_style)
        stripes = 1.0 + 0.08 * np.sin(np.radians(A.ravel()) * 60) + rng.normal(0, 0.04, A.size)

        def hair_col(p):
            return np.clip(hair[None, :] * stripes[:, None] + 0.03, 0, 1)

        def longify(p):
            if i.hair_style != "long":
                return p
            k = _smoothstep(10.0, -60.0, E.ravel())[:, None] * (np.abs(A.ravel()) > 50)[:, None]
            return p + k * np.array([0, -0.07, 0]) + k * dirs * 0.012

        _shell(bld, skull, A, E, dirs, region, thick, hair_col, "hair", n_el, n_az, extra=longify)
        top_extra = thick
        if i.hair_style == "bun":
            c = skull.surface(direction(180, 30)) + direction(180, 30) * 0.02
            bld.ellipsoid(c, [0.03, 0.028, 0.026], np.eye(3), hair * 0.95, "hair")

    # --- accessories -----------------------------------------------------------------------------
    if i.cap:
        off = top_extra + 0.006
        region = np.maximum(E - 12, np.minimum(E - (i.hairline_el - 14), 70 - np.abs(A)))
        capc = np.array(i.cap_color)
        _shell(bld, skull, A, E, dirs, region, off, lambda p: np.broadcast_to(capc, p.shape), "cap",
               n_el, n_az)
        top_extra = off
        # brim: a fan in front of the forehead, tilted slightly down
        edge_el = i.hairline_el - 14
        az = np.linspace(-70, 70, 15)
        inner = skull.surface(direction(az, np.full_like(az, edge_el))) + direction(az, edge_el) * off
        outer = inner + np.stack([np.sin(np.radians(az)) * 0.035, np.full_like(az, -0.008),
                                  0.075 * np.cos(np.radians(az)) ** 2 + 0.005], -1)
        bp = np.concatenate([inner, outer])
        bt = _grid_tris(2, len(az))
        bld.add(bp, np.tile([0, 1.0, 0.1], (len(bp), 1)), bt, capc * 0.85, "cap", two_sided=True)
    if i.mask:
        region = (E < i.nose_el + 9) & (E > i.chin_el - 12) & (np.abs(A) < 78)
        tip = kp["nose_tip"]

        def over_nose(p):
            # tent the mask over the nose and the lips instead of letting them poke through
            h = tip[2] + 0.004 - 0.6 * np.abs(p[:, 0]) - 0.5 * np.clip(p[:, 1] - tip[1], 0, None) \
                - 0.25 * np.clip(tip[1] - p[:, 1], 0, None)
            q = p.copy()
            q[:, 2] = np.maximum(q[:, 2], h)
            return q

        mc = np.array(i.mask_color)
        _shell(bld, skull, A, E, dirs, region, 0.010, lambda p: np.broadcast_to(mc, p.shape), "mask", n_el, n_az,
               extra=over_nose)
    if i.glasses != "none":
        _glasses(bld, i, kp)

    top = skull.surface(direction(0, 90)) + np.array([0, top_extra, 0])
    # the crown sits on the silhouette of a frontal view; lean its facing normal 25 deg forward
    kp["head_top"], kpn["head_top"] = top, np.array([0, np.cos(np.radians(25)), np.sin(np.radians(25))])

    # face region (detector-like box): hairline to chin, ear to ear (azimuth +-84 deg, in front of
    # the ears), plus the nose tip.  On frontal renders this matches OpenCV YuNet's boxes (about
    # the same size and centre; `edgepose synth boxcheck`, docs/synth.md).
    fa, fe = np.meshgrid(np.linspace(-84, 84, 13), np.linspace(i.chin_el, i.hairline_el, 9))
    face_pts = np.concatenate([skull.surface(direction(fa.ravel(), fe.ravel())), kp["nose_tip"][None]])

    op, oi = bld.build(False)
    tp, ti = bld.build(True)
    return HeadMesh(identity=i, opaque=op, opaque_idx=oi, transparent=tp, transparent_idx=ti,
                    keypoints=np.array([kp[k] for k in KEYPOINT_NAMES]),
                    keypoint_normals=np.array([kpn[k] / np.linalg.norm(kpn[k]) for k in KEYPOINT_NAMES]),
                    face_points=face_pts, top_y=float(top[1]),
                    chin_y=float(skull.surface(direction(0, i.chin_el))[1]))


def _rotation_to(axis: np.ndarray) -> np.ndarray:
    """A rotation taking local +z to ``axis``."""
    z = axis / np.linalg.norm(axis)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], 1)


def _extreme_point(center, radii, R, axis) -> np.ndarray:
    """The surface point of an ellipsoid furthest along ``axis`` (exact)."""
    w = radii * (R.T @ axis)
    u = w / np.linalg.norm(w)
    return center + R @ (radii * u)


def _glasses(bld: _Builder, i: HeadIdentity, kp: dict) -> None:
    frame = np.array(i.glasses_color)
    lens_rgba = (0.05, 0.05, 0.06, 0.8) if i.glasses == "sun" else (0.85, 0.9, 0.95, 0.12)
    ha, hb, w = 0.023, 0.016, 0.0028
    t = np.linspace(0, 2 * np.pi, 25)
    for name in ("right_eye", "left_eye"):
        c = kp[name] + np.array([0, 0.001, 0.014])
        inner = np.stack([ha * np.cos(t), hb * np.sin(t), np.zeros_like(t)], -1) + c
        outer = np.stack([(ha + w) * np.cos(t), (hb + w) * np.sin(t), np.zeros_like(t)], -1) + c
        pts = np.concatenate([inner, outer])
        bld.add(pts, np.tile([0, 0, 1.0], (len(pts), 1)), _grid_tris(2, len(t)), frame, "frame", two_sided=True)
        disc = np.concatenate([c[None], inner])
        tris = np.array([(0, k + 1, k + 2) for k in range(len(t) - 1)])
        bld.add(disc, np.tile([0, 0, 1.0], (len(disc), 1)), tris, lens_rgba, "lens", transparent=True,
                two_sided=True)
        # temple arm back to the ear
        s = -1 if name == "right_eye" else 1
        a = c + np.array([s * (ha + w), 0.004, 0])
        b = np.array([s * (i.half_width + 0.004), a[1] - 0.004, -0.01])
        mid = (a + b) / 2
        L = np.linalg.norm(b - a)
        yaw = np.degrees(np.arctan2(b[0] - a[0], b[2] - a[2]))
        bld.box(mid, np.array([0.003, 0.004, L]), _rot(ay=yaw), frame, "frame")
    bridge = (kp["right_eye"] + kp["left_eye"]) / 2 + np.array([0, 0.006, 0.017])
    span = kp["left_eye"][0] - kp["right_eye"][0] - 2 * ha
    bld.box(bridge, np.array([max(span, 0.004), 0.003, 0.003]), np.eye(3), frame, "frame")
