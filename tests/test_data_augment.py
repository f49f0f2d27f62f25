"""Augmentation: augmented landmarks equal the projection of the synthetic head through the
augmented label (up to the crop's scale + translation), and the pixels agree with the points."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import geometry as g
from edgepose.data import Augment, Sample, crop_sample, transform_points
from edgepose.data.augment import jitter_box, nir_look, occlude
from edgepose.preprocess import CropPolicy, PreprocessSpec, crop_box

MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def synthetic_sample(R, rng, gray=False):
    """A frame with a 3D point head projected at a known centre and scale (orthographic)."""
    pts = np.concatenate([[[0, 0, 1.0], [0, 1, 0], [1, 0, 0], [-1, 0, 0]], rng.normal(size=(12, 3))])
    c0, sc = np.array([170.0, 130.0]), 40.0
    lm = g.project_points(R, pts, center=c0, scale=sc)
    img = rng.integers(0, 255, (260, 340) if gray else (260, 340, 3), dtype=np.uint8)
    box = (c0[0] - 1.2 * sc, c0[1] - 1.2 * sc, c0[0] + 1.2 * sc, c0[1] + 1.2 * sc)
    return Sample(image=img, R=R, box=box, landmarks=lm, source="synthetic"), pts, c0, sc


@pytest.mark.parametrize("seed", range(6))
def test_augmented_landmarks_are_projection_of_augmented_label(seed):
    rng = np.random.default_rng(seed)
    R = g.random_rotations(1, rng)[0]
    sample, pts, c0, sc = synthetic_sample(R, rng, gray=seed % 2 == 1)
    spec = PreprocessSpec(input_size=96, crop=CropPolicy(scale=1.3))
    aug = Augment(flip_p=0.5, rotate_p=1.0, rotate_deg=180, box_scale=0.1, box_shift=0.1, brightness=0.2,
                  contrast=0.2, blur_p=0.5, noise_p=0.5, gray_p=0.3, nir_p=0.3, occlusion_p=0.5)
    seen_flip = set()
    for _ in range(8):
        crop, R2, lm2, geo = aug(sample, spec, rng)
        seen_flip.add(geo.flip)
        assert crop.shape[:2] == (96, 96) and crop.dtype == np.uint8 and crop.ndim == sample.image.ndim
        assert g.is_rotation(R2)
        _, _, side = crop_box(geo.box, spec.crop)
        c0_crop = transform_points(c0[None], geo.box, spec, geo.angle_deg, geo.flip)[0]
        model = pts @ MIRROR_X if geo.flip else pts  # a mirrored image shows the mirrored head
        expected = g.project_points(R2, model, center=c0_crop, scale=sc * spec.input_size / side)
        np.testing.assert_allclose(lm2, expected, atol=1e-9)


def test_pixels_follow_the_landmarks():
    """Bright dots drawn at the landmarks land where transform_points says, after rotation+flip."""
    rng = np.random.default_rng(7)
    frame = np.zeros((200, 200), np.uint8)
    yy, xx = np.mgrid[0:200, 0:200]
    dots = np.array([[80.0, 70.0], [130.0, 90.0], [100.0, 140.0]])
    img = np.zeros((200, 200), np.float64)
    for x, y in dots:
        img += 250 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0 ** 2))
    frame[:] = np.clip(img, 0, 255).astype(np.uint8)
    s = Sample(image=frame, R=np.eye(3), box=(60, 60, 150, 150), landmarks=dots)
    spec = PreprocessSpec(input_size=128, crop=CropPolicy(scale=1.2))
    for angle, flip in ((0, False), (37.0, True), (-120.0, False), (90.0, True)):
        crop, R2, lm = crop_sample(s, spec, angle, flip)
        cy, cx = np.mgrid[0:128, 0:128]
        for p in lm:
            win = (np.abs(cx - p[0]) < 8) & (np.abs(cy - p[1]) < 8)
            w = crop.astype(float) * win
            centroid = np.array([(w * cx).sum(), (w * cy).sum()]) / w.sum()
            np.testing.assert_allclose(centroid, p, atol=0.35)
        np.testing.assert_allclose(R2, g.flip_label(g.rotate_label(np.eye(3), angle)) if flip
                                   else g.rotate_label(np.eye(3), angle), atol=1e-12)
    del rng


def test_no_augmentation_is_plain_crop_and_label_untouched():
    rng = np.random.default_rng(1)
    R = g.euler_to_matrix([10, -20, 5])
    s, *_ = synthetic_sample(R, rng)
    spec = PreprocessSpec(input_size=64)
    crop, R2, lm2, geo = Augment(flip_p=0.0)(s, spec, rng)
    ref, Rr, lmr = crop_sample(s, spec)
    assert np.array_equal(crop, ref) and np.array_equal(R2, R) and geo.angle_deg == 0 and not geo.flip
    np.testing.assert_allclose(lm2, lmr)
    # a sample without a box crops the whole frame; without landmarks / label passes None through
    c, Rn, ln = crop_sample(Sample(image=s.image), spec)
    assert c.shape == (64, 64, 3) and Rn is None and ln is None


def test_flip_probability_and_rotation_range():
    rng = np.random.default_rng(2)
    s, *_ = synthetic_sample(np.eye(3), rng)
    aug = Augment(flip_p=0.5, rotate_p=1.0, rotate_deg=20)
    geos = [aug.sample_geometry(s, rng) for _ in range(400)]
    flips = np.mean([x.flip for x in geos])
    angles = np.array([x.angle_deg for x in geos])
    assert 0.4 < flips < 0.6 and np.all(np.abs(angles) <= 20) and angles.std() > 8
    full = np.array([Augment(rotate_p=1.0, rotate_deg=360).sample_geometry(s, rng).angle_deg for _ in range(400)])
    assert np.all(np.abs(full) <= 180) and full.min() < -150 and full.max() > 150


def test_box_jitter_bounds():
    rng = np.random.default_rng(3)
    for _ in range(100):
        b = jitter_box((100, 100, 200, 160), 0.2, 0.1, rng)
        w, h = b[2] - b[0], b[3] - b[1]
        assert 80 - 1e-9 <= w <= 120 + 1e-9 and abs(h / w - 0.6) < 1e-9
        assert abs((b[0] + b[2]) / 2 - 150) <= 10 + 1e-9 and abs((b[1] + b[3]) / 2 - 130) <= 6 + 1e-9


def test_photometric_ops():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    nir = nir_look(x, rng)
    assert nir.shape == x.shape and np.array_equal(nir[..., 0], nir[..., 2])  # single-channel look
    assert nir_look(x[..., 0], rng).shape == (64, 64)
    flat = np.full((64, 64, 3), 128.0, np.float32)
    occ = occlude(flat, rng, (0.3, 0.4))
    changed = np.abs(occ - flat).max(-1) > 1
    assert 0.02 < changed.mean() < 0.6  # part of the crop is covered, not all of it
    aug = Augment(flip_p=0, gray_p=1.0)
    out = aug.photometric(x.astype(np.uint8), rng)
    assert np.array_equal(out[..., 0], out[..., 1])
    with pytest.raises(Exception, match="unknown augmentation keys"):
        Augment.from_dict({"rotate": 3})
    assert Augment.from_dict(Augment(rotate_p=0.5).to_dict()) == Augment(rotate_p=0.5)
