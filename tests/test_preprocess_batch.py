"""All faces of a frame in one step (edgepose.preprocess.crop_images / normalize_batch / preprocess_batch)
against the per-face path (crop_image = cv2.warpAffine per face, then normalize), on real video frames.

The one-remap crops rebuild OpenCV's own fixed-point warp maps, so they must equal warpAffine's bit
for bit -- at the frame edge, for boxes larger than the frame, tiny boxes, fractional coordinates,
rotations and flips, BGR, GRAY and BGRA frames.  The normalisation table must equal the float32
arithmetic exactly.  Finally the pose model's outputs from one batched call match one call per face.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.preprocess import (REMAP_MIN_FACES, CropPolicy, PreprocessSpec, crop_image, crop_images, normalize,
                                 normalize_batch, preprocess, preprocess_batch, warp_maps)

VIDEOS = ["videos/multi_face_classroom.mp4", "videos/single_face.mp4"]


def _frames(path, count=3, step=20) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out, i = [], 0
    while len(out) < count:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            out.append(f)
        i += 1
    cap.release()
    assert out, f"no frames read from {path}"
    return out


@pytest.fixture(scope="module", params=VIDEOS)
def frames(request, data_file):
    return _frames(data_file(request.param))


def _boxes(frame, n=12, seed=0) -> list[tuple]:
    """Face-like boxes: inside, across every edge and corner, larger than the frame, tiny, fractional."""
    h, w = frame.shape[:2]
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        s = rng.uniform(8, 0.6 * min(h, w))
        x, y = rng.uniform(-0.5 * s, w - 0.5 * s), rng.uniform(-0.5 * s, h - 0.5 * s)
        boxes.append((x, y, x + s * rng.uniform(0.8, 1.2), y + s * rng.uniform(0.9, 1.4)))
    boxes += [(-40.3, -25.1, 60.2, 90.7), (w - 50.5, h - 70.25, w + 30.0, h + 10.0), (w - 20, 5, w + 200, 160),
              (-2 * w, -2 * h, 3 * w, 3 * h), (10.49, 20.51, 12.0, 22.0), (w / 2, h / 2, w / 2 + 1e-3, h / 2 + 1e-3)]
    return boxes


SPECS = {
    "default-96-bgr": PreprocessSpec(input_size=96, color_order="BGR", mean=(0.5,) * 3, std=(0.50196,) * 3,
                                     crop=CropPolicy(scale=1.6)),
    "imagenet-112-rgb-fill": PreprocessSpec(input_size=112, color_order="RGB", fill=17,
                                            crop=CropPolicy(scale=1.3, shift_y=-0.1)),
    "gray-64-nhwc": PreprocessSpec(input_size=64, color_order="GRAY", channels=3, mean=(0.5,), std=(0.25,),
                                   layout="NHWC"),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_one_remap_equals_warpaffine_per_face(frames, name):
    spec = SPECS[name]
    for k, frame in enumerate(frames):
        for variant in (frame, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)):
            boxes = _boxes(variant, seed=k)
            ref = np.stack([crop_image(variant, b, spec) for b in boxes])
            got = crop_images(variant, boxes, spec, method="remap")
            assert got.shape == ref.shape and got.dtype == np.uint8
            assert np.array_equal(got, ref), f"{int((got != ref).sum())} pixels differ"


def test_rotated_and_flipped_crops_equal_per_face(frames):
    spec = SPECS["imagenet-112-rgb-fill"]
    frame = frames[0]
    boxes = _boxes(frame, seed=7)
    rng = np.random.default_rng(3)
    angles = rng.uniform(-180, 180, len(boxes))
    flips = rng.integers(0, 2, len(boxes)).astype(bool)
    ref = np.stack([crop_image(frame, b, spec, angle_deg=a, flip=f) for b, a, f in zip(boxes, angles, flips)])
    got = crop_images(frame, boxes, spec, angle_deg=angles, flip=flips, method="remap")
    assert np.array_equal(got, ref)
    # one angle for every face broadcasts
    ref30 = np.stack([crop_image(frame, b, spec, angle_deg=30.0) for b in boxes])
    assert np.array_equal(crop_images(frame, boxes, spec, angle_deg=30.0), ref30)


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("method", ["auto", "remap", "per_face"])
def test_preprocess_batch_equals_preprocess_per_face(frames, name, method):
    spec = SPECS[name]
    frame = frames[-1]
    for n in (1, 2, 5, 18):
        boxes = _boxes(frame, n=max(n - 6, 0), seed=n)[:n]
        ref = np.stack([preprocess(frame, b, spec) for b in boxes])
        got = preprocess_batch(frame, boxes, spec, method=method)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert np.array_equal(got, ref)


def _arith_normalize(crop: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The normalisation written out as plain float32 arithmetic (the pre-table implementation)."""
    if spec.color_order == "GRAY":
        g = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        x = np.repeat(g[..., None], spec.channels, axis=2)
    else:
        bgr = crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        x = bgr[..., ::-1] if spec.color_order == "RGB" else bgr
    x = x.astype(np.float32) * np.float32(spec.pixel_scale)
    c = x.shape[2]
    mean = np.asarray(spec.mean[:c] if len(spec.mean) >= c else spec.mean * c, np.float32)
    std = np.asarray(spec.std[:c] if len(spec.std) >= c else spec.std * c, np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1) if spec.layout == "NCHW" else x)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_normalisation_table_equals_arithmetic(name):
    spec = SPECS[name]
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (4, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    crops[0, :16, :16] = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)  # every level
    ref = np.stack([_arith_normalize(c, spec) for c in crops])
    assert np.array_equal(normalize_batch(crops, spec), ref)
    assert np.array_equal(normalize(crops[1], spec), ref[1])
    gray = crops[..., 1]
    assert np.array_equal(normalize_batch(gray, spec), np.stack([_arith_normalize(g, spec) for g in gray]))
    # float crops take the arithmetic path and agree with it
    f = crops[2].astype(np.float32)
    assert np.array_equal(normalize(f, spec), _arith_normalize(f, spec))


def test_warp_maps_shape_and_wrong_rounding_is_detected(frames):
    spec = SPECS["default-96-bgr"]
    frame = frames[0]
    boxes = _boxes(frame, seed=11)
    from edgepose.preprocess import crop_affines, crop_boxes

    r = crop_boxes(boxes, spec.crop)
    M = crop_affines(r[:, 0], r[:, 1], r[:, 2], spec.input_size)
    map1, map2 = warp_maps(M, spec.input_size)
    assert map1.shape == (len(boxes) * 96, 96, 2) and map1.dtype == np.int16 and map2.dtype == np.uint16
    # float maps (cv2.remap rounds them to 1/32 px itself) are close to, but not, warpAffine: the
    # exact test above is able to tell them apart
    xs = np.arange(96, dtype=np.float64)
    mx = M[:, 0, 0, None, None] * xs + M[:, 0, 1, None, None] * xs[:, None] + M[:, 0, 2, None, None]
    my = M[:, 1, 0, None, None] * xs + M[:, 1, 1, None, None] * xs[:, None] + M[:, 1, 2, None, None]
    approx = cv2.remap(frame, mx.reshape(-1, 96).astype(np.float32), my.reshape(-1, 96).astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT).reshape(len(boxes), 96, 96, 3)
    exact = crop_images(frame, boxes, spec, method="remap")
    assert not np.array_equal(approx, exact)


def test_batch_errors_and_auto_threshold(frames):
    spec = SPECS["default-96-bgr"]
    frame = frames[0]
    with pytest.raises(ValueError, match="empty face box"):
        preprocess_batch(frame, [(10, 10, 50, 50), (30, 30, 20, 40)], spec)
    with pytest.raises(ValueError, match="method"):
        crop_images(frame, [(10, 10, 50, 50)], spec, method="gpu")
    assert crop_images(frame, [], spec).shape == (0, 96, 96, 3)
    assert REMAP_MIN_FACES is None or REMAP_MIN_FACES >= 1
    # boxes given with scores (x1, y1, x2, y2, score) and as an (N, 5) array
    boxes = [(10, 10, 50, 60, 0.9), (100, 40, 180, 150, 0.8)]
    assert np.array_equal(preprocess_batch(frame, boxes, spec), preprocess_batch(frame, np.array(boxes), spec))


def test_pose_outputs_one_batched_call_equal_per_face_calls(data_file):
    """The shipped default model: one (N, C, S, S) inference vs N single-face inferences."""
    from edgepose.defaults import PROFILES
    from edgepose.runtime.backend import load_backend
    from importlib import resources

    path = resources.files("edgepose.assets.models").joinpath(PROFILES["fp32"])
    frame = _frames(data_file(VIDEOS[0]), count=1)[0]
    h, w = frame.shape[:2]
    boxes = [(w * 0.1, h * 0.2, w * 0.2, h * 0.4), (w * 0.45, h * 0.3, w * 0.55, h * 0.5),
             (w - 60, h - 80, w + 20, h + 10), (-30, 40, 50, 150), (w * 0.7, h * 0.1, w * 0.78, h * 0.25)]
    with load_backend(str(path), intra_op_threads=1) as be:
        calls = []
        runner_infer = be.runner.infer

        def counting(feed):
            calls.append(next(iter(feed.values())).shape[0])
            return runner_infer(feed)

        assert be.runner.input_shape[0] is None, "the default model's batch dimension must be dynamic"
        be.runner.infer = counting
        out = be.predict(frame, boxes)
        assert calls == [len(boxes)], "all faces of a frame must go through one batched inference"
        single = [be.infer(preprocess(frame, b, be.spec)[None]) for b in boxes]
    R1 = np.concatenate([s["R"] for s in single])
    e1 = np.concatenate([s["euler"] for s in single])
    assert out["valid"].all()
    np.testing.assert_allclose(out["R"], R1, atol=1e-5)
    np.testing.assert_allclose(out["euler"], e1, atol=2e-3)
