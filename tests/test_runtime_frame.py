"""FrameProcessor on real video frames: detect-every-N + tracking, GRAY8, zero/many faces,
batched pose, perspective correction, vehicle frame, options and error paths."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose import geometry
from edgepose.errors import SourceError, UserError
from edgepose.runtime.backend import load_backend
from edgepose.runtime.camera import VehicleFrame, intrinsics_from_hfov
from edgepose.runtime.frame import FrameProcessor, build_config
from edgepose.runtime.settings import RuntimeConfig
from edgepose.runtime.yunet import YuNetDetector

from runtime_fixture_model import export_fixture_model
from spawn_helpers import video_frames

FPS_NS = 33_333_333


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory):
    path, _ = export_fixture_model(tmp_path_factory.mktemp("frame_models"), "frame_fixture", input_size=64)
    return path


@pytest.fixture(scope="module")
def yunet_path(data_file):
    return data_file("detectors/yunet/yunet_s_640_640.onnx")


def _processor(pose_model, yunet_path, **sections):
    cfg = RuntimeConfig()
    for key, value in sections.items():
        sec, name = key.split("__")
        setattr(getattr(cfg, sec), name, value)
    return FrameProcessor(load_backend(pose_model), YuNetDetector(yunet_path), cfg)


class CountingBackend:
    """Wraps a real backend and counts calls (to check batching)."""

    def __init__(self, backend):
        self.inner, self.meta, self.calls = backend, backend.meta, []

    def predict(self, frame, boxes):
        self.calls.append(len(boxes))
        return self.inner.predict(frame, boxes)

    def close(self):
        self.inner.close()


def test_single_face_video_detect_every_3(pose_model, yunet_path, data_file):
    frames = video_frames(data_file("videos/single_face.mp4"), 24)
    with _processor(pose_model, yunet_path, detector__every=3) as proc:
        results = [proc.process(f, i * FPS_NS) for i, f in enumerate(frames)]
    # frame 0 creates a tentative track, frame 1 confirms it (re-detect while empty), then every 3rd
    assert [r.detected for r in results[:8]] == [True, True, False, False, True, False, False, True]
    assert results[0].faces == []
    ids = {f.track_id for r in results[1:] for f in r.faces}
    assert ids == {1} and all(len(r.faces) == 1 for r in results[1:])
    for r in results[1:]:
        face = r.faces[0]
        assert face.is_driver and face.valid and r.driver is face
        assert geometry.is_rotation(face.R, atol=1e-5)
        np.testing.assert_allclose(face.euler, geometry.matrix_to_euler(face.R), atol=1e-6)
        assert set(r.timings) == {"detect", "track", "pose", "smooth"} and all(v >= 0 for v in r.timings.values())
        assert r.pts_ns == r.frame_index * FPS_NS
    assert all(r.timings["detect"] == 0.0 for r in results if not r.detected)
    d = results[5].to_dict()
    assert d["faces"][0]["track_id"] == 1 and len(d["faces"][0]["R"]) == 9


def test_gray8video_frames(pose_model, yunet_path, data_file):
    frames = video_frames(data_file("videos/single_face.mp4"), 4)
    with _processor(pose_model, yunet_path) as proc:
        for i, f in enumerate(frames):
            gray = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
            r = proc.process(gray if i % 2 else gray[..., None], i * FPS_NS)  # HxW and HxWx1
        assert len(r.faces) == 1 and r.faces[0].valid


def test_no_face_video(pose_model, yunet_path, data_file):
    with _processor(pose_model, yunet_path, detector__every=2) as proc:
        for i, f in enumerate(video_frames(data_file("videos/no_face.mp4"), 8)):
            r = proc.process(f, i * FPS_NS)
            assert r.faces == [] and r.detected  # nothing confirmed -> keeps looking every frame
            assert r.driver is None


def test_many_faces_batched_pose(pose_model, yunet_path, data_file):
    img = cv2.imread(str(data_file("videos/multi_face.jpg")))
    backend = CountingBackend(load_backend(pose_model))
    with FrameProcessor(backend, YuNetDetector(yunet_path), RuntimeConfig()) as proc:
        proc.process(img, 0)
        r = proc.process(img, FPS_NS)
    assert len(r.faces) == 5 and all(f.valid for f in r.faces)
    assert backend.calls == [5]  # one batched call for all five faces
    assert sum(f.is_driver for f in r.faces) == 1
    driver = r.driver
    assert driver.box[2] - driver.box[0] == max(f.box[2] - f.box[0] for f in r.faces) or \
        (driver.box[2] - driver.box[0]) * (driver.box[3] - driver.box[1]) == \
        max((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in r.faces)
    assert len({f.track_id for f in r.faces}) == 5


def test_pose_for_driver_only_and_max_faces(pose_model, yunet_path, data_file):
    img = cv2.imread(str(data_file("videos/multi_face.jpg")))
    with _processor(pose_model, yunet_path, driver__pose_for="driver") as proc:
        proc.process(img, 0)
        r = proc.process(img, FPS_NS)
    assert [f.valid for f in r.faces].count(True) == 1 and r.driver.valid
    with _processor(pose_model, yunet_path, pose__max_faces=2) as proc:
        proc.process(img, 0)
        assert sum(f.valid for f in proc.process(img, FPS_NS).faces) == 2


def test_perspective_correction_uses_the_crop_ray(pose_model, yunet_path, data_file):
    img = cv2.imread(str(data_file("videos/multi_face.jpg")))
    h, w = img.shape[:2]
    with _processor(pose_model, yunet_path, smoothing__enabled=False, camera__hfov_deg=100.0) as proc:
        proc.process(img, 0)
        r = proc.process(img, FPS_NS)
        spec = proc.backend.meta.preprocess
    K = intrinsics_from_hfov(w, h, 100.0)
    from edgepose.preprocess import crop_box

    for f in r.faces:
        cx, cy, _ = crop_box(f.box, spec.crop)
        ray = np.linalg.solve(K, [cx, cy, 1.0])
        off_axis = np.degrees(np.arccos(ray[2] / np.linalg.norm(ray)))
        # the correction is a rotation by exactly the ray's angle to the optical axis
        assert geometry.geodesic_distance(f.R, f.R_raw) == pytest.approx(off_axis, abs=0.05)
    with _processor(pose_model, yunet_path, smoothing__enabled=False, camera__perspective_correction=False) as proc:
        proc.process(img, 0)
        for f in proc.process(img, FPS_NS).faces:
            np.testing.assert_array_equal(f.R, f.R_raw)


def test_vehicle_frame(pose_model, yunet_path, data_file):
    road = [12.0, -20.0, 3.0]  # camera-frame pose of a driver looking down the road
    vf = VehicleFrame.from_euler(road)
    R_road = geometry.euler_to_matrix(np.array(road))
    np.testing.assert_allclose(vf.apply(R_road), np.eye(3), atol=1e-12)
    # camera-frame form: R3_vehicle_head = R_vehicle_cam . R3_cam_head
    R = geometry.euler_to_matrix(np.array([5.0, 30.0, -4.0]))
    np.testing.assert_allclose(geometry.camera_frame(vf.apply(R)), vf.R_vehicle_cam @ geometry.camera_frame(R),
                               atol=1e-12)
    frames = video_frames(data_file("videos/single_face.mp4"), 3)
    with _processor(pose_model, yunet_path, vehicle__road_pose_deg=road) as proc:
        for i, f in enumerate(frames):
            r = proc.process(f, i * FPS_NS)
    face = r.faces[0]
    np.testing.assert_allclose(face.R_vehicle, face.R @ R_road.T, atol=1e-9)
    np.testing.assert_allclose(face.euler_vehicle, geometry.matrix_to_euler(face.R_vehicle), atol=1e-9)
    assert "yaw_vehicle" in face.to_dict()
    with pytest.raises(UserError, match="rotation"):
        VehicleFrame(np.diag([1.0, 1.0, -1.0]))


def test_detection_only_and_haar(data_file):
    img = cv2.imread(str(data_file("aflw2000-sample/image00050.jpg")))
    cfg = build_config(overrides=["detector.name=haar", "tracker.min_hits=1"])
    with FrameProcessor.from_config(cfg) as proc:
        r = proc.process(img, 0)
    assert len(r.faces) == 1 and not r.faces[0].valid and np.isnan(r.faces[0].euler).all()


def test_from_options_and_config_errors(pose_model, yunet_path):
    with FrameProcessor.from_options(model=pose_model, detector="yunet", detector_model=yunet_path, detect_every=4,
                                     overrides=["smoothing.beta=2.0", "driver.mode=roi"]) as proc:
        assert proc.cfg.detector.every == 4 and proc.cfg.smoothing.beta == 2.0 and proc.driver.mode == "roi"
    with pytest.raises(UserError, match="unknown config key"):
        build_config(overrides=["smoothing.betta=1"])
    with pytest.raises(UserError, match="detector.every"):
        FrameProcessor(None, None, build_config(overrides=["detector.every=0"]))
    with pytest.raises(UserError, match="hfov"):
        intrinsics_from_hfov(640, 480, 0.0)


def test_bad_frames_are_source_errors(pose_model, yunet_path):
    with _processor(pose_model, yunet_path) as proc:
        for bad in (None, np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10, 3), np.float32),
                    np.zeros((10, 10, 2), np.uint8)):
            with pytest.raises(SourceError):
                proc.process(bad, 0)


def test_pipeline_cpu_threads_leave_cores_to_gstreamer(monkeypatch):
    """Default intra-op threads in the pipeline: half the cores on the CPU, the runtime's own on GPUs."""
    import os

    from edgepose.runtime.frame import pipeline_cpu_threads

    for cores, want in ((1, 1), (2, 1), (4, 2), (12, 6), (None, 1)):
        monkeypatch.setattr(os, "cpu_count", lambda c=cores: c)
        assert pipeline_cpu_threads("cpu") == want and pipeline_cpu_threads(None) == want
    assert pipeline_cpu_threads("cuda") is None and pipeline_cpu_threads("tensorrt") is None


def test_face_lost_then_reacquired_with_detect_every_5(yunet_path, data_file):
    """Face -> a cut to footage without faces -> the face again (real video, real YuNet, the tracker):
    the lost face is dropped within max_age frames (detection runs on every frame once it is missed,
    not every 5th), and the returning face is reported again after min_hits frames."""
    face = video_frames(data_file("videos/single_face.mp4"), 40)
    h, w = face[0].shape[:2]
    empty = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in video_frames(data_file("videos/no_face.mp4"), 12)]
    frames = face[:20] + empty + face[20:40]
    cfg = RuntimeConfig()
    cfg.detector.every = 5
    with FrameProcessor(None, YuNetDetector(yunet_path), cfg) as proc:
        results = [proc.process(f, i * FPS_NS) for i, f in enumerate(frames)]
    gap = range(20, 32)
    # before the cut: one face, detection every 5th frame
    assert all(len(r.faces) == 1 for r in results[2:20])
    assert sum(r.detected for r in results[5:20]) <= 4
    # in the gap: the first detector run after the cut misses, then it runs every frame; the face is
    # kept for at most max_age runs, then dropped -- no stale box for the rest of the gap
    first_run = next(i for i in gap if results[i].detected)
    assert first_run - 20 < cfg.detector.every
    assert all(results[i].detected for i in range(first_run, 32))
    assert all(results[i].faces == [] for i in range(first_run + cfg.tracker.max_age, 32))
    # after the cut: detected on every frame until confirmed again, after min_hits frames
    back = next(i for i in range(32, len(results)) if results[i].faces)
    assert back - 32 <= cfg.tracker.min_hits - 1
    assert all(len(r.faces) == 1 for r in results[back:])


def test_flow_moves_boxes_between_detections_closer_than_velocity(data_file):
    """detector.every=5 on a real head turning/moving: the boxes carried between detector runs by
    the image's motion (median flow) overlap the per-frame detection better than velocity
    extrapolation does, and stay close to it."""
    from edgepose.runtime.detection import iou_matrix

    yunet = data_file("detectors/yunet/yunet_s_320_320.onnx")
    frames = video_frames(data_file("videos/head-pose-face-detection-male.mp4"), 60)
    with YuNetDetector(yunet) as det:
        ref = [(det.detect(f) or [None])[0] for f in frames]
    mean_iou = {}
    for flow in (False, True):
        cfg = RuntimeConfig()
        cfg.detector.every, cfg.tracker.flow = 5, flow
        ious = []
        with FrameProcessor(None, YuNetDetector(yunet), cfg) as proc:
            assert (proc.flow is not None) == flow
            for i, f in enumerate(frames):
                r = proc.process(f, i * FPS_NS)
                if not r.detected and r.faces and ref[i] is not None:
                    ious.append(iou_matrix([r.faces[0].box], [ref[i].box])[0, 0])
        assert len(ious) >= 40
        mean_iou[flow] = float(np.mean(ious))
    assert mean_iou[True] > mean_iou[False] and mean_iou[True] > 0.95, mean_iou
