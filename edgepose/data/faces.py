"""Faces from a team's own images and videos, found by the deployment face detector.

Distillation and INT8 calibration must see the faces the car will see: the same detector, the same
crop policy (docs/data.md, "Crop policy: train as you deploy").  :func:`detect_faces` runs a detector over image files, image
folders and video files once and caches the boxes (keyed by each file's sha256 and the detector
settings); :class:`DetectedFaceReader` then serves them as :class:`edgepose.data.Sample`s (frame +
box, ``R=None``), so every consumer crops them with :mod:`edgepose.preprocess` under its own spec.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..metadata import atomic_write_text, file_sha256
from .sample import Reader, Sample, read_image

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "list_media", "FaceBox", "detect_faces", "DetectedFaceReader",
           "DetectorSettings"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".ts", ".h264", ".h265")


def list_media(sources) -> list[Path]:
    """Image/video files named directly or found (recursively, sorted) in folders."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    files: list[Path] = []
    for src in sources:
        p = Path(src).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                raise DataError(f"folder {p} holds no images ({', '.join(IMAGE_SUFFIXES)}) or videos "
                                f"({', '.join(VIDEO_SUFFIXES)})")
            files += found
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
                raise DataError(f"{p} is neither an image nor a video file (by its suffix); pass image files, "
                                f"videos or folders of them")
            files.append(p)
        else:
            raise DataError(f"calibration/distillation source not found: {p}")
    return files


@dataclass(frozen=True)
class DetectorSettings:
    name: str = "yunet"
    model_path: str | None = None
    score_threshold: float | None = None
    video_step: int = 10  # every N-th frame of a video
    max_frames_per_video: int = 200
    max_faces: int = 1  # per frame, best score first (the driver's face in a cabin camera)
    min_face: int = 24  # px; smaller boxes are too blurry to teach anything
    # Faces that fill the frame (aligned face crops such as UTKFace, close-up studio footage): detect again on
    # the frame padded by half its size on each side, so the detector sees the context a camera frame gives
    # it and draws the same box it would draw in the car. Off by default (older caches keep their boxes).
    pad_large_faces: bool = False

    def key(self) -> dict:
        d = dict(self.__dict__)
        if self.model_path:
            d["model_sha256"] = file_sha256(self.model_path)
        return d


@dataclass(frozen=True)
class FaceBox:
    file: str  # path
    frame: int  # frame index for videos, 0 for images
    box: tuple[float, float, float, float]
    score: float


def _frames(path: Path, st: DetectorSettings):
    if path.suffix.lower() in IMAGE_SUFFIXES:
        yield 0, read_image(path, gray="bgr")
        return
    from .video import iter_video_frames

    yield from iter_video_frames(path, step=st.video_step, max_frames=st.max_frames_per_video)


def detect_faces(sources, settings: DetectorSettings | None = None, cache_dir: str | Path | None = None,
                 progress: bool = True) -> tuple[list[FaceBox], list[dict]]:
    """Run the detector over ``sources``; returns (face boxes, manifest entries per file).

    The manifest lists every file with its sha256 and face count; boxes are cached in
    ``cache_dir`` (default: the edgepose cache) and reused while files and settings are unchanged.
    """
    from tqdm import tqdm

    st = settings or DetectorSettings()
    files = list_media(sources)
    manifest = [{"path": str(f), "sha256": file_sha256(f), "bytes": f.stat().st_size} for f in files]
    key = hashlib.sha256(json.dumps({"files": [m["sha256"] for m in manifest], "detector": st.key()},
                                    sort_keys=True).encode()).hexdigest()[:24]
    if cache_dir is None:
        from edgepose.runtime.fetch import cache_dir as _cache

        cache_dir = _cache() / "faces"
    cache_file = Path(cache_dir) / f"faces-{key}.json"
    if cache_file.is_file():
        try:
            data = json.loads(cache_file.read_text())
            boxes = [FaceBox(b["file"], b["frame"], tuple(b["box"]), b["score"]) for b in data["boxes"]]
            for m in manifest:
                m["faces"] = sum(1 for b in boxes if b.file == m["path"])
            log.info("face boxes from cache %s (%d faces)", cache_file, len(boxes))
            return boxes, manifest
        except (OSError, ValueError, KeyError):
            log.warning("face cache %s unreadable: detecting again", cache_file)

    from edgepose.runtime import create_detector

    detector = create_detector(st.name, model_path=st.model_path, score_threshold=st.score_threshold)
    boxes: list[FaceBox] = []
    try:
        for m, f in zip(manifest, tqdm(files, desc="detecting faces", disable=not progress)):
            n = 0
            for idx, frame in _frames(f, st):
                for x1, y1, x2, y2, score in _detect(detector, frame, st)[: st.max_faces]:
                    if min(x2 - x1, y2 - y1) < st.min_face:
                        continue
                    boxes.append(FaceBox(str(f), int(idx), (x1, y1, x2, y2), score))
                    n += 1
            m["faces"] = n
    finally:
        detector.close()
    if not boxes:
        raise DataError(f"the {st.name} face detector found no face in {len(files)} file(s) "
                        f"({', '.join(str(f) for f in files[:3])}...); check the sources or lower the score threshold")
    atomic_write_text(cache_file, json.dumps({"settings": st.key(), "boxes": [b.__dict__ for b in boxes]}))
    return boxes, manifest


LARGE_FACE = 0.6  # a box wider or taller than this share of the frame's shorter side "fills the frame"


def _detect(detector, frame: np.ndarray, st: DetectorSettings) -> list[tuple[float, float, float, float, float]]:
    """Boxes (x1, y1, x2, y2, score), best first, in ``frame`` pixels (a padded pass can reach past the border)."""
    dets = [(*(float(v) for v in d.box[:4]), float(d.score)) for d in detector.detect(frame)]
    h, w = frame.shape[:2]
    if st.pad_large_faces and (not dets or max(max(d[2] - d[0], d[3] - d[1]) for d in dets) > LARGE_FACE * min(h, w)):
        import cv2

        p = max(h, w) // 2
        padded = cv2.copyMakeBorder(frame, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
        dets = [(d[0] - p, d[1] - p, d[2] - p, d[3] - p, d[4])
                for d in ((*(float(v) for v in d.box[:4]), float(d.score)) for d in detector.detect(padded))]
    return sorted(dets, key=lambda d: -d[4])


class DetectedFaceReader(Reader):
    """Detected faces as Samples (frame + detector box, no label).  Frames are decoded on demand."""

    name = "detected-faces"

    def __init__(self, boxes: list[FaceBox], settings: DetectorSettings | None = None):
        if not boxes:
            raise DataError("no detected faces to read")
        self.boxes = list(boxes)
        self.settings = settings or DetectorSettings()
        self._videos: dict[str, object] = {}

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_videos"] = {}
        return st

    def __len__(self) -> int:
        return len(self.boxes)

    def _frame(self, b: FaceBox) -> np.ndarray:
        p = Path(b.file)
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return read_image(p, gray="bgr")
        from .video import VideoReader

        vr = self._videos.get(b.file)
        if vr is None:
            last = max(x.frame for x in self.boxes if x.file == b.file)
            vr = self._videos[b.file] = VideoReader(p, step=1, max_frames=last + 1)
        return vr._frame(0, b.frame)  # sequential decode from the nearest earlier frame

    def get(self, index: int, rng=None) -> Sample:
        b = self.boxes[index]
        return Sample(image=self._frame(b), R=None, box=b.box, source=f"{Path(b.file).name}:{b.frame}")

    def describe(self) -> dict:
        h = hashlib.sha256(json.dumps([b.__dict__ for b in self.boxes], sort_keys=True).encode()).hexdigest()
        return {"reader": self.name, "boxes_sha256": h, "len": len(self)}
