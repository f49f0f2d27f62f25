"""Face profiling (edgepose.synth.profile): labels proved on rendered pixels, determinism, cache."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import geometry

pytest.importorskip("moderngl")

from edgepose.synth.profile.fit import FaceFit, canonical_face  # noqa: E402
from edgepose.synth.profile.render import applied_rotation, compose_label  # noqa: E402

# landmarks painted as small coloured dots on a synthetic photo: mouth corners, outer eye corners,
# chin, forehead; flat interior spots (a dot on the nose tip or the oval's edge spreads over
# surfaces facing other ways, which moves its rendered centroid off the point)
_DOTS = {61: (0, 0, 255), 291: (255, 255, 0), 33: (0, 255, 0), 263: (255, 0, 0), 199: (0, 255, 255),
         151: (255, 0, 255)}


@pytest.fixture(scope="module")
def renderer():
    from edgepose.errors import UserError
    from edgepose.synth.profile.render import get_profile_renderer

    try:
        return get_profile_renderer(384, ssaa=1)
    except UserError as exc:  # no EGL on this machine
        pytest.skip(str(exc))


def synthetic_photo(R_src, scale=90.0, size=400):
    """A grey 'photo' whose landmarks are exactly the canonical face at ``R_src`` (a FaceFit with no
    fitting error) with coloured dots at the landmarks of _DOTS."""
    import cv2

    M = canonical_face()
    t = np.array([size / 2, -size / 2 + 10, 0.0])
    cam = scale * M @ geometry.camera_frame(R_src).T + t
    pts = cam * np.array([1.0, -1.0, 1.0])  # camera frame (y up) -> image pixels (y down)
    img = np.full((size, size, 3), 128, np.uint8)
    for i, col in _DOTS.items():
        # cv2 centres a circle on pixel INDEX c, i.e. at continuous c + 0.5: shift by half a pixel
        c = tuple(int(round((v - 0.5) * 16)) for v in pts[i, :2])
        cv2.circle(img, c, 3 * 16, col, -1, lineType=cv2.LINE_AA, shift=4)
    fit = FaceFit(points=pts, R=np.asarray(R_src, np.float64), scale=scale, t=t, residual=0.0)
    return img, fit


def dot_centres(img):
    out = {}
    for i, col in _DOTS.items():
        d = np.abs(img.astype(int) - np.array(col)).sum(-1)
        ys, xs = np.nonzero(d < 120)
        out[i] = np.array([xs.mean() + 0.5, ys.mean() + 0.5]) if len(xs) >= 3 else None
    return out


# (source, target, tolerance px at 384): an in-plane turn is a pure image rotation (exact); out of
# plane, a dot's footprint spreads over facets facing other ways and its centroid drifts by ~1 px
@pytest.mark.parametrize("src, target, tol", [((5, -20, 8), (20, 45, -15), 2.0), ((-10, 15, -5), (-35, -50, 25), 2.0),
                                              ((0, 0, 0), (10, 70, 100), 2.0), ((3, -4, 2), (3, -4, 40), 0.3)])
def test_label_proved_by_projecting_mesh_points(renderer, src, target, tol):
    """The rendered dots sit where geometry.project_points puts the canonical points through the
    label, and the label is the source pose composed with the applied rotation."""
    R_src, R_t = geometry.euler_to_matrix(src), geometry.euler_to_matrix(target)
    img, fit = synthetic_photo(R_src)
    res = renderer.render(img, fit, R_t, key=f"dots{src}", mirror_fill=False)
    Q = applied_rotation(R_src, R_t)
    assert np.allclose(res.R, R_t, atol=1e-9) and np.allclose(res.R, compose_label(R_src, Q), atol=1e-9)
    assert geometry.geodesic_distance(Q, np.eye(3)) > 20  # a real rotation was applied
    centres = dot_centres(res.image)
    M = canonical_face()
    proj = geometry.project_points(res.R, M[list(_DOTS)], res.center, res.scale)
    wrong = geometry.project_points(Q.T @ R_src, M[list(_DOTS)], res.center, res.scale)  # the other order
    found = 0
    for k, i in enumerate(_DOTS):
        if centres[i] is None:  # hidden by the rotation (e.g. the far eye corner)
            continue
        found += 1
        assert np.linalg.norm(centres[i] - proj[k]) < tol, (i, centres[i], proj[k])
    assert found >= 1 if target[1] == 70 else found >= 4
    if geometry.geodesic_distance(Q.T @ R_src, res.R) > 10:  # the two orders differ here: the test tells them apart
        errs_wrong = [np.linalg.norm(centres[i] - wrong[k]) for k, i in enumerate(_DOTS) if centres[i] is not None]
        assert max(errs_wrong) > 3


def test_render_is_deterministic_and_pose_free_of_source_pixels(renderer):
    from edgepose.synth.scene import SceneParams

    img, fit = synthetic_photo(geometry.euler_to_matrix((0, 10, 0)))
    R = geometry.euler_to_matrix((0, -60, 0))
    scene = SceneParams.sample(np.random.default_rng(3), ir_fraction=0.0)
    a = renderer.render(img, fit, R, scene=scene, relight=True, key="det").image
    b = renderer.render(img, fit, R, scene=scene, relight=True, key="det").image
    assert np.array_equal(a, b)
    c = renderer.render(img, fit, geometry.euler_to_matrix((0, -30, 0)), scene=scene, relight=True, key="det").image
    assert not np.array_equal(a, c)


# ------------------------------------------------------------------ the pipeline on real photos
def _needs_facemesh():
    pytest.importorskip("ai_edge_litert", reason="face profiling needs ai-edge-litert (pip install 'edgepose[profile]')")
    from edgepose.errors import UserError
    from edgepose.synth.profile.facemesh import model_path

    try:
        if not model_path().exists():
            pytest.skip(f"MediaPipe face-landmark model not found at {model_path()}")
    except UserError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def aws_photos(data_file, tmp_path_factory):
    """Three Apache-2.0 faces-aws photos (copied to a temp folder, never into the repository)."""
    import shutil

    _needs_facemesh()
    d = tmp_path_factory.mktemp("aws")
    for name in ("IMG_1232.JPG", "IMG_1236.JPG", "IMG_1240.JPG"):
        shutil.copy(data_file(f"faces-aws/{name}"), d / name)
    return d


@pytest.fixture(scope="module")
def yunet(data_file):
    return str(data_file("detectors/yunet/yunet_s_dynamic.onnx"))


def _cfg(yunet, **kw):
    from edgepose.synth.profile.pipeline import ProfileConfig

    base = dict(k=3, size=64, ssaa=1, pose_mode="shared", detector_model=yunet, seed=5)
    return ProfileConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def shared_cache(aws_photos, yunet, tmp_path_factory, renderer):
    from edgepose.synth.profile.cache import build_cache

    return build_cache([aws_photos], tmp_path_factory.mktemp("pc") / "c", _cfg(yunet), chunk_faces=2, progress=False)


def test_cache_reader_labels_and_deterministic_rebuild(shared_cache, aws_photos, yunet, tmp_path):
    from edgepose.synth.profile.cache import ProfiledReader, build_cache
    from edgepose.synth.profile.pipeline import shared_poses

    r = ProfiledReader(str(shared_cache))
    assert len(r) == 9 and r[0].image.shape[:2] == (64, 64) and r[0].image.dtype == np.uint8
    poses = shared_poses(_cfg(yunet))
    for i in range(len(r)):  # shared mode: render k of every face shows pose k exactly
        s = r[i]
        assert geometry.geodesic_distance(s.R, poses[s.extra["pose"]]) < 0.05  # float32 labels
        x1, y1, x2, y2 = s.box
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64 and 0.0 <= s.extra["visibility"] <= 1.0
    again = ProfiledReader(str(build_cache([aws_photos], tmp_path / "again", _cfg(yunet), chunk_faces=3,
                                           progress=False)))
    assert all(np.array_equal(r[i].image, again[i].image) for i in range(len(r)))  # same seed, same pixels
    other = ProfiledReader(str(build_cache([aws_photos], tmp_path / "other", _cfg(yunet, seed=6), chunk_faces=3,
                                           progress=False)))
    assert not np.array_equal(r[0].image, other[0].image)


def test_cache_refused_when_settings_differ_and_resumed_when_equal(shared_cache, aws_photos, yunet):
    import os

    from edgepose.errors import UserError
    from edgepose.synth.profile.cache import build_cache

    with pytest.raises(UserError, match="size: cached 64, asked 96"):
        build_cache([aws_photos], shared_cache, _cfg(yunet, size=96), chunk_faces=2, progress=False)
    with pytest.raises(UserError, match="other settings"):
        build_cache([aws_photos / "IMG_1232.JPG"], shared_cache, _cfg(yunet), chunk_faces=2, progress=False)
    chunk = shared_cache / "chunks" / "00001"
    stamp = chunk.stat().st_mtime_ns
    import shutil

    shutil.rmtree(shared_cache / "chunks" / "00000")  # an interrupted build: the first chunk is missing
    build_cache([aws_photos], shared_cache, _cfg(yunet), chunk_faces=2, progress=False)
    assert (shared_cache / "chunks" / "00000").is_dir() and chunk.stat().st_mtime_ns == stamp
    assert not any(p.suffix == ".tmp" for p in (shared_cache / "chunks").iterdir()) and os.path.exists(chunk)


def test_same_pose_sampler_geodesic_distances(shared_cache):
    from edgepose.synth.profile.cache import ProfiledReader
    from edgepose.synth.profile.sampler import SamePoseBatchSampler, geodesic_matrix

    r = ProfiledReader(str(shared_cache))
    sampler = SamePoseBatchSampler(r, identities=3, poses=2, seed=1)
    batches = list(sampler)
    assert len(batches) == 3 and batches == list(SamePoseBatchSampler(r, identities=3, poses=2, seed=1))
    for b in batches:
        same, neg = b[:3], b[3:]
        faces = [r[i].extra["face"] for i in same]
        assert len(set(faces)) == 3 and len({r[i].extra["pose"] for i in same}) == 1
        assert {r[i].extra["face"] for i in neg} == {faces[0]} and len(neg) == 2
        D = geodesic_matrix(np.stack([r[i].R for i in b]))
        assert np.allclose(D[:3, :3], 0, atol=0.05)  # positives: identical labels (float32, arccos)
        for j in neg:  # negatives: the known distance between the shared poses
            assert D[0, b.index(j)] > 1.0
            assert abs(D[0, b.index(j)] - geometry.geodesic_distance(r[same[0]].R, r[j].R)) < 1e-6


def test_profiled_format_through_the_data_registry(shared_cache):
    from edgepose.data import build_reader

    r = build_reader({"format": "profiled", "root": str(shared_cache), "min_visibility": 0.5})
    assert 0 < len(r) <= 9 and all(r[i].extra["visibility"] >= 0.5 for i in range(len(r)))


def test_cli_profiles_a_real_image(aws_photos, yunet, tmp_path, capsys, renderer):
    from edgepose.cli.main import main

    out = tmp_path / "cli"
    rc = main(["synth", "profile", str(aws_photos / "IMG_1232.JPG"), "--out", str(out), "--k", "2", "--size", "64",
               "--ssaa", "1", "--detector-model", yunet])
    assert rc == 0 and "2 renders of 1 faces" in capsys.readouterr().out
    rc = main(["synth", "profile", str(aws_photos / "IMG_1232.JPG"), "--out", str(out), "--k", "3", "--size", "64",
               "--ssaa", "1", "--detector-model", yunet])
    assert rc == 2  # a stale cache: one-line error, no traceback


def test_clerf_draws_profiled_positives_from_a_shared_pose_cache(shared_cache):
    """One config entry (data.train: {format: profiled, root: ...}) gives CLERF real-face positives:
    another face at exactly the anchor's pose."""
    from edgepose.data import build_dataset
    from edgepose.methods.data import ClerfPairs, GeometricAugment
    from edgepose.preprocess import PreprocessSpec

    ds = build_dataset({"format": "profiled", "root": str(shared_cache)}, PreprocessSpec(input_size=64))
    pairs = ClerfPairs(ds, GeometricAugment(rotate_p=0.0, flip_p=0.0, mirror_p=0.0))
    for i in (0, 4, 8):
        pos, _ = pairs.positive(i, ds.source[i])
        assert pos.extra["face"] != ds.source[i].extra["face"]
        assert geometry.geodesic_distance(pos.R, ds.source[i].R) < 0.05
    crop_a, R_a, crop_p, R_p, _ = pairs.pair(4, np.random.default_rng(0))
    assert crop_a.shape == crop_p.shape and geometry.geodesic_distance(R_a, R_p) < 0.05
