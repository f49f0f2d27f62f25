"""Proofs of the rotation conventions in edgepose.geometry.

Every label transform is checked the way it is defined: project 3D head points through R,
apply the IMAGE operation to the 2D points, and compare with the projection through the
transformed label (of the mirrored head, for reflections: a mirrored image of a head is the
image of the mirrored head, model x -> -x).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepose import geometry as g

NOSE, TOP, LEFT_EAR, RIGHT_EAR = (0, 0, 1.0), (0, 1.0, 0), (1.0, 0, 0), (-1.0, 0, 0)
HEAD = np.array([NOSE, TOP, LEFT_EAR, RIGHT_EAR, (0.3, -0.4, 0.8), (-0.2, 0.5, -0.7)], dtype=np.float64)
MIRROR_X = np.diag([-1.0, 1.0, 1.0])  # mirrored head in model space


def head_points(seed: int = 0, n: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([HEAD, rng.normal(size=(n, 3))])


def screen_rotation(theta_deg: float) -> np.ndarray:
    """2x2 matrix rotating image points (u right, v DOWN) counter-clockwise on screen."""
    t = np.radians(theta_deg)
    # CCW on screen is CCW in (u, -v); conjugating by diag(1, -1) gives the (u, v) form
    return np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])


def screen_mirror(phi_deg: float) -> np.ndarray:
    """2x2 reflection of image points (u, v down) across the line at screen angle phi (CCW from +u)."""
    p = np.radians(phi_deg)
    up = np.array([[np.cos(2 * p), np.sin(2 * p)], [np.sin(2 * p), -np.cos(2 * p)]])  # in (u, -v)
    D = np.diag([1.0, -1.0])
    return D @ up @ D


def proj(R, pts=HEAD):
    return g.project_points(R, pts)  # centre (0, 0): image ops act about the centre


# angles: finite floats plus the special values where conventions break
special = st.sampled_from([0.0, 90.0, -90.0, 180.0, -180.0, 45.0, 135.0, -135.0, 179.999, 99.0, -99.0])
angle = st.one_of(special, st.floats(-180, 180, allow_nan=False))
pyr_st = st.tuples(angle, angle, angle)
rot_st = pyr_st.map(lambda t: g.euler_to_matrix(np.array(t)))


# --- signs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mag", [5.0, 20.0, 60.0])
def test_sign_conventions(mag):
    nose_yaw = proj(g.euler_to_matrix([0, mag, 0]))[0]
    assert nose_yaw[0] < -0.05  # +yaw: nose to image-left
    nose_pitch = proj(g.euler_to_matrix([mag, 0, 0]))[0]
    assert nose_pitch[1] < -0.05  # +pitch: nose up (v decreases)
    top_roll = proj(g.euler_to_matrix([0, 0, mag]))[1]
    assert top_roll[0] > 0.05  # +roll: head top to image-right (clockwise on screen)
    assert abs(nose_yaw[1]) < 1e-12 and abs(nose_pitch[0]) < 1e-12


def test_frontal_projection_and_elementary_rotations():
    uv = proj(np.eye(3))
    np.testing.assert_allclose(uv[1], [0, -1])  # head top is up in the image (v down)
    np.testing.assert_allclose(uv[2], [1, 0])  # subject's left ear at image-right
    for f in (g.rot_x, g.rot_y, g.rot_z):
        R = f(np.radians(33.0))
        assert g.is_rotation(R)
    np.testing.assert_allclose(g.euler_to_matrix([10, 20, 30]),
                               g.rot_z(np.radians(30)) @ g.rot_y(np.radians(20)) @ g.rot_x(np.radians(10)))


def test_opencv_camera_roundtrip_and_axes():
    R = g.random_rotations(50, np.random.default_rng(1))
    np.testing.assert_allclose(g.from_opencv_camera(g.to_opencv_camera(R)), R, atol=1e-12)
    # +yaw in OpenCV axes (y down, z forward): the nose (0, 0, -1 toward camera) moves to -x
    nose_cv = g.to_opencv_camera(g.euler_to_matrix([0, 30, 0])) @ np.array([0, 0, -1.0])
    assert nose_cv[0] < 0


# --- flip / rotate / mirror --------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(rot_st)
def test_flip_label_is_the_image_flip(R):
    pts = head_points(1)
    flipped = proj(R, pts) * np.array([-1.0, 1.0])
    np.testing.assert_allclose(proj(g.flip_label(R), pts @ MIRROR_X), flipped, atol=1e-9)
    # equivalent Euler rule (p, y, r) -> (p, -y, -r) wherever the decode is regular
    e = g.matrix_to_euler(R)
    if abs(abs(e[1]) - 90) > 1e-3:
        np.testing.assert_allclose(g.euler_to_matrix(e * [1, -1, -1]), g.flip_label(R), atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(rot_st, st.one_of(st.sampled_from([90.0, -90.0, 180.0, 270.0, 360.0]), st.floats(-720, 720)))
def test_rotate_label_is_the_image_rotation(R, theta):
    pts = head_points(2)
    rotated = proj(R, pts) @ screen_rotation(theta).T
    np.testing.assert_allclose(proj(g.rotate_label(R, theta), pts), rotated, atol=1e-9)


def test_rotate_label_examples_from_notes():
    # frontal face rotated CCW 30 deg -> roll -30 (CCW on screen is negative roll)
    np.testing.assert_allclose(g.matrix_to_euler(g.rotate_label(np.eye(3), 30)), [0, 0, -30], atol=1e-9)
    # all three angles change in general (docs/conventions.md, "Image operations and their labels")
    e = g.matrix_to_euler(g.rotate_label(g.euler_to_matrix([0, 60, 0]), 30))
    np.testing.assert_allclose(e, [-40.9, 48.6, -49.1], atol=0.06)


@settings(max_examples=150, deadline=None)
@given(rot_st, st.one_of(st.sampled_from([0.0, 90.0, 45.0, -30.0, 180.0]), st.floats(-360, 360)))
def test_mirror_label_is_the_image_mirror(R, phi):
    pts = head_points(3)
    mirrored = proj(R, pts) @ screen_mirror(phi).T
    np.testing.assert_allclose(proj(g.mirror_label(R, phi), pts @ MIRROR_X), mirrored, atol=1e-9)


def test_mirror_special_cases():
    R = g.random_rotations(20, np.random.default_rng(4))
    np.testing.assert_allclose(g.mirror_label(R, 90), g.flip_label(R), atol=1e-12)
    np.testing.assert_allclose(g.mirror_matrix_2d(90), g.F_FLIP, atol=1e-12)
    # mirror across phi = flip, then rotate by 2*phi - 180 (composition of image operations)
    for phi in (0.0, 17.0, 123.0):
        np.testing.assert_allclose(g.mirror_label(R, phi), g.rotate_label(g.flip_label(R), 2 * phi - 180),
                                   atol=1e-9)
        assert np.all(g.is_rotation(g.mirror_label(R, phi)))


def test_transforms_compose_in_image_order():
    R = g.random_rotations(10, np.random.default_rng(5))
    pts = head_points(6)
    # rotate CCW by 25, then flip: label = flip_label(rotate_label(R))
    img = (proj(R, pts) @ screen_rotation(25).T) * np.array([-1.0, 1.0])
    for i in range(len(R)):
        np.testing.assert_allclose(proj(g.flip_label(g.rotate_label(R[i], 25)), pts @ MIRROR_X), img[i], atol=1e-9)


# --- BIWI --------------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(rot_st)
def test_biwi_matrix_matches_fsanet_decode(R_file):
    R = g.biwi_to_matrix(R_file)
    assert g.is_rotation(R)
    e = g.biwi_euler_fsanet(R_file)
    # FSA-Net's decode has no singular branch: at |yaw| = 90 its pitch/roll split is arbitrary
    if abs(abs(e[1]) - 90) > 1e-3:
        # the FSA-Net Euler triple generates our matrix, and our decode returns that triple
        np.testing.assert_allclose(g.euler_to_matrix(e), R, atol=1e-9)
        np.testing.assert_allclose(g.angle_diff(g.matrix_to_euler(R), e), 0, atol=1e-6)  # +-180 is one angle


def test_biwi_batched():
    Rf = g.random_rotations(7, np.random.default_rng(7))
    np.testing.assert_allclose(g.biwi_to_matrix(Rf), np.stack([g.biwi_to_matrix(r) for r in Rf]))


# --- Euler solutions, wrapping -------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(pyr_st)
def test_euler_roundtrip_including_gimbal_lock_and_upside_down(pyr):
    R = g.euler_to_matrix(np.array(pyr))
    e = g.matrix_to_euler(R)
    assert abs(e[1]) <= 90 + 1e-9
    np.testing.assert_allclose(g.euler_to_matrix(e), R, atol=1e-7)
    a, b = g.euler_solutions(R)
    np.testing.assert_allclose(g.euler_to_matrix(b), R, atol=1e-7)  # both solutions, same matrix
    assert np.all((b >= -180) & (b < 180))


def test_gimbal_lock_exact():
    for y in (90.0, -90.0):
        for p, r in ((10, 0), (0, 25), (30, -40), (170, 100)):
            R = g.euler_to_matrix([p, y, r])
            e = g.matrix_to_euler(R)
            assert abs(abs(e[1]) - 90) < 1e-6 and e[2] == 0.0  # singular branch puts it all in pitch
            np.testing.assert_allclose(g.euler_to_matrix(e), R, atol=1e-9)


def test_two_solution_example():
    np.testing.assert_allclose(g.euler_to_matrix([11.5, 143.2, 5.7]), g.euler_to_matrix([-168.5, 36.8, -174.3]),
                               atol=1e-12)
    np.testing.assert_allclose(g.alternative_euler([11.5, 143.2, 5.7]), [-168.5, 36.8, -174.3], atol=1e-9)


@given(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4))
def test_wrap_and_angle_diff(a, b):
    w = g.wrap_angle(a)
    assert -180 <= w < 180
    assert abs(np.cos(np.radians(w)) - np.cos(np.radians(a))) < 1e-7
    d = g.angle_diff(a, b)
    assert -180 <= d < 180
    assert abs(np.sin(np.radians(d)) - np.sin(np.radians(a - b))) < 1e-7
    assert abs(g.wrap_angle(np.radians(a), degrees=False)) <= np.pi


def test_wrap_edges():
    assert g.wrap_angle(180.0) == -180.0 and g.wrap_angle(-180.0) == -180.0 and g.wrap_angle(540.0) == -180.0
    assert g.angle_diff(179.0, -179.0) == pytest.approx(-2.0)


# --- 6D, quaternions ---------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(rot_st)
def test_sixd_roundtrip(R):
    np.testing.assert_allclose(g.sixd_to_matrix(g.matrix_to_sixd(R)), R, atol=1e-9)


def test_sixd_gram_schmidt_of_noisy_input():
    rng = np.random.default_rng(8)
    R = g.random_rotations(100, rng)
    x = g.matrix_to_sixd(R) * rng.uniform(0.5, 2, size=(100, 1)) + rng.normal(scale=0.01, size=(100, 6))
    Rn = g.sixd_to_matrix(x)
    assert np.all(g.is_rotation(Rn))
    # first column is the normalised a1 (the 6DRepNet construction)
    np.testing.assert_allclose(Rn[:, :, 0], x[:, :3] / np.linalg.norm(x[:, :3], axis=1, keepdims=True), atol=1e-12)
    assert np.all(g.geodesic_distance(Rn, R) < 10)


def _hamilton(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


@settings(max_examples=150, deadline=None)
@given(rot_st)
def test_quaternion_roundtrip(R):
    q = g.matrix_to_quat(R)
    assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
    np.testing.assert_allclose(g.quat_to_matrix(q), R, atol=1e-9)


def test_quaternion_convention_is_hamilton_active():
    t = np.radians(40.0)
    np.testing.assert_allclose(g.matrix_to_quat(g.rot_z(t)), [np.cos(t / 2), 0, 0, np.sin(t / 2)], atol=1e-12)
    A, B = g.random_rotations(2, np.random.default_rng(9))
    qa, qb = g.matrix_to_quat(A), g.matrix_to_quat(B)
    np.testing.assert_allclose(g.quat_to_matrix(_hamilton(qa, qb)), A @ B, atol=1e-12)
    # w < 0 inputs are the same rotation; 180-degree rotations pick the non-trace branches
    np.testing.assert_allclose(g.quat_to_matrix(-qa), A, atol=1e-12)
    for R in (g.rot_x(np.pi), g.rot_y(np.pi), g.rot_z(np.pi), np.diag([-1.0, -1.0, 1.0])):
        np.testing.assert_allclose(g.quat_to_matrix(g.matrix_to_quat(R)), R, atol=1e-12)


# --- roll-last decomposition --------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(pyr_st)
def test_roll_last_render_then_rotate_reproduces_pose(pyr):
    R = g.euler_to_matrix(np.array(pyr))
    d = g.roll_last_decomposition(R)
    R0 = g.euler_to_matrix([d["pitch"], d["yaw"], 0.0])  # the roll-free generator pose
    pts = head_points(10)
    rendered_then_rotated = proj(R0, pts) @ screen_rotation(d["image_rotation"]).T
    np.testing.assert_allclose(rendered_then_rotated, proj(R, pts), atol=1e-7)


def test_roll_last_example_from_notes():
    d = g.roll_last_decomposition(g.euler_to_matrix([20, 50, 25]))
    assert d["pitch"] == pytest.approx(0.3, abs=0.06) and d["yaw"] == pytest.approx(52.8, abs=0.06)
    assert d["image_rotation"] == pytest.approx(-15.8, abs=0.06)


# --- perspective correction ---------------------------------------------------------------------

K = np.array([[800.0, 0, 640], [0, 800.0, 360], [0, 0, 1]])


def _pinhole(K, pts_cv):
    uvw = pts_cv @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def _look_at_camera(t_cv):
    """Head at t (OpenCV camera coords) whose nose points at the camera centre and whose up axis
    stays in the plane of the camera's up direction: returned as canonical R (rows = head axes in
    x right, y up, z toward viewer), built independently of geometry.perspective_correction."""
    S = np.diag([1.0, -1.0, -1.0])
    z = S @ (-t_cv / np.linalg.norm(t_cv))  # nose direction, our camera axes
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


@pytest.mark.parametrize("offset_deg", [10.0, 25.0, 40.0])
def test_perspective_head_looking_at_camera_reads_frontal_in_crop(offset_deg):
    a = np.radians(offset_deg)
    t = np.array([np.tan(a), 0.0, 1.0]) * 2.0  # 2 m depth, off to the image-right
    uv_center = _pinhole(K, t[None])[0]
    R_true = _look_at_camera(t)
    # pinhole image: the nose lies on the viewing ray, so it projects onto the head centre:
    # the crop shows a frontal face, and a network predicts R_pred = I
    nose_cv = t + np.diag([1.0, -1.0, -1.0]) @ (R_true.T @ np.array([0, 0, 0.1]))
    np.testing.assert_allclose(_pinhole(K, nose_cv[None])[0], uv_center, atol=1e-9)
    R_corr = g.perspective_correction(np.eye(3), K, uv_center)
    np.testing.assert_allclose(R_corr[2], R_true[2], atol=1e-9)  # nose axis recovered
    e = g.matrix_to_euler(R_corr)
    # the head is right of the axis and faces the camera: its nose points to image-left, +yaw
    np.testing.assert_allclose(e, [0, offset_deg, 0], atol=1e-9)


def test_perspective_vertical_offset_and_frontal_truth():
    b = np.radians(20.0)
    uv = (640.0, 360.0 + 800.0 * np.tan(b))  # below the centre: looking at the camera means looking up
    np.testing.assert_allclose(g.matrix_to_euler(g.perspective_correction(np.eye(3), K, uv)), [20, 0, 0], atol=1e-9)
    # a head that truly faces along the optical axis (R_true = I) off-axis to the right: in the
    # pinhole image its nose tip lands further right than its centre, i.e. it looks turned toward
    # image-right (negative yaw); correcting that prediction gives back R_true
    t = np.array([0.8, 0.0, 2.0])
    nose = _pinhole(K, (t + [0, 0, -0.1])[None])[0] - _pinhole(K, t[None])[0]
    assert nose[0] > 0
    uvc = _pinhole(K, t[None])[0]
    R_pred = np.linalg.inv(g.perspective_correction(np.eye(3), K, uvc))  # what makes R_true = I
    assert g.matrix_to_euler(R_pred)[1] < -5
    np.testing.assert_allclose(g.perspective_correction(R_pred, K, uvc), np.eye(3), atol=1e-9)
    np.testing.assert_allclose(g.perspective_correction(np.eye(3), K, (640, 360)), np.eye(3), atol=1e-12)


# --- geodesic -----------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(rot_st, rot_st, st.floats(-360, 360), st.floats(-180, 180))
def test_geodesic_invariance(A, B, theta, phi):
    d = g.geodesic_distance(A, B)
    assert 0 <= d <= 180 + 1e-9
    np.testing.assert_allclose(g.geodesic_distance(g.rotate_label(A, theta), g.rotate_label(B, theta)), d, atol=1e-5)
    np.testing.assert_allclose(g.geodesic_distance(g.flip_label(A), g.flip_label(B)), d, atol=1e-5)
    np.testing.assert_allclose(g.geodesic_distance(g.mirror_label(A, phi), g.mirror_label(B, phi)), d, atol=1e-5)


def test_geodesic_known_values_and_neutral():
    assert g.geodesic_distance(np.eye(3), g.rot_z(np.radians(30))) == pytest.approx(30)
    assert g.geodesic_distance(np.eye(3), g.rot_x(np.pi)) == pytest.approx(180)
    R, N = g.random_rotations(2, np.random.default_rng(11))
    np.testing.assert_allclose(g.relative_to_neutral(N, N), np.eye(3), atol=1e-12)
    assert g.geodesic_distance(g.relative_to_neutral(R, N), np.eye(3)) == pytest.approx(g.geodesic_distance(R, N))


def test_random_rotations_are_uniform_enough():
    R = g.random_rotations(4000, np.random.default_rng(12))
    assert np.all(g.is_rotation(R))
    # for uniform SO(3) the mean of each entry is 0 and the geodesic angle to I has mean pi/2 + 2/pi
    assert np.abs(R.mean(0)).max() < 0.05
    assert abs(np.radians(g.geodesic_distance(R, np.eye(3))).mean() - (np.pi / 2 + 2 / np.pi)) < 0.05


# --- torch parity -------------------------------------------------------------------------------

def test_torch_parity():
    torch = pytest.importorskip("torch")
    from edgepose import geometry_torch as gt

    rng = np.random.default_rng(13)
    R = g.random_rotations(64, rng)
    pyr = rng.uniform(-180, 180, size=(64, 3))
    pyr[:4, 1] = [90, -90, 90, -90]  # gimbal lock rows
    Rg = g.euler_to_matrix(pyr)
    x6 = rng.normal(size=(64, 6))
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    np.testing.assert_allclose(gt.sixd_to_matrix(T(x6)).numpy(), g.sixd_to_matrix(x6), atol=1e-10)
    np.testing.assert_allclose(gt.euler_to_matrix(T(pyr)).numpy(), Rg, atol=1e-10)
    np.testing.assert_allclose(gt.matrix_to_euler(T(R)).numpy(), g.matrix_to_euler(R), atol=1e-8)
    np.testing.assert_allclose(gt.euler_to_matrix(gt.matrix_to_euler(T(Rg))).numpy(), Rg, atol=1e-7)
    np.testing.assert_allclose(gt.flip_label(T(R)).numpy(), g.flip_label(R), atol=1e-12)
    th = rng.uniform(-180, 180, size=64)
    np.testing.assert_allclose(gt.rotate_label(T(R), T(th)).numpy(), g.rotate_label(R, th), atol=1e-10)
    Q = g.random_rotations(64, rng)
    np.testing.assert_allclose(gt.geodesic(T(R), T(Q)).numpy(), g.geodesic_distance(R, Q, degrees=False), atol=1e-6)
    f32 = gt.matrix_to_euler(T(R.astype(np.float32)))
    assert f32.dtype == torch.float32


@pytest.mark.parametrize("pyr", [(45.0, 90.0, 135.0), (-30.0, -90.0, 10.0), (0.0, 90.0, 0.0)])
def test_roll_last_at_gimbal_lock(pyr):
    """Yaw exactly +-90 deg puts the roll-last factorisation at alpha = +-90 deg, where only phi +- beta is defined
    (a case hypothesis found): the render-then-rotate identity must still hold there."""
    R = g.euler_to_matrix(np.array(pyr))
    d = g.roll_last_decomposition(R)
    R0 = g.euler_to_matrix([d["pitch"], d["yaw"], 0.0])
    pts = head_points(10)
    np.testing.assert_allclose(proj(R0, pts) @ screen_rotation(d["image_rotation"]).T, proj(R, pts), atol=1e-7)
