"""Runtime options (YAML + ``key=value`` overrides through :mod:`edgepose.config`).

``edgepose run ... --set detector.every=3 --set driver.mode=roi --set camera.hfov_deg=120``
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RuntimeConfig", "DetectorConfig", "TrackerConfig", "DriverConfig", "CameraConfig",
           "SmoothingConfig", "VehicleConfig", "PoseConfig"]


@dataclass
class DetectorConfig:
    name: str = "yunet"  # yunet | centerface | blazeface | ultraface | haar (uncached: fetch.FALLBACK_ORDER)
    model: str | None = None  # ONNX/engine file; None = from the cache (edgepose models fetch), else Haar
    score_threshold: float | None = None  # None = the detector's default (YuNet 0.6, UltraFace 0.7)
    nms_threshold: float | None = None  # None = 0.3
    input_size: int | None = None  # dynamic YuNet: longest side (default 640); fixed files: their own
    every: int = 1  # run the detector every N frames; the tracker carries boxes in between
    # also run it on every frame while no face is confirmed or a confirmed one was just missed,
    # so a face is (re)acquired at once
    redetect_when_empty: bool = True


@dataclass
class TrackerConfig:
    iou_threshold: float = 0.3  # detection <-> track match
    min_hits: int = 2  # detections before a track is reported (suppresses one-off false positives)
    max_age: int = 3  # detector runs without a match before a track is dropped
    # detector runs a dropped (confirmed) track's id is kept for a re-detection on its last box
    # (0 = off): faces turned away for a few frames keep their number (edgepose.runtime.tracking)
    reid_age: int = 10
    predict_motion: bool = True  # move boxes by their velocity on frames without detection
    # with detector.every > 1: move boxes by the image's motion (median optical flow inside each
    # box) on frames without detection, the velocity only where the flow fails
    flow: bool = True
    # ROI mode (docs/runtime.md, "ROI tracking"): with a pose model that has the face-presence + box
    # heads, the next frame's crop comes from the box the model measured on this frame (no optical flow),
    # and the detector runs only every detector.every frames, when no face is tracked, or when a face's
    # presence drops below presence_threshold; a face below it for presence_drop_after posed frames in a
    # row is dropped.  Models without the heads run as before (the log says so).  On by default: on the demo drive
    # it finds the face as often, gives the same DMS events and costs less per frame (docs/results/pipeline.md).
    roi: bool = True
    presence_threshold: float = 0.5
    presence_drop_after: int = 3


@dataclass
class DriverConfig:
    mode: str = "largest"  # largest | roi | none
    drive_side: str = "lhd"  # default ROI for mode=roi with a centre-mounted camera: lhd | rhd
    roi: list[float] | None = None  # [x1, y1, x2, y2] as fractions of the frame (overrides drive_side)
    min_face_frac: float = 0.05  # minimum face width as a fraction of the frame width
    switch_ratio: float = 0.7  # hysteresis: keep the current driver while >= this x the best area
    pose_for: str = "all"  # all | driver: run the pose model on every face or only the driver


@dataclass
class CameraConfig:
    hfov_deg: float = 90.0  # horizontal field of view, used when intrinsics are not given
    intrinsics: list[float] | None = None  # [fx, fy, cx, cy] in pixels from a calibration
    perspective_correction: bool = True  # correct each face by its crop's viewing ray


@dataclass
class SmoothingConfig:
    enabled: bool = True
    min_cutoff: float = 1.0  # Hz; lower = less jitter at rest, more lag
    beta: float = 5.0  # speed coefficient; higher = less lag on fast head turns
    d_cutoff: float = 1.0  # Hz, cutoff of the speed estimate
    reset_after_s: float = 1.0  # restart a face's filter after a gap longer than this


@dataclass
class VehicleConfig:
    # camera -> vehicle rotation, either as the camera-frame pose (pitch, yaw, roll) in degrees of a
    # driver looking straight down the road, or as the 3x3 R_vehicle_cam (camera-frame form,
    # R3_vehicle_head = R_vehicle_cam . R3_cam_head).  Neither: no vehicle-frame output.
    road_pose_deg: list[float] | None = None
    R_vehicle_cam: list[list[float]] | None = None


@dataclass
class PoseConfig:
    model: str | None = None  # .onnx / .pt / .engine with metadata; None = detection only
    device: str = "cpu"  # cpu | cuda | tensorrt | auto
    providers: list[str] | None = None  # explicit onnxruntime execution providers
    threads: int | None = None  # intra-op threads
    on_nan: str = "flag"  # flag | raise
    max_faces: int = 8  # pose for at most this many faces per frame (largest first)
    # TensorRT engines: crop all faces of a frame with the CUDA kernel straight into the engine's
    # input buffer (edgepose.jetson.gpu_preprocess); false = NumPy/OpenCV crops on the CPU
    gpu_preprocess: bool = True


@dataclass
class RuntimeConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    driver: DriverConfig = field(default_factory=DriverConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    vehicle: VehicleConfig = field(default_factory=VehicleConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
