"""Synthetic head engine: label convention proven by projection AND by rendered pixels,
perspective labels, visibility, determinism, identity splits, dataset integration."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import geometry
from edgepose.errors import UserError

pytest.importorskip("moderngl")

from edgepose.synth.identity import SPLIT_RANGES, HeadIdentity, identity_seeds  # noqa: E402
from edgepose.synth.mesh import KEYPOINT_NAMES, build_head  # noqa: E402
from edgepose.synth.scene import CameraParams, LightParams, SceneParams, parse_pose_range, sample_pose  # noqa: E402



@pytest.fixture(scope="module")
def renderer():
    from edgepose.synth.renderer import get_renderer

    try:
        return get_renderer(192, 2)
    except UserError as exc:  # no EGL driver on this machine
        pytest.skip(str(exc))


def _plain(fill=0.6, **kw) -> SceneParams:
    # a flat background, light from above-right (the eyes' catch-lights sit off the pupil centre), no noise
    return SceneParams(camera=CameraParams(fov_deg=40.0, fill=fill), background="plain", background_seed=5,
                       light=LightParams(direction=(0.6, 0.5, 0.7), intensity=0.8, ambient=(0.4, 0.4, 0.4)), **kw)


def _ident(seed=11, **over) -> HeadIdentity:
    ident = HeadIdentity.from_seed(seed, accessories=0.0)
    for k, v in over.items():
        setattr(ident, k, v)
    return ident


def E(p, y, r):
    return geometry.euler_to_matrix([p, y, r])


# --- the label convention, by projection ---------------------------------------------------------

def test_keypoints_move_with_the_documented_signs(renderer):
    ident = _ident()
    base = renderer.render(ident, E(0, 0, 0), _plain())
    yaw = renderer.render(ident, E(0, 20, 0), _plain())
    pitch = renderer.render(ident, E(20, 0, 0), _plain())
    roll = renderer.render(ident, E(0, 0, 20), _plain())
    # the nose tip is index 2 in YuNet order (right eye, left eye, nose, right/left mouth)
    assert KEYPOINT_NAMES[2] == "nose_tip" and KEYPOINT_NAMES[5] == "head_top"
    assert yaw.keypoints[2, 0] < base.keypoints[2, 0] - 3       # +yaw: nose to image-left
    assert pitch.keypoints[2, 1] < base.keypoints[2, 1] - 3     # +pitch: nose up
    assert roll.keypoints[5, 0] > base.keypoints[5, 0] + 3      # +roll: head top to image-right
    # frontal: the subject's right eye/mouth corner is on the image left
    assert base.keypoints[0, 0] < base.keypoints[1, 0] and base.keypoints[3, 0] < base.keypoints[4, 0]


def test_keypoints_are_the_perspective_projection_through_R(renderer):
    """Cross-check with OpenCV: R_cv = geometry.to_opencv_camera(R) acts on model points in OpenCV
    axes (S p), the pivot is at S t, the intrinsics are K."""
    import cv2

    ident = _ident(3)
    mesh = build_head(ident)
    rng = np.random.default_rng(1)
    for R in geometry.random_rotations(4, rng):
        res = renderer.render(ident, R, _plain(), pose="camera")
        np.testing.assert_array_equal(res.R, R)
        t_cv = geometry.S_CV @ renderer.camera(mesh, res.scene)[3]  # pivot in OpenCV camera axes
        rvec, _ = cv2.Rodrigues(geometry.to_opencv_camera(R))
        uv, _ = cv2.projectPoints(mesh.keypoints @ geometry.S_CV, rvec, t_cv, res.K, None)
        np.testing.assert_allclose(res.keypoints, uv[:, 0], atol=1e-6)
        # the camera looks at the pivot: it projects to the principal point
        np.testing.assert_allclose(res.center_uv, res.K[:2, 2], atol=1e-9)
        # R_crop is relative to the box centre's ray: the runtime's correction recovers R
        box_c = ((res.box[0] + res.box[2]) / 2, (res.box[1] + res.box[3]) / 2)
        np.testing.assert_allclose(geometry.perspective_correction(res.R_crop, res.K, box_c), R, atol=1e-9)
        assert geometry.geodesic_distance(res.R_crop, R) < 15.0  # the box centre is near the axis


def test_default_render_puts_the_crop_centre_on_the_axis(renderer):
    """pose="crop" (default): the face box's crop centre lands on the principal point, so the crop's
    ray is the optical axis and R_crop == R == the requested pose; with an off-axis head the
    camera-axes pose is solved for instead."""
    from edgepose.preprocess import CropPolicy, crop_box

    rng = np.random.default_rng(5)
    for R in geometry.random_rotations(3, rng):
        scene = SceneParams.sample(rng)
        res = renderer.render(_ident(7), R, scene)
        cx, cy, _ = crop_box(res.box, CropPolicy())
        np.testing.assert_allclose((cx, cy), res.K[:2, 2], atol=1e-5)
        np.testing.assert_allclose(res.R_crop, R, atol=1e-7)
        np.testing.assert_allclose(res.R, R, atol=1e-7)
    off = _plain()
    off.camera.head_offset = (0.1, 0.05, 0.0)
    R = E(10, -20, 5)
    res = renderer.render(_ident(7), R, off)
    np.testing.assert_allclose(res.R_crop, R, atol=1e-6)
    assert geometry.geodesic_distance(res.R, R) > 2.0


# --- the label convention, by rendered pixels ----------------------------------------------------

def _head_mask(img: np.ndarray, bg: np.ndarray) -> np.ndarray:
    return np.abs(img.astype(int) - bg.astype(int)).sum(-1) > 12


def test_pupils_and_nose_land_where_the_keypoints_say(renderer):
    """Pupils are near-black: the pixels under each eye key point must be much darker than the
    head's median; the nose tip and mouth corners must lie on the head, not on the background."""
    from edgepose.synth.background import make_background

    ident = _ident(21, glasses="none", cap=False, mask=False)
    for pyr in [(0, 0, 0), (10, 25, -15), (-15, -30, 20)]:
        res = renderer.render(ident, E(*pyr), _plain(fill=0.85))
        assert np.array_equal(res.image, renderer.render(ident, E(*pyr), _plain(fill=0.85)).image)
        plain = make_background("plain", res.image.shape[1], res.image.shape[0],
                                np.random.default_rng(res.scene.background_seed))[..., ::-1]
        mask = _head_mask(res.image, plain)
        gray = res.image.astype(float).mean(-1)
        ref = np.median(gray[mask])
        assert res.visible[:5].all(), pyr
        for k in (0, 1):
            u, v = np.round(res.keypoints[k]).astype(int)
            assert gray[v - 1:v + 2, u - 1:u + 2].min() < 0.35 * ref, (pyr, KEYPOINT_NAMES[k])
        for k in (2, 3, 4):  # a mouth corner may sit on the silhouette: allow one pixel
            u, v = np.round(res.keypoints[k]).astype(int)
            assert mask[v - 1:v + 2, u - 1:u + 2].any(), (pyr, KEYPOINT_NAMES[k])


def test_mirrored_render_equals_render_of_flip_label(renderer):
    """Render R, mirror the image; render geometry.flip_label(R): same silhouette, and the key
    points map onto each other with left/right swapped (the mesh geometry is symmetric)."""
    import cv2

    from edgepose.synth.background import make_background

    ident = _ident(5, hair_style="bald", glasses="none", cap=False, mask=False, gaze_yaw=0.0)  # symmetric
    R = E(12, 35, 18)
    a = renderer.render(ident, R, _plain())
    b = renderer.render(ident, geometry.flip_label(R), _plain())
    W = a.image.shape[1]
    swap = [1, 0, 2, 4, 3, 5, 7, 6]
    mirrored = np.stack([W - a.keypoints[:, 0], a.keypoints[:, 1]], -1)[swap]
    np.testing.assert_allclose(b.keypoints, mirrored, atol=1e-6)
    plain = make_background("plain", W, W, np.random.default_rng(5))[..., ::-1]
    ma = _head_mask(cv2.flip(a.image, 1), plain)
    mb = _head_mask(b.image, plain)
    iou = (ma & mb).sum() / (ma | mb).sum()
    assert iou > 0.97, iou
    np.testing.assert_allclose(b.box, [W - a.box[2], a.box[1], W - a.box[0], a.box[3]], atol=1e-6)


def test_off_axis_head_label_and_perspective_correction(renderer):
    ident = _ident(2)
    R = E(-5, 15, 3)
    scene = _plain()
    scene.camera.head_offset = (0.12, -0.06, 0.0)
    res = renderer.render(ident, R, scene, pose="camera")
    np.testing.assert_allclose(res.R, R)
    assert res.center_uv[0] > 96 + 10 and res.center_uv[1] > 96 + 5  # right of and below the centre
    assert geometry.geodesic_distance(res.R_crop, R) > 2.0  # the ray is ~12 deg off the axis
    # exactly what the runtime does: correct by the ray through the crop centre (box centre)
    from edgepose.preprocess import CropPolicy, crop_box

    cx, cy, _ = crop_box(res.box, CropPolicy())
    np.testing.assert_allclose(geometry.perspective_correction(res.R_crop, res.K, (cx, cy)), R, atol=1e-9)
    # the ray-relative pose is what a camera turned onto the ray sees: rotating the camera maps
    # image points by the homography K R_ray^T K^-1 (exact for a pinhole camera); compare with an
    # on-axis render at the pose relative to the pivot's ray
    Rray = geometry.S_CV @ geometry.perspective_correction(np.eye(3), res.K, res.center_uv).T @ geometry.S_CV
    d = np.linalg.solve(res.K, [*res.center_uv, 1.0])
    np.testing.assert_allclose(Rray @ [0, 0, 1.0], d / np.linalg.norm(d), atol=1e-12)
    R_pivot_ray = R @ geometry.perspective_correction(np.eye(3), res.K, res.center_uv).T
    on_axis = renderer.render(ident, R_pivot_ray, _plain(), pose="camera")
    H = res.K @ Rray.T @ np.linalg.inv(res.K)
    pts = np.c_[res.keypoints, np.ones(8)] @ H.T
    pts = pts[:, :2] / pts[:, 2:]

    def norm(p):  # the distance along the ray differs: compare shapes (position and scale removed)
        p = p - p.mean(0)
        return p / np.linalg.norm(p)

    np.testing.assert_allclose(norm(pts), norm(on_axis.keypoints), atol=2e-3)


# --- boxes and visibility -------------------------------------------------------------------------

def test_face_box_contains_the_face_points_and_is_face_sized(renderer):
    ident = _ident(8)
    for pyr in [(0, 0, 0), (0, 40, 0), (20, -30, 10)]:
        res = renderer.render(ident, E(*pyr), _plain())
        x1, y1, x2, y2 = res.box
        for k in range(5):
            u, v = res.keypoints[k]
            assert x1 <= u <= x2 and y1 <= v <= y2, (pyr, KEYPOINT_NAMES[k])
        # the crown (head top) is above the box: the box stops at the forehead
        if pyr == (0, 0, 0):
            assert res.keypoints[5, 1] < y1
            w, h = x2 - x1, y2 - y1
            assert 0.7 < h / w < 1.6, (w, h)
            # ear to ear when frontal: the box spans most of the distance between the ear tips
            ear_span = res.keypoints[7, 0] - res.keypoints[6, 0]
            assert 0.75 * ear_span < w <= ear_span


def test_visibility_front_back_and_mask(renderer):
    front = renderer.render(_ident(4, mask=False, glasses="none"), E(0, 0, 0), _plain())
    assert front.visible[:5].all()
    back = renderer.render(_ident(4, mask=False), E(0, 180, 0), _plain())
    assert not back.visible[:5].any()
    profile = renderer.render(_ident(4, mask=False, hair_style="buzz"), E(0, 80, 0), _plain())
    # +yaw 80: the subject's left side faces the camera: left ear visible, right ear hidden
    assert profile.visible[7] and not profile.visible[6]
    masked = renderer.render(_ident(4, mask=True, glasses="none"), E(0, 0, 0), _plain())
    assert masked.visible[0] and masked.visible[1]          # eyes above the mask
    assert not masked.visible[3] and not masked.visible[4]  # mouth corners under it
    out = _plain()
    out.camera.pp_offset = (0.9, 0.0)  # head pushed far right: some points leave the image
    shifted = renderer.render(_ident(4), E(0, 0, 0), out)
    inside = (shifted.keypoints[:, 0] < 192) & (shifted.keypoints[:, 0] >= 0)
    assert not shifted.visible[~inside].any()


def test_any_rotation_renders_and_bad_R_is_a_user_error(renderer):
    rng = np.random.default_rng(7)
    for R in geometry.random_rotations(3, rng):
        res = renderer.render(_ident(9), R, _plain())
        assert res.image.shape == (192, 192, 3) and res.image.dtype == np.uint8
        assert geometry.is_rotation(res.R)
    with pytest.raises(UserError, match="rotation"):
        renderer.render(_ident(9), np.diag([1.0, 1.0, -1.0]), _plain())
    with pytest.raises(UserError, match="fov"):
        renderer.render(_ident(9), np.eye(3), SceneParams(camera=CameraParams(fov_deg=0.0)))


def test_ir_scene_is_grayscale_and_sun_scene_has_contrast(renderer):
    ir = renderer.render(_ident(6), np.eye(3), _plain(ir=True))
    assert ir.image.ndim == 2 and ir.image.dtype == np.uint8
    soft = renderer.render(_ident(6), np.eye(3), _plain())
    sun_light = LightParams(direction=(0.8, 0.3, 0.5), intensity=2.0, ambient=(0.1, 0.1, 0.1),
                            shadow_band=(0.4, 0.0, 0.03, 0.85))
    sun = renderer.render(_ident(6), np.eye(3), SceneParams(camera=_plain().camera, light=sun_light,
                                                          background="plain", background_seed=5))
    m = sun.box
    crop = lambda im: im[int(m[1]):int(m[3]), int(m[0]):int(m[2])].astype(float).mean(-1)  # noqa: E731
    assert crop(sun.image).std() > 1.3 * crop(soft.image).std()


def test_render_positive_keeps_the_pose_and_changes_the_person(renderer):
    from edgepose.synth.renderer import render, render_positive

    R = sample_pose(np.random.default_rng(3), "full")
    scene = _plain()
    scene.camera.pp_offset = (0.2, -0.1)  # the box centre's ray is well off the optical axis
    a = render(12, R, scene, size=192, pose="camera")  # skull centre on the axis: R_crop != R
    # the anchor's label is its crop pose; the positive's crop must show exactly that pose
    b = render_positive(a.R_crop, 13, scene, size=192)
    assert geometry.geodesic_distance(b.R_crop, a.R_crop) < 1e-4
    np.testing.assert_allclose(b.to_sample().R, a.to_sample().R, atol=1e-6)
    assert geometry.geodesic_distance(a.R, a.R_crop) > 1.0  # not trivially equal
    assert a.identity_seed != b.identity_seed and not np.array_equal(a.image, b.image)
    with pytest.raises(UserError, match="pose must be"):
        render(12, R, scene, size=192, pose="world")


# --- identities, poses, determinism, dataset ---------------------------------------------------

def test_identity_is_a_function_of_its_seed_and_splits_are_disjoint():
    assert HeadIdentity.from_seed(42) == HeadIdentity.from_seed(42)
    assert HeadIdentity.from_seed(42) != HeadIdentity.from_seed(43)
    spans = sorted(SPLIT_RANGES.values())
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    tr, te = identity_seeds("train", 1000), identity_seeds("test", 1000)
    assert not set(tr) & set(te)
    with pytest.raises(UserError, match="split"):
        identity_seeds("holdout", 3)
    with pytest.raises(UserError, match="holds"):
        identity_seeds("val", 10 ** 7)


def test_identities_vary_in_shape_appearance_and_accessories():
    ids = [HeadIdentity.sample(np.random.default_rng(s)) for s in range(200)]
    assert np.std([i.half_width for i in ids]) > 0.003
    assert len({i.hair_style for i in ids}) >= 5
    assert any(i.glasses == "sun" for i in ids) and any(i.cap for i in ids) and any(i.mask for i in ids)
    assert not any(i.cap or i.mask or i.glasses != "none"
                   for i in (HeadIdentity.sample(np.random.default_rng(s), accessories=0) for s in range(50)))
    m = build_head(ids[0])
    assert m.n_triangles > 3000 and m.keypoints.shape == (8, 3)


def test_pose_ranges():
    rng = np.random.default_rng(0)
    e = np.array([geometry.matrix_to_euler(sample_pose(rng, "frontal")) for _ in range(200)])
    assert (np.abs(e[:, 1]) <= 45 + 1e-6).all() and (np.abs(e[:, 0]) <= 30 + 1e-6).all()
    custom = np.array([geometry.matrix_to_euler(sample_pose(rng, "pitch=0:0,yaw=10:20,roll=-5:5"))
                       for _ in range(50)])
    assert (custom[:, 1] >= 10 - 1e-6).all() and (custom[:, 1] <= 20 + 1e-6).all()
    # uniform SO(3): about half of all heads face away (the nose has a negative z component)
    full = np.array([sample_pose(rng, "full") for _ in range(400)])
    away = (full[:, 2, 2] < 0).mean()
    assert 0.4 < away < 0.6
    with pytest.raises(UserError, match="pose range"):
        parse_pose_range("yaw=20:10")


def test_dataset_is_deterministic_and_uses_its_split(renderer):
    from edgepose.synth.dataset import SynthHeadDataset

    ds = SynthHeadDataset(6, seed=4, split="test", n_identities=3, size=96, ssaa=1)
    again = SynthHeadDataset(6, seed=4, split="test", n_identities=3, size=96, ssaa=1)
    other = SynthHeadDataset(6, seed=5, split="test", n_identities=3, size=96, ssaa=1)
    s = [ds[i] for i in (0, 5, 0)]
    assert np.array_equal(s[0].image, s[2].image) and np.array_equal(s[0].image, again[0].image)
    assert not np.array_equal(ds[1].image, other[1].image)
    lo, hi = SPLIT_RANGES["test"]
    for i in range(6):
        smp = ds[i]
        assert lo <= smp.extra["identity"] < hi and smp.extra["identity"] in set(ds.identity_pool)
        assert geometry.is_rotation(smp.R) and smp.landmarks.shape == (5, 2)
        assert smp.image.ndim == (2 if smp.extra["ir"] else 3)
    # resample=True: the generator the training dataset passes decides (new images every epoch)
    fresh = SynthHeadDataset(6, seed=4, split="test", n_identities=3, size=96, ssaa=1, resample=True)
    a1 = fresh.get(0, np.random.default_rng(1)).R
    a2 = fresh.get(0, np.random.default_rng(2)).R
    assert geometry.geodesic_distance(a1, a2) > 1.0
    np.testing.assert_array_equal(fresh[0].image, ds[0].image)  # without a generator: the index seed
    with pytest.raises(UserError, match="unknown synthetic-data option"):
        SynthHeadDataset(3, colour="red")
    with pytest.raises(UserError, match="ir_fraction"):
        SynthHeadDataset(3, ir_fraction=1.5)


def test_pose_dataset_integration(renderer):
    torch = pytest.importorskip("torch")
    from edgepose.data.dataset import PoseDataset
    from edgepose.preprocess import PreprocessSpec
    from edgepose.synth.dataset import SynthHeadDataset

    ds = PoseDataset(SynthHeadDataset(3, seed=0, size=96, ssaa=1, ir_fraction=0.5), PreprocessSpec(input_size=64))
    item = ds[1]
    assert tuple(item["image"].shape) == (3, 64, 64) and item["image"].dtype == torch.float32
    raw = ds.source[1]
    np.testing.assert_allclose(item["R"].numpy(), raw.R, atol=1e-6)


def test_face_box_agrees_with_yunet_on_frontal_renders(renderer, data_file):
    """The face box is detector-like: OpenCV's YuNet finds most frontal synthetic faces, and its
    boxes overlap ours with about the same size and centre."""
    from edgepose.synth.boxcheck import compare_with_yunet

    r = compare_with_yunet(data_file("detectors/yunet/yunet_s_640_640.onnx"), n=12, size=256)
    assert r["detected"] >= 6, r
    assert r["iou"] > 0.6 and 0.8 < r["width_ratio"] < 1.25 and 0.8 < r["height_ratio"] < 1.25, r
    assert abs(r["center_dx"]) < 0.1 and abs(r["center_dy"]) < 0.1, r
    # YuNet's 5 points sit near ours (its own error on cartoon faces included)
    assert r["landmark_dist"] < 0.2, r


def test_forked_child_of_a_rendering_process_gets_a_clear_error(renderer):
    """EGL is not fork-safe (llvmpipe threads vanish in the child, GL calls hang): a forked child
    must raise a UserError naming the fix, never hang."""
    import os

    from edgepose.synth import renderer as rmod

    assert rmod._CTX is not None and rmod._CTX[0] == os.getpid()
    if os.environ.get("LP_NUM_THREADS") == "0":
        pytest.skip("single-threaded llvmpipe is fork-safe; the error is not raised")
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 3
        try:
            rmod._context()
        except UserError as exc:
            code = 0 if "spawn" in str(exc) else 2
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
