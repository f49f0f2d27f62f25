"""edgepose.preprocess: the crop rule, fill, rotation/flip against OpenCV, colour order, layout."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.preprocess import (CropPolicy, PreprocessSpec, crop_affine, crop_box, crop_image, normalize,
                                 preprocess, preprocess_batch, to_bgr)


def smooth_frame(h=240, w=320, seed=0) -> np.ndarray:
    """A smooth, structured BGR test image (bilinear resampling of it is near-exact)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    ch = [127 + 100 * np.sin(xx / rng.uniform(15, 30) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(15, 30))
          for _ in range(3)]
    return np.clip(np.stack(ch, -1), 0, 255).astype(np.uint8)


def to_h(M):
    return np.vstack([M, [0, 0, 1]])


def test_crop_box_policy():
    cx, cy, side = crop_box((10, 20, 50, 100), CropPolicy(scale=1.5, shift_x=0.1, shift_y=-0.2))
    assert (cx, cy, side) == pytest.approx((30 + 4, 60 - 16, 120))


@pytest.mark.parametrize("size", [64, 112, 224])
def test_crop_affine_pixel_centre_rule(size):
    cx, cy, side = 101.3, 77.7, 57.0
    M = crop_affine(cx, cy, side, size)
    s = side / size
    dst = np.array([[0, 0], [size - 1, size - 1], [3, 17]], float)
    src = dst @ M[:, :2].T + M[:, 2]
    origin = np.array([cx - side / 2, cy - side / 2])
    np.testing.assert_allclose(src, origin + (dst + 0.5) * s - 0.5, atol=1e-12)
    # the output centre samples the region centre (in pixel-index coordinates)
    c = np.array([(size - 1) / 2] * 2) @ M[:, :2].T + M[:, 2]
    np.testing.assert_allclose(c, [cx - 0.5, cy - 0.5], atol=1e-12)


def test_identity_crop_is_exact():
    f = smooth_frame()
    spec = PreprocessSpec(input_size=64, crop=CropPolicy(scale=1.0))
    crop = crop_image(f, (100, 50, 164, 114), spec)  # side 64 at scale 1: pure integer shift
    np.testing.assert_array_equal(crop, f[50:114, 100:164])


def test_downscale_matches_cv2_resize_area_free_case():
    f = smooth_frame()
    spec = PreprocessSpec(input_size=80, crop=CropPolicy(scale=1.0))
    crop = crop_image(f, (0, 0, 160, 160), spec)
    ref = cv2.resize(f[0:160, 0:160], (80, 80), interpolation=cv2.INTER_LINEAR)  # same half-pixel rule
    assert np.abs(crop.astype(int) - ref).max() <= 1


def test_out_of_frame_fill():
    f = np.full((100, 100, 3), 200, np.uint8)
    spec = PreprocessSpec(input_size=50, fill=7, crop=CropPolicy(scale=1.0))
    crop = crop_image(f, (-50, -50, 50, 50), spec)  # top-left quadrant outside the frame
    assert np.all(crop[:20, :20] == 7) and np.all(crop[30:, 30:] == 200)
    g = crop_image(f[..., 0], (60, 60, 160, 160), spec)  # gray frames fill too
    assert g.ndim == 2 and np.all(g[35:, 35:] == 7) and np.all(g[:20, :20] == 200)


@pytest.mark.parametrize("angle", [90.0, -30.0, 180.0, 12.5])
def test_rotation_matches_cv2_getRotationMatrix2D(angle):
    size, (cx, cy, side) = 96, (160.0, 120.0, 100.0)
    M0, Ma = to_h(crop_affine(cx, cy, side, size)), to_h(crop_affine(cx, cy, side, size, angle))
    # OpenCV: positive angle = counter-clockwise on screen about the crop centre
    G = to_h(cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, 1.0))
    # rotated(p) = crop0(G^-1 p) = frame(M0 G^-1 p)
    np.testing.assert_allclose(Ma, M0 @ np.linalg.inv(G), atol=1e-9)
    f = smooth_frame()
    spec = PreprocessSpec(input_size=size, crop=CropPolicy(scale=1.0))
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    direct = crop_image(f, box, spec, angle_deg=angle).astype(int)
    two_step = cv2.warpAffine(crop_image(f, box, spec), G[:2], (size, size), flags=cv2.INTER_LINEAR).astype(int)
    inner = np.s_[20:-20, 20:-20]  # corners differ: the two-step version lost them to the first crop
    assert np.abs(direct[inner] - two_step[inner]).mean() < 3


def test_flip_matches_cv2_flip():
    f = smooth_frame()
    spec = PreprocessSpec(input_size=72)
    box = (90, 60, 170, 150)
    a = crop_image(f, box, spec, flip=True).astype(int)
    b = cv2.flip(crop_image(f, box, spec), 1).astype(int)
    assert np.abs(a - b).max() <= 1
    # rotation then flip (the augmentation order)
    a = crop_image(f, box, spec, angle_deg=90, flip=True).astype(int)
    b = cv2.flip(cv2.rotate(crop_image(f, box, spec), cv2.ROTATE_90_COUNTERCLOCKWISE), 1).astype(int)
    assert np.abs(a - b).max() <= 1


def test_color_orders_and_normalisation():
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 10, 100, 250  # B, G, R
    plain = dict(mean=(0, 0, 0), std=(1, 1, 1), pixel_scale=1.0)
    rgb = normalize(crop, PreprocessSpec(color_order="RGB", **plain))
    bgr = normalize(crop, PreprocessSpec(color_order="BGR", **plain))
    assert rgb.shape == (3, 4, 4) and rgb.dtype == np.float32
    assert rgb[:, 0, 0].tolist() == [250, 100, 10] and bgr[:, 0, 0].tolist() == [10, 100, 250]
    gray = normalize(crop, PreprocessSpec(color_order="GRAY", channels=1, mean=(0,), std=(1,), pixel_scale=1.0))
    assert gray.shape == (1, 4, 4)
    assert gray[0, 0, 0] == pytest.approx(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[0, 0])
    nhwc = normalize(crop, PreprocessSpec(layout="NHWC"))
    ref = (np.array([250, 100, 10]) / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(nhwc[0, 0], ref, rtol=1e-5)


def test_gray_frames_are_replicated():
    g = np.arange(64, dtype=np.uint8).reshape(8, 8)
    x = normalize(g, PreprocessSpec(color_order="RGB", mean=(0, 0, 0), std=(1, 1, 1), pixel_scale=1.0))
    assert x.shape == (3, 8, 8)
    assert np.array_equal(x[0], x[1]) and np.array_equal(x[1], x[2]) and np.array_equal(x[0], g)
    assert to_bgr(g[..., None]).shape == (8, 8, 3)
    assert to_bgr(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)
    # GRAY model fed a gray frame: 3 replicated channels when channels=3
    y = normalize(g, PreprocessSpec(color_order="GRAY", channels=3, mean=(0.5,), std=(0.5,)))
    assert y.shape == (3, 8, 8) and np.array_equal(y[0], y[2])


def test_empty_box_and_bad_frame_errors():
    spec = PreprocessSpec(input_size=32)
    f = smooth_frame()
    with pytest.raises(ValueError, match="empty face box"):
        crop_image(f, (10, 10, 10, 50), spec)
    with pytest.raises(ValueError, match="empty face box"):
        preprocess(f, (30, 30, 20, 40), spec)
    with pytest.raises(ValueError, match="non-empty"):
        crop_image(np.zeros((0, 0, 3), np.uint8), (0, 0, 1, 1), spec)
    with pytest.raises(ValueError, match="color_order"):
        PreprocessSpec(color_order="YUV")


def test_batch_of_zero_and_many_faces():
    spec = PreprocessSpec(input_size=48)
    f = smooth_frame()
    assert preprocess_batch(f, [], spec).shape == (0, 3, 48, 48)
    assert preprocess_batch(f, [], PreprocessSpec(input_size=48, layout="NHWC")).shape == (0, 48, 48, 3)
    out = preprocess_batch(f, [(10, 10, 60, 70), (100, 50, 200, 150)], spec)
    assert out.shape == (2, 3, 48, 48) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], preprocess(f, (100, 50, 200, 150), spec))


def test_spec_roundtrip():
    spec = PreprocessSpec(input_size=128, color_order="bgr", crop={"scale": 1.2, "box_source": "landmarks"})
    again = PreprocessSpec.from_dict(spec.to_dict())
    assert again == spec and again.color_order == "BGR" and again.crop.scale == 1.2
