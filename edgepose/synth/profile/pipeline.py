"""Photos / folders / videos -> dense fits -> K profiled renders per face -> a chunked cache.

    cfg = ProfileConfig(k=8, size=128, pose_range="pitch=-60:60,yaw=-90:90,roll=-45:45")
    build_cache(["faces/", "drive.mp4"], "cache/profiled", cfg, workers=2)
    reader = ProfiledReader("cache/profiled")          # edgepose.data reader: Samples with labels

Every render is deterministic per (source id, seed, k): its pose, look and noise come from a
generator seeded by the config seed and a CRC of the source id (file path, plus ``@frame`` for
video frames), so a resumed or re-run build reproduces the same pixels.

``pose_mode="shared"`` renders every face at the SAME K poses (drawn once from the seed): the
k-th render of every face then has the identical label, which is what the same-pose sampler
(:mod:`edgepose.synth.profile.sampler`) needs for CLERF positives.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ...errors import DataError, UserError
from ..scene import SceneParams, parse_pose_range, sample_pose

__all__ = ["ProfileConfig", "list_sources", "load_source", "FaceFitter", "profile_face", "source_rng",
           "shared_poses", "IMAGE_EXT", "VIDEO_EXT"]

log = logging.getLogger(__name__)

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
#: the default pose distribution: the 300W-LP span (pitch +-60, yaw +-90), driver-like roll
DEFAULT_POSES = "pitch=-60:60,yaw=-90:90,roll=-45:45"


@dataclass
class ProfileConfig:
    """Everything that decides the pixels and labels of a profiled render (recorded in caches)."""

    k: int = 8                         # renders per face
    size: int = 128                    # output crop size (px)
    ssaa: int = 2                      # supersampling
    pose_range: str = DEFAULT_POSES    # target poses: a named range, 'pitch=a:b,yaw=..,roll=..' or full
    pose_mode: str = "random"          # random: K poses per face; shared: the same K poses for every face
    seed: int = 0
    ir_fraction: float = 0.3           # NIR/grey look
    sun_fraction: float = 0.0          # harsh key light (relit renders only)
    relight_fraction: float = 0.5      # renders relit with the scene's key light
    blur: float = 0.6                  # max optical blur sigma (px), as the synthetic engine
    fill: float = 0.55                 # face box / image side
    mirror_fill: bool = True           # far side textured from the mirror side
    min_presence: float = 0.5          # face-landmark presence threshold
    detector: str = "yunet"            # face detector for whole frames (yunet, ultraface, haar, none)
    detector_model: str | None = None  # its model file (default: `edgepose models fetch` cache)
    video_step: int = 15               # every n-th video frame

    def validate(self) -> "ProfileConfig":
        if self.k < 1:
            raise UserError(f"k (renders per face) must be >= 1, got {self.k}")
        if not 16 <= self.size <= 1024:
            raise UserError(f"size {self.size} out of range: use 16..1024 pixels")
        if self.pose_mode not in ("random", "shared"):
            raise UserError(f"pose_mode must be 'random' or 'shared', got {self.pose_mode!r}")
        parse_pose_range(self.pose_range)
        for name in ("ir_fraction", "sun_fraction", "relight_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.1 <= self.fill <= 1.0:
            raise UserError(f"fill must be in [0.1, 1], got {self.fill}")
        if self.video_step < 1:
            raise UserError(f"video_step must be >= 1, got {self.video_step}")
        return self

    def render_settings(self) -> dict:
        """The settings a cache records (the detector model path is not one: its content is)."""
        d = asdict(self)
        d.pop("detector_model")
        return d


def list_sources(inputs, video_step: int = 15) -> list[str]:
    """Source ids: image files, folders (images, recursively, sorted) and videos (``path@frame``
    every ``video_step`` frames)."""
    out: list[str] = []
    for item in inputs:
        p = Path(item).expanduser()
        if not p.exists():
            raise DataError(f"profiling source not found: {p}; pass image files, folders or videos")
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXT | VIDEO_EXT) if p.is_dir() else [p]
        for f in files:
            ext = f.suffix.lower()
            if ext in IMAGE_EXT:
                out.append(str(f))
            elif ext in VIDEO_EXT:
                cap = cv2.VideoCapture(str(f))
                n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
                cap.release()
                if n <= 0:
                    raise DataError(f"cannot read frames of {f}; is it a valid video?")
                out += [f"{f}@{i}" for i in range(0, n, video_step)]
            elif not p.is_dir():
                raise DataError(f"{f}: not an image or video ({', '.join(sorted(IMAGE_EXT | VIDEO_EXT))})")
    if not out:
        raise DataError(f"no images or videos found in {', '.join(map(str, inputs))}")
    return out


class _Frames:
    """Reads ``path@frame`` ids, keeping the last video open (sequential ids read forward)."""

    def __init__(self):
        self.path, self.cap, self.pos = None, None, -1

    def read(self, path: str, frame: int) -> np.ndarray | None:
        if path != self.path or frame < self.pos:
            if self.cap is not None:
                self.cap.release()
            self.path, self.cap, self.pos = path, cv2.VideoCapture(path), 0
        while self.pos < frame:
            self.cap.grab()
            self.pos += 1
        ok, img = self.cap.read()
        self.pos += 1
        return img if ok else None


_FRAMES = _Frames()


def load_source(source: str) -> np.ndarray | None:
    """The BGR image of a source id (None when it cannot be read)."""
    if "@" in source and Path(source.rsplit("@", 1)[0]).suffix.lower() in VIDEO_EXT:
        path, frame = source.rsplit("@", 1)
        return _FRAMES.read(path, int(frame))
    return cv2.imread(source, cv2.IMREAD_COLOR)


def source_rng(source: str, seed: int) -> np.random.Generator:
    """The generator of one source's renders: (seed, CRC32 of the id) -> same renders every run."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(source.encode())])


def shared_poses(cfg: ProfileConfig) -> np.ndarray:
    """The K target poses every face gets in ``pose_mode="shared"`` (from the seed alone)."""
    rng = np.random.default_rng([int(cfg.seed) & 0xFFFFFFFF, 0x5A3E])
    return np.stack([sample_pose(rng, cfg.pose_range) for _ in range(cfg.k)])


class FaceFitter:
    """Detector (optional) + MediaPipe Face Mesh + rigid fit: ``fitter(image) -> FaceFit | None``."""

    def __init__(self, detector: str = "yunet", detector_model: str | None = None, min_presence: float = 0.5):
        from .facemesh import FaceMesh

        self.mesh = FaceMesh()
        self.min_presence = float(min_presence)
        self.detector = None
        if detector and detector != "none":
            from ...runtime.detectors import create_detector

            self.detector = create_detector(detector, model_path=detector_model)

    def __call__(self, image: np.ndarray, box=None):
        """``box`` (x1, y1, x2, y2): a face box already known (e.g. the default-model build's stored
        detector box), used instead of running the detector."""
        from .fit import fit_pose

        if box is None and self.detector is not None:
            dets = self.detector.detect(image)
            if dets:
                box = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])).box
        m = self.mesh(image, box)  # no detection: the whole image is the face region (tight crops)
        if m is None or m.presence < self.min_presence:
            return None
        return fit_pose(m.points)


def profile_face(image: np.ndarray, fit, cfg: ProfileConfig, source: str, renderer=None,
                 poses: np.ndarray | None = None) -> list:
    """The ``cfg.k`` renders of one fitted face (a list of :class:`ProfileResult`)."""
    from .render import get_profile_renderer

    renderer = renderer or get_profile_renderer(cfg.size, cfg.ssaa)
    rng = source_rng(source, cfg.seed)
    if poses is None and cfg.pose_mode == "shared":
        poses = shared_poses(cfg)
    out = []
    for k in range(cfg.k):
        R = poses[k] if poses is not None else sample_pose(rng, cfg.pose_range)
        scene = SceneParams.sample(rng, ir_fraction=cfg.ir_fraction, sun_fraction=cfg.sun_fraction,
                                   backgrounds=["plain"], blur=cfg.blur)
        relight = bool(rng.uniform() < cfg.relight_fraction)
        res = renderer.render(image, fit, R, scene=scene, relight=relight, key=source, fill=cfg.fill,
                              mirror_fill=cfg.mirror_fill)
        res.source = f"profiled:{source}#{k}"
        out.append(res)
    return out
