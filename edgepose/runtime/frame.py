"""Per-frame logic: detect (every N frames) -> track -> driver -> pose -> perspective -> smooth
-> vehicle frame, with per-stage timings.  The GStreamer pipelines call
``FrameProcessor.process(frame, pts_ns)`` once per decoded frame.

ROI mode (``tracker.roi``, docs/runtime.md "ROI tracking"): with a pose model that outputs a
face-presence probability and a box (:data:`edgepose.metadata.ROI_OUTPUTS`), the box the model
measured on frame t is the track's box on frame t+1 (moved by the track's velocity), the detector
runs when no face is tracked, when a face's presence dropped below ``tracker.presence_threshold``
or every ``detector.every`` frames, and a face whose presence stays low is dropped.  A face the
detector misses is kept while the model still sees it (the detector's misses do not age it).

Order of the pose operations for each face (all rotations in the canonical convention of
:mod:`edgepose.geometry`):

1. ``R_raw``: the model's crop-relative pose (crop policy from the model's metadata);
2. perspective correction by the viewing ray through the crop centre (camera intrinsics);
3. One Euro smoothing on quaternions per track, timed by the frame PTS -> ``R`` / ``euler``;
4. optional vehicle frame: ``R_vehicle = R @ R_vehicle_cam.T`` -> ``R_vehicle`` / ``euler_vehicle``.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import geometry
from ..config import apply_overrides, from_dict, to_dict
from ..errors import SourceError, UserError
from ..preprocess import box_from_crop, crop_boxes
from .camera import VehicleFrame, intrinsics_from_hfov, intrinsics_from_values
from .detection import merge_overlaps
from .driver import DriverSelector
from .motion import MedianFlow
from .settings import RuntimeConfig
from .smoothing import PoseSmoother
from .tracking import IoUTracker, Track

__all__ = ["FaceResult", "FrameResult", "FrameProcessor", "build_config"]

log = logging.getLogger(__name__)
_NAN_R = np.full((3, 3), np.nan)
_NAN_E = np.full(3, np.nan)
#: duplicates of one head are merged whatever the detector (its own NMS may be weaker, or absent)
DEDUP_IOU = 0.5


@dataclass
class FaceResult:
    """One tracked face.  Angles in degrees, ordered (pitch, yaw, roll); NaN when no pose."""

    track_id: int
    box: tuple[float, float, float, float]
    score: float
    R: np.ndarray  # (3,3) camera-frame pose after perspective correction and smoothing
    euler: np.ndarray  # (3,) from R
    R_vehicle: np.ndarray | None = None  # (3,3) vehicle-frame pose (when extrinsics are set)
    euler_vehicle: np.ndarray | None = None
    is_driver: bool = False
    landmarks: np.ndarray | None = None  # (5,2) from the last detection (YuNet)
    R_raw: np.ndarray | None = None  # model output before perspective correction and smoothing
    valid: bool = False  # a finite pose was computed this frame
    presence: float | None = None  # face-presence probability from a pose model with ROI heads (else None)

    @property
    def yaw(self) -> float:
        return float(self.euler[1])

    @property
    def pitch(self) -> float:
        return float(self.euler[0])

    @property
    def roll(self) -> float:
        return float(self.euler[2])

    def to_dict(self) -> dict:
        """The run record's face dict (:mod:`edgepose.runrecord`), with R as 9 numbers."""
        from ..runrecord import face_record

        return face_record(self, flat_matrices=True)


@dataclass
class FrameResult:
    pts_ns: int
    faces: list[FaceResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds: detect, track, pose, smooth
    frame_index: int = 0
    detected: bool = False  # the detector ran on this frame
    width: int = 0
    height: int = 0

    @property
    def driver(self) -> FaceResult | None:
        return next((f for f in self.faces if f.is_driver), None)

    def to_dict(self) -> dict:
        """A run-record frame line (:mod:`edgepose.runrecord`) plus ``detected``; R as 9 numbers."""
        from ..runrecord import frame_record

        rec = frame_record(self.frame_index, self.pts_ns, [], self.timings, detected=self.detected)
        rec["faces"] = [f.to_dict() for f in self.faces]
        return rec


def build_config(config_path=None, overrides: Sequence[str] | None = None, **explicit) -> RuntimeConfig:
    """Defaults <- YAML file <- explicit values (``"section.key": value``) <- ``key=value`` overrides."""
    from ..config import ConfigError, load_config

    try:
        cfg = load_config(RuntimeConfig, config_path)
        data = to_dict(cfg)
        for key, value in explicit.items():
            if value is None:
                continue
            section, name = key.split(".", 1)
            data[section][name] = value
        apply_overrides(data, list(overrides or []))
        return from_dict(RuntimeConfig, data)
    except ConfigError as exc:  # a user mistake: one clear line in the CLI, no traceback
        raise UserError(f"runtime option: {exc}") from None


def _as_frame(frame) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0:
        raise SourceError(f"frames must be non-empty uint8 BGR (HxWx3), BGRA or GRAY8 (HxW) arrays, got "
                          f"{type(frame).__name__} {getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame.reshape(frame.shape[:2])
    if frame.ndim == 3 and frame.shape[2] not in (3, 4):
        raise SourceError(f"frames must have 1, 3 or 4 channels, got {frame.shape[2]}")
    return frame


def pipeline_cpu_threads(device: str | None) -> int | None:
    """Default intra-op threads for the models of the video pipeline on the CPU.

    Half the cores (at least one): GStreamer's decode and encode threads need the rest.  On a
    2-core CPU, one thread ran the pipeline at 69-86 FPS where ONNX Runtime's own default (every
    core) ran 49-58 FPS (docs/results/pipeline.md).  ``None`` (the runtime's default) on GPUs.
    """
    if device and str(device).lower() not in ("cpu", "auto"):
        return None
    return max(1, (os.cpu_count() or 2) // 2)


class FrameProcessor:
    """``process(frame, pts_ns) -> FrameResult``; ``pose_backend`` may be None (detection only)."""

    def __init__(self, pose_backend, detector, cfg: RuntimeConfig | None = None):
        self.cfg = cfg or RuntimeConfig()
        c = self.cfg
        if c.detector.every < 1:
            raise UserError(f"detector.every must be >= 1, got {c.detector.every}")
        if c.driver.pose_for not in ("all", "driver"):
            raise UserError(f"driver.pose_for must be all or driver, got {c.driver.pose_for!r}")
        if not 0.0 < c.tracker.presence_threshold < 1.0:
            raise UserError(f"tracker.presence_threshold must be in (0, 1), got {c.tracker.presence_threshold}")
        if c.tracker.presence_drop_after < 1:
            raise UserError(f"tracker.presence_drop_after must be >= 1, got {c.tracker.presence_drop_after}")
        self.backend = pose_backend
        self.detector = detector
        self.tracker = IoUTracker(c.tracker.iou_threshold, c.tracker.min_hits, c.tracker.max_age,
                                  predict_motion=c.tracker.predict_motion, reid_age=c.tracker.reid_age)
        self.driver = DriverSelector(c.driver.mode, c.driver.roi, c.driver.drive_side, c.driver.min_face_frac,
                                     c.driver.switch_ratio)
        s = c.smoothing
        self.smoother = PoseSmoother(s.min_cutoff, s.beta, s.d_cutoff, s.reset_after_s) if s.enabled else None
        self.vehicle = None
        if c.vehicle.R_vehicle_cam is not None:
            self.vehicle = VehicleFrame(np.asarray(c.vehicle.R_vehicle_cam, np.float64))
        elif c.vehicle.road_pose_deg is not None:
            self.vehicle = VehicleFrame.from_euler(c.vehicle.road_pose_deg)
        # ROI mode needs the presence + box outputs; a model without them runs the classic tracker
        self.roi = bool(c.tracker.roi and pose_backend is not None and getattr(pose_backend, "has_roi", False))
        if c.tracker.roi and not self.roi and pose_backend is not None:  # info: tracker.roi is the default
            log.info("tracker.roi is on but the pose model has no face-presence / box outputs (build them with "
                     "`edgepose models build --stage roi-heads`): detector + IoU tracker as before")
        # the model's box replaces the optical flow in ROI mode (its cost is what ROI mode saves)
        self.flow = MedianFlow() if c.tracker.flow and not self.roi else None
        self._K_cache: tuple[tuple[int, int], np.ndarray] | None = None
        self.frame_index = 0
        self._last_detect = None

    # -- construction from options -------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: RuntimeConfig) -> "FrameProcessor":
        from .backend import load_backend
        from .detectors import create_detector

        d = cfg.detector
        threads = cfg.pose.threads if cfg.pose.threads is not None else pipeline_cpu_threads(cfg.pose.device)
        backend = None
        if cfg.pose.model:
            backend = load_backend(cfg.pose.model, device=cfg.pose.device, providers=cfg.pose.providers,
                                   intra_op_threads=threads, on_nan=cfg.pose.on_nan,
                                   gpu_preprocess=cfg.pose.gpu_preprocess)
        try:
            kw = {} if d.input_size is None else {"input_size": d.input_size}
            extra = {} if d.name.lower().startswith("haar") else {
                "device": cfg.pose.device, "intra_op_threads": threads}
            detector = create_detector(d.name, d.model, score_threshold=d.score_threshold,
                                       nms_threshold=d.nms_threshold, **kw, **extra)
        except BaseException:
            if backend is not None:
                backend.close()
            raise
        return cls(backend, detector, cfg)

    @classmethod
    def from_options(cls, model=None, detector: str = "yunet", detector_model=None, detector_size=None,
                     detect_every: int | None = None, device: str | None = None, threads: int | None = None,
                     overrides: Sequence[str] | None = None, config=None) -> "FrameProcessor":
        """The ``edgepose run`` entry point: command-line options, then ``--set key=value``."""
        cfg = build_config(config, overrides, **{
            "pose.model": str(model) if model else None, "detector.name": detector,
            "detector.model": str(detector_model) if detector_model else None,
            "detector.input_size": detector_size, "detector.every": detect_every,
            "pose.device": device, "pose.threads": threads})
        return cls.from_config(cfg)

    def close(self) -> None:
        for obj in (self.backend, self.detector):
            close = getattr(obj, "close", None)
            if callable(close):
                close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reset(self) -> None:
        """Forget all tracks and filters (e.g. after a source reconnect)."""
        self.tracker.reset()
        if self.smoother:
            self.smoother.filters.clear()
        self.driver.driver_id = None
        self._last_detect = None

    def new_scene(self) -> None:
        """The next frame is unrelated to the last (the next image of a folder): forget tracks, filters,
        the driver and the motion history, and number the faces from 1 again."""
        self.reset()
        self.tracker.reset(restart_ids=True)
        if self.flow is not None:
            self.flow.reset()

    # -- per frame -----------------------------------------------------------------------------
    def intrinsics(self, width: int, height: int) -> np.ndarray:
        if self._K_cache is None or self._K_cache[0] != (width, height):
            cam = self.cfg.camera
            K = (intrinsics_from_values(cam.intrinsics) if cam.intrinsics
                 else intrinsics_from_hfov(width, height, cam.hfov_deg))
            self._K_cache = ((width, height), K)
        return self._K_cache[1]

    def _should_detect(self) -> bool:
        c = self.cfg.detector
        if self._last_detect is None or self.frame_index - self._last_detect >= c.every:
            return True
        if self.roi:
            # the model measures every tracked face on every frame: the detector is needed only to acquire
            # a face, or to re-acquire one whose crop the model no longer sees a face in
            confirmed = self.tracker.confirmed
            return (c.redetect_when_empty and not confirmed) or any(t.low_presence > 0 for t in confirmed)
        # while no face is confirmed, or a confirmed face was missed by the last detector run (its
        # box is only a prediction now), detect on every frame: a face is (re)acquired at once and
        # a lost one is not carried on a stale box for every x max_age frames
        return c.redetect_when_empty and (not self.tracker.confirmed
                                          or any(t.misses > 0 for t in self.tracker.confirmed))

    def process(self, frame, pts_ns: int) -> FrameResult:
        frame = _as_frame(frame)
        h, w = frame.shape[:2]
        timings = {"detect": 0.0, "track": 0.0, "pose": 0.0, "smooth": 0.0}
        detected = self._should_detect()

        t0 = time.perf_counter()
        dets = merge_overlaps(self.detector.detect(frame), DEDUP_IOU) if detected else None
        t1 = time.perf_counter()
        if self.flow is not None:
            self.flow.push(frame)
        if detected:
            self._last_detect = self.frame_index
            tracks = self.tracker.update(dets, self.flow.move if self.flow is not None else None)
        else:
            moved = None
            if self.flow is not None:
                live = self.tracker.tracks
                moved = {t.track_id: b for t, b in zip(live, self.flow.move([t.box for t in live])) if b is not None}
            tracks = self.tracker.predict(moved)
        driver_id = self.driver.select(tracks, w, h)
        t2 = time.perf_counter()
        timings["detect"] = (t1 - t0) * 1e3 if detected else 0.0
        timings["track"] = (t2 - t1) * 1e3

        faces = [FaceResult(t.track_id, tuple(float(v) for v in t.box), t.score, _NAN_R.copy(), _NAN_E.copy(),
                            is_driver=t.track_id == driver_id, landmarks=t.landmarks) for t in tracks]
        posed, measured = self._pose(frame, tracks, faces, w, h, timings)
        if self.roi:
            self._follow(tracks, faces, measured, timings)
        self._smooth(posed, faces, pts_ns, timings)
        if self.roi:  # a box the model has never seen a face in is the detector's false alarm: not reported
            faces = [f for f, t in zip(faces, tracks) if t.seen or f.presence is None]

        result = FrameResult(int(pts_ns), faces, timings, self.frame_index, detected, w, h)
        self.frame_index += 1
        return result

    def _pose(self, frame, tracks: list[Track], faces: list[FaceResult], w: int, h: int,
              timings) -> tuple[list[int], dict[int, np.ndarray]]:
        """Run the pose model on the selected faces; returns the indices that got a valid pose and, in ROI
        mode, the box the model measured for each posed face (face index -> frame pixels)."""
        measured: dict[int, np.ndarray] = {}
        if self.backend is None or not faces:
            return [], measured
        t0 = time.perf_counter()
        idx = [i for i, f in enumerate(faces) if (self.cfg.driver.pose_for == "all" or f.is_driver)
               and f.box[2] > f.box[0] and f.box[3] > f.box[1]]
        idx = sorted(idx, key=lambda i: -tracks[i].area)[: self.cfg.pose.max_faces]
        out = self.backend.predict(frame, [faces[i].box for i in idx]) if idx else None
        valid = []
        if out is not None:
            K = self.intrinsics(w, h) if self.cfg.camera.perspective_correction else None
            # the square crop regions the model saw: its box is relative to them, and their centres are
            # the perspective correction's rays
            regions = crop_boxes([faces[i].box for i in idx], self.backend.meta.preprocess.crop)
            for j, i in enumerate(idx):
                if self.roi:  # the model's view of its crop: presence, and the box in frame pixels
                    faces[i].presence = float(out["presence"][j])
                    measured[i] = box_from_crop(out["box"][j], regions[j])
                if not out["valid"][j]:
                    continue
                R_raw = out["R"][j].astype(np.float64)
                R = R_raw
                if K is not None:
                    R = geometry.perspective_correction(R_raw, K, (float(regions[j][0]), float(regions[j][1])))
                faces[i].R_raw, faces[i].R, faces[i].valid = R_raw, R, True
                valid.append(i)
        timings["pose"] = (time.perf_counter() - t0) * 1e3
        return valid, measured

    def _follow(self, tracks: list[Track], faces: list[FaceResult], measured: dict[int, np.ndarray],
                timings) -> None:
        """ROI mode, after the pose: each posed face's presence and measured box go into its track.  A face
        the model sees keeps its track (a detector miss does not age it) and its measured box becomes the
        reported box and the next frame's crop; one it does not see asks for the detector on the next frame,
        and is dropped after ``tracker.presence_drop_after`` such frames in a row.  A track whose presence never
        reached the threshold is not reported at all (:meth:`process`): a detector's false box on a poster or a
        headrest would otherwise be confirmed, dropped and re-detected over and over."""
        t0 = time.perf_counter()
        tc = self.cfg.tracker
        drop = []
        for i, f in enumerate(faces):
            t = tracks[i]
            if f.presence is None:  # not posed this frame (pose_for=driver, max_faces): as without ROI
                continue
            box = measured.get(i)
            if f.presence >= tc.presence_threshold and box is not None and np.isfinite(box).all() \
                    and box[2] > box[0] and box[3] > box[1]:
                t.low_presence = 0
                t.misses = 0
                t.seen = True
                if t.frames_since_detection > 0:  # a detection on this frame is kept as it is: it is the target
                    self.tracker.refine(t, box)
                    f.box = tuple(float(v) for v in box)
            else:
                t.low_presence += 1
                if t.low_presence >= tc.presence_drop_after:
                    drop.append(t.track_id)
        if drop:
            self.tracker.drop(drop)
        timings["track"] = timings.get("track", 0.0) + (time.perf_counter() - t0) * 1e3

    def _smooth(self, posed: list[int], faces: list[FaceResult], pts_ns: int, timings) -> None:
        t0 = time.perf_counter()
        t_s = pts_ns * 1e-9
        for i in posed:
            f = faces[i]
            if self.smoother is not None:
                f.R = self.smoother(f.track_id, f.R, t_s)
            f.euler = geometry.matrix_to_euler(f.R)
            if self.vehicle is not None:
                f.R_vehicle = self.vehicle.apply(f.R)
                f.euler_vehicle = geometry.matrix_to_euler(f.R_vehicle)
        if self.smoother is not None:
            self.smoother.retain(t.track_id for t in self.tracker.tracks)
        timings["smooth"] = (time.perf_counter() - t0) * 1e3
