"""Face detectors on real images: YuNet (own decoder, checked against cv2.FaceDetectorYN),
UltraFace, Haar fallback, factory and error paths."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.errors import ModelError
from edgepose.runtime.detection import iou_matrix, nms
from edgepose.runtime.detectors import create_detector
from edgepose.runtime.yunet import YuNetDetector, letterbox

AFLW = ["image00050.jpg", "image00251.jpg", "image00430.jpg", "image00475.jpg", "image02420.jpg", "image02545.jpg"]


@pytest.fixture(scope="module")
def yunet640(data_file):
    with YuNetDetector(data_file("detectors/yunet/yunet_s_640_640.onnx")) as det:
        yield det


def _img(data_file, rel):
    img = cv2.imread(str(data_file(rel)), cv2.IMREAD_COLOR)
    assert img is not None, rel
    return img


def _faces_aws(data_root, n=None):
    files = sorted(p for p in (data_root / "faces-aws").iterdir() if p.suffix.lower() == ".jpg")[:n]
    if not files:
        pytest.skip("faces-aws images not found")
    return files


def test_yunet_one_face_per_aflw_image(yunet640, data_file):
    for name in AFLW:
        img = _img(data_file, f"aflw2000-sample/{name}")
        dets = yunet640.detect(img)
        assert len(dets) == 1, (name, [d.score for d in dets])
        d = dets[0]
        assert d.score > 0.6 and d.landmarks.shape == (5, 2)
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= img.shape[1] + 5 and 0 <= y1 < y2 <= img.shape[0] + 5
        # landmarks sit inside (or very near) the face box
        assert ((d.landmarks[:, 0] > x1 - 10) & (d.landmarks[:, 0] < x2 + 10)).all()


def test_yunet_faces_aws_and_multi_face(yunet640, data_root, data_file):
    for f in _faces_aws(data_root):
        assert len(yunet640.detect(cv2.imread(str(f)))) == 1, f.name
    assert len(yunet640.detect(_img(data_file, "videos/multi_face.jpg"))) == 5
    assert len(yunet640.detect(_img(data_file, "videos/single_face.jpg"))) == 1


@pytest.mark.parametrize("rel", ["aflw2000-sample/image00251.jpg", "videos/multi_face.jpg", "videos/single_face.jpg"])
def test_yunet_decoder_matches_opencv_facedetectoryn(yunet640, data_file, rel):
    """Same letterboxed network input into OpenCV's decoder and ours: same boxes, scores, landmarks."""
    model = data_file("detectors/yunet/yunet_s_640_640.onnx")
    img = _img(data_file, rel)
    h, w = img.shape[:2]
    scale = min(640 / w, 640 / h)
    ref = cv2.FaceDetectorYN.create(str(model), "", (640, 640), 0.6, 0.3, 5000)
    _, faces = ref.detect(letterbox(img, 640, 640, scale))
    faces = np.zeros((0, 15)) if faces is None else faces
    ours = yunet640.detect(img)
    assert len(ours) == len(faces) > 0
    ref_boxes = np.column_stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]]) / scale
    our_boxes = np.array([d.box for d in ours])
    iou = iou_matrix(our_boxes, ref_boxes)
    match = iou.argmax(1)
    assert (iou.max(1) > 0.98).all()
    for d, j in zip(ours, match):
        assert abs(d.score - faces[j, 14]) < 1e-3
        np.testing.assert_allclose(d.landmarks, faces[j, 4:14].reshape(5, 2) / scale, atol=1.0)


def test_yunet_dynamic_and_320_and_gray(data_file):
    img = _img(data_file, "videos/multi_face.jpg")
    with YuNetDetector(data_file("detectors/yunet/yunet_s_dynamic.onnx"), input_size=640) as dyn:
        x, _ = dyn.prepare(img)
        assert x.shape[2] % 32 == 0 and x.shape[3] % 32 == 0 and max(x.shape[2:]) <= 640 + 31
        assert len(dyn.detect(img)) == 5
    with YuNetDetector(data_file("detectors/yunet/yunet_s_320_320.onnx")) as small:
        face = _img(data_file, "aflw2000-sample/image00050.jpg")
        assert len(small.detect(face)) == 1
        gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)  # IR / GRAY8 frames
        assert len(small.detect(gray)) == 1


def test_ultraface_one_face_per_aflw_image(data_file):
    with create_detector("ultraface", data_file("detectors/ultraface/version-RFB-320.onnx")) as det:
        for name in AFLW:
            img = _img(data_file, f"aflw2000-sample/{name}")
            dets = det.detect(img)
            assert len(dets) == 1 and dets[0].score > 0.9, name
            assert dets[0].landmarks is None


def test_detectors_agree_on_face_location(data_file, yunet640):
    img = _img(data_file, "aflw2000-sample/image00050.jpg")
    y = yunet640.detect(img)[0]
    with create_detector("ultraface", data_file("detectors/ultraface/version-RFB-320.onnx")) as uf:
        u = uf.detect(img)[0]
    h = create_detector("haar").detect(img)
    assert len(h) >= 1
    for other in (u, h[0]):  # centres within a third of the face size of YuNet's
        dist = np.hypot(*(np.subtract(other.center, y.center)))
        assert dist < y.width / 3


def test_no_face_frame_gives_no_detection(yunet640):
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (9, 9), 3)
    assert yunet640.detect(noise) == []
    assert yunet640.detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_factory_falls_back_to_haar_without_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path))
    det = create_detector("yunet")
    assert det.name == "haar"
    assert "falling back" in caplog.text


def test_factory_errors(tmp_path, data_file):
    with pytest.raises(ModelError, match="not found"):
        create_detector("yunet", tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="unknown face detector"):
        create_detector("retinaface")
    with pytest.raises(ModelError, match="fixed 640x640"):
        create_detector("yunet", data_file("detectors/yunet/yunet_s_640_640.onnx"), input_size=320)
    with pytest.raises(ModelError, match="YuNet outputs"):
        create_detector("yunet", data_file("detectors/ultraface/version-RFB-320.onnx"))


def test_nms_keeps_best_and_separates_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    keep = nms(boxes, [0.8, 0.9, 0.7], 0.3)
    assert list(keep) == [1, 2]
    assert list(nms(boxes, [0.8, 0.9, 0.7], 0.3, top_k=1)) == [1]
    assert len(nms(np.zeros((0, 4)), [], 0.3)) == 0


# -- duplicates of one head are merged whatever the detector ------------------------------------------
UTK_DUPLICATES = ["10_0_0_20170104013211746.jpg.chip.jpg", "10_0_0_20170110220654150.jpg.chip.jpg",
                  "12_0_3_20170104225715968.jpg.chip.jpg"]


def test_merge_overlaps_removes_overlapping_and_nested_boxes():
    from edgepose.runtime.detection import Detection, merge_overlaps

    face = Detection((10, 10, 110, 110), 0.6)
    shifted = Detection((15, 12, 115, 112), 0.5)  # IoU 0.86 with face
    nested = Detection((40, 60, 80, 100), 0.9)  # inside the face (mouth window): IoU 0.16, but the same head
    other = Detection((200, 10, 300, 110), 0.4)  # another face
    out = merge_overlaps([face, shifted, nested, other], 0.3)
    # the enclosing face box is kept, with the nested window's better score and rank
    assert [d.box for d in out] == [face.box, other.box] and out[0].score == 0.9
    assert merge_overlaps([face, other, shifted], None) == [face, shifted, other]  # sort only
    side_by_side = [Detection((0, 0, 100, 100), 0.9), Detection((60, 0, 160, 100), 0.8)]  # IoU 0.25, not nested
    assert merge_overlaps(side_by_side, 0.3) == side_by_side


@pytest.mark.parametrize("name", UTK_DUPLICATES)
def test_haar_gives_one_box_per_head(data_file, name):
    from edgepose.runtime.haar import HaarDetector

    img = _img(data_file, f"faces-utkface/crop_part1/{name}")
    raw = HaarDetector(nms_threshold=None).detect(img)
    assert len(raw) == 2  # OpenCV's own grouping leaves a second, nested box on this head
    merged = create_detector("haar").detect(img)
    assert len(merged) == 1 and merged[0].width > 0.6 * img.shape[1]  # the whole face, not the nested window


def test_frame_processor_merges_duplicates_of_any_detector(data_file):
    """A detector without NMS (Haar with NMS off) still gives one track per head."""
    from edgepose.runtime.frame import FrameProcessor, build_config
    from edgepose.runtime.haar import HaarDetector

    img = _img(data_file, f"faces-utkface/crop_part1/{UTK_DUPLICATES[0]}")
    cfg = build_config(overrides=["tracker.min_hits=1"])
    with FrameProcessor(None, HaarDetector(nms_threshold=None), cfg) as proc:
        for i in range(3):
            result = proc.process(img, i * 33_000_000)
            assert len(result.faces) == 1, [f.box for f in result.faces]


def test_best_box_is_the_highest_scoring_detection_as_floats():
    from edgepose.runtime.detection import Detection, best_box

    assert best_box([]) is None
    box = best_box([Detection((1, 2, 3, 4), 0.4), Detection((10, 20, 30, 40), 0.9), Detection((5, 6, 7, 8), 0.7)])
    assert box == (10.0, 20.0, 30.0, 40.0) and all(isinstance(v, float) for v in box)
