"""Rotation conventions: the single source of truth for edgepose.

Canonical label
---------------
A head pose is a rotation matrix ``R`` in the 300W-LP / 6DRepNet convention::

    R = Rz(roll) @ Ry(yaw) @ Rx(pitch)

with right-handed elementary rotations and the angles of ``Pose_Para[0:3]``.
The **rows** of ``R`` are the head's x (subject's left), y (up) and z (out of
the face, along the nose) axes expressed in camera coordinates with x right,
y up and z toward the viewer.  The 3DDFA camera-frame matrix is ``R3 = R.T``.

Signs (checked by projection in tests/test_geometry.py):

* +yaw   -> the nose turns toward IMAGE-LEFT,
* +pitch -> looking UP,
* +roll  -> the top of the head moves toward IMAGE-RIGHT (clockwise on screen).

Euler triples are always ordered ``(pitch, yaw, roll)`` in edgepose arrays,
the order of ``Pose_Para``.  JSON outputs use named keys instead.

Image-side operations act on the camera frame, so they multiply ``R`` on the
right (``R3`` on the left).  Every function accepts batched input with shape
``(..., 3, 3)`` / ``(..., 3)`` and works in float64 unless given float32.
The torch counterparts used inside models and losses live in
:mod:`edgepose.geometry_torch` and are tested for parity against this module.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "F_FLIP", "S_CV",
    "rot_x", "rot_y", "rot_z",
    "euler_to_matrix", "matrix_to_euler", "euler_solutions", "alternative_euler",
    "wrap_angle", "angle_diff",
    "sixd_to_matrix", "matrix_to_sixd",
    "matrix_to_quat", "quat_to_matrix",
    "flip_label", "rotate_label", "mirror_label", "mirror_matrix_2d",
    "biwi_to_matrix", "biwi_euler_fsanet",
    "geodesic_distance", "is_rotation", "euler_describes",
    "roll_last_decomposition",
    "camera_frame", "project_points", "to_opencv_camera", "from_opencv_camera",
    "perspective_correction", "relative_to_neutral", "random_rotations",
]

#: Horizontal-flip reflection, F = diag(-1, 1, 1).
F_FLIP = np.diag([-1.0, 1.0, 1.0])
#: Axis change between our camera frame (y up, z toward viewer) and OpenCV's (y down, z forward).
S_CV = np.diag([1.0, -1.0, -1.0])


def _as_float(x) -> np.ndarray:
    a = np.asarray(x)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def rot_x(a) -> np.ndarray:
    """Right-handed rotation about x by angle ``a`` (radians); batched over ``a``."""
    a = _as_float(a)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a) -> np.ndarray:
    a = _as_float(a)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a) -> np.ndarray:
    a = _as_float(a)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def euler_to_matrix(pyr, degrees: bool = True) -> np.ndarray:
    """(pitch, yaw, roll) -> R = Rz(roll) Ry(yaw) Rx(pitch).  ``pyr`` has shape (..., 3)."""
    pyr = _as_float(pyr)
    if degrees:
        pyr = np.radians(pyr)
    return rot_z(pyr[..., 2]) @ rot_y(pyr[..., 1]) @ rot_x(pyr[..., 0])


def matrix_to_euler(R, degrees: bool = True) -> np.ndarray:
    """R -> (pitch, yaw, roll), the 6DRepNet decode; |yaw| <= 90 deg always.

    Yaw is the middle angle, so gimbal lock sits at |yaw| = 90 deg; there the
    roll is set to 0 and pitch absorbs the remaining in-plane angle.
    """
    R = _as_float(R)
    sy = np.sqrt(R[..., 0, 0] ** 2 + R[..., 1, 0] ** 2)
    singular = sy < 1e-6
    pitch = np.where(singular, np.arctan2(-R[..., 1, 2], R[..., 1, 1]), np.arctan2(R[..., 2, 1], R[..., 2, 2]))
    yaw = np.arctan2(-R[..., 2, 0], sy)
    roll = np.where(singular, 0.0, np.arctan2(R[..., 1, 0], R[..., 0, 0]))
    out = np.stack([pitch, yaw, roll], -1)
    return np.degrees(out) if degrees else out


def wrap_angle(a, degrees: bool = True):
    """Wrap to [-180, 180) degrees (or [-pi, pi) radians)."""
    half = 180.0 if degrees else np.pi
    return (np.asarray(a, dtype=np.float64) + half) % (2 * half) - half


def angle_diff(a, b, degrees: bool = True):
    """Signed wrapped difference a - b in [-180, 180)."""
    return wrap_angle(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), degrees)


def alternative_euler(pyr, degrees: bool = True) -> np.ndarray:
    """The other Euler triple of the same matrix: (p+180, 180-y, r+180), wrapped."""
    pyr = np.asarray(pyr, dtype=np.float64)
    half = 180.0 if degrees else np.pi
    p, y, r = pyr[..., 0], pyr[..., 1], pyr[..., 2]
    return np.stack([wrap_angle(p + half, degrees), wrap_angle(half - y, degrees), wrap_angle(r + half, degrees)], -1)


def euler_solutions(R, degrees: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Both Euler triples (pitch, yaw, roll) that produce ``R``."""
    e = matrix_to_euler(R, degrees)
    return e, alternative_euler(e, degrees)


def sixd_to_matrix(x, eps: float = 1e-8) -> np.ndarray:
    """6D -> R by Gram-Schmidt (6DRepNet): a1 -> first column, a2 -> approx. second column."""
    x = _as_float(x)
    a1, a2 = x[..., 0:3], x[..., 3:6]
    c0 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), eps)
    c2 = np.cross(c0, a2)
    c2 = c2 / np.maximum(np.linalg.norm(c2, axis=-1, keepdims=True), eps)
    c1 = np.cross(c2, c0)
    return np.stack([c0, c1, c2], -1)


def matrix_to_sixd(R) -> np.ndarray:
    """R -> 6D: the first two columns, concatenated (inverse of :func:`sixd_to_matrix`)."""
    R = _as_float(R)
    return np.concatenate([R[..., :, 0], R[..., :, 1]], -1)


def matrix_to_quat(R) -> np.ndarray:
    """R -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method, batched)."""
    R = _as_float(R)
    shape = R.shape[:-2]
    m = R.reshape(-1, 3, 3)
    q = np.empty((m.shape[0], 4), dtype=m.dtype)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    diag = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1)
    case = np.where(tr > diag.max(-1), 3, diag.argmax(-1))
    for i in range(m.shape[0]):
        a = m[i]
        c = case[i]
        if c == 3:
            s = np.sqrt(tr[i] + 1.0) * 2
            q[i] = [0.25 * s, (a[2, 1] - a[1, 2]) / s, (a[0, 2] - a[2, 0]) / s, (a[1, 0] - a[0, 1]) / s]
        elif c == 0:
            s = np.sqrt(1.0 + a[0, 0] - a[1, 1] - a[2, 2]) * 2
            q[i] = [(a[2, 1] - a[1, 2]) / s, 0.25 * s, (a[0, 1] + a[1, 0]) / s, (a[0, 2] + a[2, 0]) / s]
        elif c == 1:
            s = np.sqrt(1.0 + a[1, 1] - a[0, 0] - a[2, 2]) * 2
            q[i] = [(a[0, 2] - a[2, 0]) / s, (a[0, 1] + a[1, 0]) / s, 0.25 * s, (a[1, 2] + a[2, 1]) / s]
        else:
            s = np.sqrt(1.0 + a[2, 2] - a[0, 0] - a[1, 1]) * 2
            q[i] = [(a[1, 0] - a[0, 1]) / s, (a[0, 2] + a[2, 0]) / s, (a[1, 2] + a[2, 1]) / s, 0.25 * s]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(*shape, 4)


def quat_to_matrix(q) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> R (normalises first)."""
    q = _as_float(q)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


# --- label transforms for image operations (docs/conventions.md) -------------------------

def flip_label(R) -> np.ndarray:
    """Label after a horizontal image flip (u -> -u): R' = F R F, i.e. (p, y, r) -> (p, -y, -r)."""
    return F_FLIP @ _as_float(R) @ F_FLIP


def rotate_label(R, theta, degrees: bool = True) -> np.ndarray:
    """Label after rotating the image COUNTER-CLOCKWISE on screen by ``theta``: R' = R Rz(-theta).

    All three Euler angles change in general; never edit roll alone.
    """
    t = np.radians(theta) if degrees else np.asarray(theta, dtype=np.float64)
    return _as_float(R) @ rot_z(-t)


def mirror_matrix_2d(phi, degrees: bool = True) -> np.ndarray:
    """3x3 camera-frame reflection across the image line at screen angle ``phi`` (CCW from +u).

    M = Rz(phi) diag(1, -1, 1) Rz(-phi); phi = 90 deg is the horizontal flip F.
    """
    p = np.radians(phi) if degrees else np.asarray(phi, dtype=np.float64)
    return rot_z(p) @ np.diag([1.0, -1.0, 1.0]) @ rot_z(-p)


def mirror_label(R, phi, degrees: bool = True) -> np.ndarray:
    """Label after mirroring the image across the line through its centre at screen angle ``phi``.

    R' = F R M_phi^T.  phi = 90 deg: ordinary horizontal flip; phi = 0: vertical (upside-down) flip.
    """
    M = mirror_matrix_2d(phi, degrees)
    return F_FLIP @ _as_float(R) @ np.swapaxes(M, -1, -2)


def biwi_to_matrix(R_file) -> np.ndarray:
    """BIWI ``*_pose.txt`` 3x3 block -> canonical R = F R_file^T F (the FSA-Net/HopeNet decode)."""
    R_file = _as_float(R_file)
    return F_FLIP @ np.swapaxes(R_file, -1, -2) @ F_FLIP


def biwi_euler_fsanet(R_file, degrees: bool = True) -> np.ndarray:
    """FSA-Net's BIWI Euler decode, returned as (pitch, yaw, roll); used to cross-check
    :func:`biwi_to_matrix` in the tests."""
    R = np.swapaxes(_as_float(R_file), -1, -2)
    roll = -np.arctan2(R[..., 1, 0], R[..., 0, 0])
    yaw = -np.arctan2(-R[..., 2, 0], np.sqrt(R[..., 2, 1] ** 2 + R[..., 2, 2] ** 2))
    pitch = np.arctan2(R[..., 2, 1], R[..., 2, 2])
    out = np.stack([pitch, yaw, roll], -1)
    return np.degrees(out) if degrees else out


def geodesic_distance(A, B, degrees: bool = True) -> np.ndarray:
    """Angle of the rotation A B^T: arccos((tr(A B^T) - 1) / 2)."""
    A, B = _as_float(A), _as_float(B)
    tr = np.einsum("...ij,...ij->...", A, B)  # tr(A B^T)
    th = np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))
    return np.degrees(th) if degrees else th


def is_rotation(R, atol: float = 1e-5) -> np.ndarray:
    R = _as_float(R)
    eye = np.eye(3)
    ortho = np.all(np.abs(R @ np.swapaxes(R, -1, -2) - eye) < atol, axis=(-1, -2))
    return ortho & (np.abs(np.linalg.det(R) - 1.0) < atol)


def euler_describes(pyr, R, atol: float = 1e-4) -> bool:
    """Whether the (pitch, yaw, roll) triple ``pyr`` is a decomposition of ``R``.

    ``atol`` is on the matrix entries (1e-4 is about 0.006 deg): a dataset's float32 Euler label and
    its float64 matrix agree far closer, a wrong or other-convention triple is far off.
    """
    return bool(np.allclose(euler_to_matrix(pyr), _as_float(R), atol=atol))


def roll_last_decomposition(R, degrees: bool = True) -> dict:
    """Factor the camera-frame matrix R3 = R^T as Rz(phi) Rx(alpha) Ry(beta) (CLERF, Wei et al., arXiv 2412.02066; docs/synth.md).

    Returns the roll-free generator pose in Pose_Para signs (pitch = -alpha, yaw = -beta, roll = 0)
    and ``image_rotation``: rotate the roll-free render COUNTER-CLOCKWISE by this angle to obtain
    the full pose.
    """
    R3 = np.swapaxes(_as_float(R), -1, -2)
    alpha = np.arcsin(np.clip(R3[..., 2, 1], -1.0, 1.0))
    beta = np.arctan2(-R3[..., 2, 0], R3[..., 2, 2])
    phi = np.arctan2(-R3[..., 0, 1], R3[..., 1, 1])
    # gimbal lock (alpha = +-90 deg): the entries above are rounding noise and only phi +- beta is defined;
    # there R3 = Rz(phi +- beta) Rx(+-90), so take beta = 0 and read phi from the first column
    locked = np.hypot(R3[..., 2, 0], R3[..., 2, 2]) < 1e-9
    beta = np.where(locked, 0.0, beta)
    phi = np.where(locked, np.arctan2(R3[..., 1, 0], R3[..., 0, 0]), phi)
    conv = np.degrees if degrees else (lambda v: v)
    return {"pitch": conv(-alpha), "yaw": conv(-beta), "image_rotation": conv(phi)}


# --- projection helpers (used by tests, the synthetic renderer and overlays) -----------------

def camera_frame(R) -> np.ndarray:
    """3DDFA camera-frame matrix R3 = R^T (applied to model points: x right, y up, z to camera)."""
    return np.swapaxes(_as_float(R), -1, -2)


def project_points(R, pts, center=(0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    """Orthographic projection of model points (N, 3) into image pixels (u right, v down)."""
    cam = np.asarray(pts, dtype=np.float64) @ np.swapaxes(camera_frame(R), -1, -2)
    u = center[0] + scale * cam[..., 0]
    v = center[1] - scale * cam[..., 1]
    return np.stack([u, v], -1)


def to_opencv_camera(R) -> np.ndarray:
    """Canonical R -> head-to-camera rotation in OpenCV axes: R_cv = S R3 S."""
    return S_CV @ camera_frame(R) @ S_CV


def from_opencv_camera(R_cv) -> np.ndarray:
    """Inverse of :func:`to_opencv_camera`: R = S R_cv^T S."""
    return S_CV @ np.swapaxes(_as_float(R_cv), -1, -2) @ S_CV


def _rotation_between(a, b) -> np.ndarray:
    """Smallest rotation taking unit vector a to unit vector b (Rodrigues)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # 180 degrees: any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = v / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def perspective_correction(R_pred, K, center_uv) -> np.ndarray:
    """Correct a crop-relative pose for the viewing ray through the crop centre.

    A network sees the face as if it sat on the optical axis; a head off-centre in a
    wide-angle cabin camera reads as yaw/pitch it does not have.  With intrinsics K and
    crop centre (u, v): d = K^-1 [u, v, 1]^T, R_ray takes z to d, and in the canonical
    convention R_true = R_pred (S R_ray^T S).
    """
    d = np.linalg.solve(np.asarray(K, dtype=np.float64), np.array([center_uv[0], center_uv[1], 1.0]))
    R_ray = _rotation_between(np.array([0.0, 0.0, 1.0]), d)
    return _as_float(R_pred) @ (S_CV @ R_ray.T @ S_CV)


def relative_to_neutral(R, R_neutral) -> np.ndarray:
    """Pose relative to a neutral (road-forward) pose: R_rel = R R_n^T."""
    return _as_float(R) @ np.swapaxes(_as_float(R_neutral), -1, -2)


def random_rotations(n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """n rotations drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    rng = rng or np.random.default_rng()
    q = rng.normal(size=(n, 4))
    return quat_to_matrix(q)
