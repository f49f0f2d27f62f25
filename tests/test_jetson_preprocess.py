"""The GPU crop kernel's math, proven on the CPU: its NumPy reference vs edgepose.preprocess.

OpenCV's warpAffine (behind preprocess.crop_image) quantises source coordinates to 1/32 pixel
and weights to fixed point; the kernel (and its reference) use exact float32 coordinates.  The
difference per pixel is therefore at most (1/64 px) x (local gradient, <= 255 levels/px) + 1
rounding level: <= 255/32 + 1 levels on worst-case content (0/255 pixel noise); on a real face
photo it is a few levels at most at sharp edges, zero for ~98 % of the values, and ~0.02
levels on average.  A kernel with a wrong crop rule (e.g. missing the half-pixel terms) fails
those statistics by a wide margin (test_wrong_crop_rule_is_detected).  The GPU test (kernel == reference) skips
without pycuda and a CUDA device.
"""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from edgepose.errors import UserError
from edgepose.jetson.gpu_preprocess import (face_affines, kernel_params, kernel_source,
                                            reference_crop_resize_normalize)
from edgepose.preprocess import CropPolicy, PreprocessSpec, crop_affine, crop_box, preprocess_batch

BOXES = [(50, 40, 150, 170), (-30, -20, 60, 80), (250, 180, 360, 300), (10.3, 20.7, 47.9, 61.2)]


def levels(a, b, spec):
    """|a - b| in uint8 levels (undo the 1/std scaling)."""
    std = np.asarray(spec.std if len(spec.std) == a.shape[1] else spec.std * a.shape[1], np.float32)
    return np.abs(a - b) * std[None, :, None, None] / spec.pixel_scale


def assert_natural_agreement(d: np.ndarray) -> None:
    """Bounds for a real photo (see the module docstring)."""
    assert d.max() <= 4.0 + 1e-3
    assert d.mean() < 0.1
    assert (d > 0.5).mean() < 0.05


def spec_for(order: str, **kw) -> PreprocessSpec:
    if order == "GRAY":
        return PreprocessSpec(input_size=64, color_order="GRAY", channels=kw.pop("channels", 1), mean=(0.5,),
                              std=(0.25,), **kw)
    return PreprocessSpec(input_size=64, color_order=order, **kw)


@pytest.fixture(scope="module")
def face_frame(data_file):
    img = cv2.imread(str(data_file("aflw2000-sample/image00050.jpg")))
    assert img is not None
    return img


@pytest.mark.parametrize("order,channels", [("RGB", 3), ("BGR", 3), ("GRAY", 1), ("GRAY", 3)])
def test_reference_matches_preprocess_on_a_real_face(face_frame, order, channels):
    h, w = face_frame.shape[:2]
    boxes = [(w * 0.3, h * 0.25, w * 0.7, h * 0.75), (-20, -10, w * 0.4, h * 0.4), (w * 0.8, h * 0.8, w + 40, h + 60)]
    spec = spec_for(order, channels=channels, crop=CropPolicy(scale=1.3, shift_y=-0.05))
    ref = reference_crop_resize_normalize(face_frame, boxes, spec)
    np_ = preprocess_batch(face_frame, boxes, spec)
    assert ref.shape == np_.shape == (3, channels, 64, 64) and ref.dtype == np.float32
    assert_natural_agreement(levels(ref, np_, spec))


def test_reference_matches_on_gray_frames(face_frame):
    gray = cv2.cvtColor(face_frame, cv2.COLOR_BGR2GRAY)
    for spec in (spec_for("GRAY"), spec_for("RGB")):
        d = levels(reference_crop_resize_normalize(gray, BOXES, spec), preprocess_batch(gray, BOXES, spec), spec)
        assert_natural_agreement(d)


def test_worst_case_content_bound():
    rng = np.random.default_rng(0)
    noise = (rng.integers(0, 2, (240, 320, 3)) * 255).astype(np.uint8)
    spec = spec_for("RGB")
    d = levels(reference_crop_resize_normalize(noise, BOXES, spec), preprocess_batch(noise, BOXES, spec), spec)
    assert d.max() <= 255 / 32 + 1 + 1e-3
    assert d.mean() < 2.0


def test_out_of_frame_fill_is_exact():
    frame = np.full((100, 100, 3), 77, np.uint8)
    spec = spec_for("BGR", fill=13)
    far = [(400, 400, 450, 450)]  # entirely outside: every tap reads `fill`
    ref = reference_crop_resize_normalize(frame, far, spec)
    assert np.array_equal(ref, preprocess_batch(frame, far, spec))
    expected = (13 / 255 - np.asarray(spec.mean)) / np.asarray(spec.std)
    assert np.allclose(ref[0, :, 5, 5], expected, atol=1e-6)


def test_wrong_crop_rule_is_detected(face_frame):
    """Sensitivity: dropping the half-pixel terms of the rule moves the crop by ~side/(2S) - 0.5 px."""
    spec = spec_for("RGB")
    h, w = face_frame.shape[:2]
    boxes = [(w * 0.3, h * 0.25, w * 0.7, h * 0.75)]
    np_ = preprocess_batch(face_frame, boxes, spec)
    cx, cy, side = crop_box(boxes[0], spec.crop)
    s = side / spec.input_size
    wrong = np.array([[s, 0, cx - side / 2], [0, s, cy - side / 2]], np.float64)  # src = origin + dst * s
    right = crop_affine(cx, cy, side, spec.input_size)
    assert not np.allclose(wrong, right)
    import edgepose.jetson.gpu_preprocess as gp

    orig = gp.face_affines
    gp.face_affines = lambda b, sp: wrong.reshape(1, 6).astype(np.float32)
    try:
        bad = reference_crop_resize_normalize(face_frame, boxes, spec)
    finally:
        gp.face_affines = orig
    d = levels(bad, np_, spec)
    assert d.max() > 5 and d.mean() > 0.5 and (d > 0.5).mean() > 0.2


def test_affines_come_from_crop_affine():
    spec = spec_for("RGB")
    A = face_affines(BOXES, spec)
    for row, box in zip(A, BOXES):
        cx, cy, side = crop_box(box, spec.crop)
        assert np.allclose(row, crop_affine(cx, cy, side, 64).reshape(6), atol=1e-4)
        # the documented rule: src = origin + (dst + 0.5) * side / S - 0.5
        for dst in (0.0, 31.0, 63.0):
            assert row[0] * dst + row[2] == pytest.approx(cx - side / 2 + (dst + 0.5) * side / 64 - 0.5, abs=1e-3)


def test_layouts_empty_and_errors():
    frame = np.random.default_rng(1).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    nchw = reference_crop_resize_normalize(frame, BOXES[:2], spec_for("RGB"))
    nhwc = reference_crop_resize_normalize(frame, BOXES[:2], spec_for("RGB", layout="NHWC"))
    assert np.array_equal(nchw.transpose(0, 2, 3, 1), nhwc)
    assert reference_crop_resize_normalize(frame, [], spec_for("RGB")).shape == (0, 3, 64, 64)
    with pytest.raises(UserError, match="BGR"):
        reference_crop_resize_normalize(np.zeros((8, 8, 4), np.uint8), BOXES[:1], spec_for("RGB"))
    with pytest.raises(UserError, match="uint8"):
        reference_crop_resize_normalize(frame.astype(np.float32), BOXES[:1], spec_for("RGB"))
    with pytest.raises(ValueError, match="empty face box"):
        reference_crop_resize_normalize(frame, [(10, 10, 10, 20)], spec_for("RGB"))


def test_kernel_params():
    p = kernel_params((480, 640, 3), spec_for("RGB"))
    assert (p.in_channels, p.out_channels, p.color_mode, p.nhwc) == (3, 3, 1, False)
    assert kernel_params((480, 640), spec_for("GRAY")).out_channels == 1
    g3 = kernel_params((480, 640, 3), spec_for("GRAY", channels=3))
    assert g3.color_mode == 2 and g3.out_channels == 3 and list(g3.mean) == [0.5] * 3


def test_kernel_source_matches_its_launch():
    src = kernel_source()
    m = re.search(r"__global__ void crop_resize_normalize\((.*?)\)\s*\{", src, re.S)
    assert m, "kernel entry point missing"
    params = [p for p in re.sub(r"//[^\n]*", "", m.group(1)).split(",") if p.strip()]
    import inspect

    from edgepose.jetson.gpu_preprocess import GpuPreprocessor

    launch = inspect.getsource(GpuPreprocessor.launch)
    call = launch[launch.index("self.kernel("):launch.index("block=")]
    args = [a for a in call[len("self.kernel("):].split(",") if a.strip()]
    assert len(params) == len(args) == 16
    for token in ("4899", "9617", "1868", "__fmul_rn", "fill"):
        assert token in src


@pytest.fixture(scope="module")
def cuda_ctx():
    """The device's primary context, pushed for the module; skips without pycuda or a GPU."""
    pytest.importorskip("pycuda")
    try:
        import pycuda.driver as cuda

        cuda.init()
        dev = cuda.Device(0) if cuda.Device.count() > 0 else None
    except Exception as exc:  # no driver / no device
        pytest.skip(f"no CUDA driver for pycuda here (GPU test): {exc}")
    if dev is None:
        pytest.skip("no CUDA device here (GPU test)")
    ctx = dev.retain_primary_context()
    ctx.push()
    yield cuda
    ctx.pop()
    ctx.detach()


def _kernel(cuda, frame, boxes, spec, pre=None):
    """Run GpuPreprocessor on (frame, boxes) and copy the result back."""
    from edgepose.jetson.gpu_preprocess import GpuPreprocessor

    own = pre is None
    pre = pre or GpuPreprocessor(spec)
    p = kernel_params(frame.shape, spec)
    n, S = len(boxes), spec.input_size
    shape = (n, S, S, p.out_channels) if p.nhwc else (n, p.out_channels, S, S)
    got = np.empty(shape, np.float32)
    out = cuda.mem_alloc(max(got.nbytes, 4))
    stream = cuda.Stream()
    try:
        assert pre.run(frame, boxes, int(out), stream) == n
        cuda.memcpy_dtoh_async(got, out, stream)
        stream.synchronize()
    finally:
        out.free()
        if own:
            pre.close()
    return got


@pytest.mark.gpu
def test_kernel_equals_reference_on_gpu(cuda_ctx, face_frame):
    for order, frame in (("RGB", face_frame), ("GRAY", face_frame), ("BGR", face_frame[..., 0].copy())):
        spec = spec_for(order)
        h, w = frame.shape[:2]
        boxes = [(w * 0.3, h * 0.25, w * 0.7, h * 0.75), (-20, -10, w * 0.4, h * 0.4)]
        ref = reference_crop_resize_normalize(frame, boxes, spec)
        got = _kernel(cuda_ctx, frame, boxes, spec)
        assert np.abs(got - ref).max() <= 1e-5, order


@pytest.mark.gpu
def test_kernel_variants_equal_reference_on_gpu(cuda_ctx, face_frame):
    """NHWC, GRAY replicated to 3 channels, out-of-frame fill, and a different input size."""
    h, w = face_frame.shape[:2]
    cases = [
        (spec_for("RGB", layout="NHWC"), face_frame),
        (spec_for("GRAY", channels=3), face_frame),
        (spec_for("BGR", fill=13), face_frame),
        (PreprocessSpec(input_size=112, color_order="RGB", crop=CropPolicy(scale=1.3, shift_y=-0.05)), face_frame),
        (spec_for("RGB"), np.ascontiguousarray(face_frame[:, : w - 3])),  # odd width: row stride 3 * (w - 3)
    ]
    boxes = BOXES + [(w * 0.8, h * 0.8, w + 40, h + 60), (400 + w, 400 + h, 450 + w, 450 + h)]
    for spec, frame in cases:
        ref = reference_crop_resize_normalize(frame, boxes, spec)
        got = _kernel(cuda_ctx, frame, boxes, spec)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-5, (spec, frame.shape)


@pytest.mark.gpu
def test_kernel_buffers_grow_on_gpu(cuda_ctx, face_frame):
    """One preprocessor: more faces than its first affine buffer, then a larger frame."""
    from edgepose.jetson.gpu_preprocess import GpuPreprocessor

    spec = spec_for("RGB")
    rng = np.random.default_rng(3)
    pre = GpuPreprocessor(spec)
    try:
        small = cv2.resize(face_frame, (160, 120))
        xy = rng.uniform(0, 100, (70, 2))
        many = [(x, y, x + rng.uniform(20, 60), y + rng.uniform(20, 60)) for x, y in xy]
        for frame, boxes in ((small, BOXES[:1]), (small, many), (cv2.resize(face_frame, (1280, 960)), many[:5])):
            ref = reference_crop_resize_normalize(frame, boxes, spec)
            got = _kernel(cuda_ctx, frame, boxes, spec, pre=pre)
            assert np.abs(got - ref).max() <= 1e-5
    finally:
        pre.close()


@pytest.mark.gpu
def test_kernel_matches_cpu_preprocessing_on_gpu(cuda_ctx, face_frame):
    """The contract: GPU crops agree with edgepose.preprocess (the path training used)."""
    h, w = face_frame.shape[:2]
    boxes = [(w * 0.3, h * 0.25, w * 0.7, h * 0.75), (-20, -10, w * 0.4, h * 0.4), (w * 0.8, h * 0.8, w + 40, h + 60)]
    for order, channels in (("RGB", 3), ("BGR", 3), ("GRAY", 1)):
        spec = spec_for(order, channels=channels, crop=CropPolicy(scale=1.3, shift_y=-0.05))
        got = _kernel(cuda_ctx, face_frame, boxes, spec)
        assert_natural_agreement(levels(got, preprocess_batch(face_frame, boxes, spec), spec))
