"""Video files as frame sources for unlabelled data (distillation, calibration, pseudo-labels).

Every ``step``-th frame of each file is a sample with ``R = None`` and ``box = None`` (a
detector or the teacher decides where the face is).  The index is built by decoding the file
once (``cv2.VideoCapture`` frame counts are unreliable for VFR / HEVC files); random access then
decodes sequentially from the nearest earlier frame a worker already holds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .sample import Reader, Sample

__all__ = ["VideoReader", "iter_video_frames"]


def _open(path: Path):
    import cv2

    if not path.is_file():
        raise DataError(f"video file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"cannot open video {path}: unsupported or corrupt file (try `ffprobe {path}`)")
    return cap


def iter_video_frames(path: str | Path, step: int = 1, max_frames: int | None = None, gray: str = "keep"):
    """Yield (frame_index, BGR frame) for every ``step``-th decoded frame."""
    import cv2

    p = Path(path)
    cap = _open(p)
    try:
        i = n = 0
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                if gray == "gray" and frame.ndim == 3:
                    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                yield i, frame
                n += 1
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise DataError(f"video {p} has no decodable frames (corrupt file or missing codec)")


class VideoReader(Reader):
    """Frames of one or more video files.  ``gray="gray"`` converts frames to GRAY (IR footage)."""

    name = "video"

    def __init__(self, paths, step: int = 1, max_frames: int | None = None, gray: str = "keep"):
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if step < 1:
            raise DataError(f"video step must be >= 1, got {step}")
        self.paths, self.step, self.gray = [Path(p) for p in paths], int(step), gray
        self.max_frames = max_frames
        self.items: list[tuple[int, int]] = []  # (file index, frame index)
        for fi, p in enumerate(self.paths):
            cap = _open(p)
            count = 0
            try:
                while max_frames is None or count < max_frames * step:
                    if not cap.grab():
                        break
                    if count % step == 0:
                        self.items.append((fi, count))
                    count += 1
            finally:
                cap.release()
            if count == 0:
                raise DataError(f"video {p} has no decodable frames (corrupt file or missing codec)")
        self._cap = None  # per-process decoder state: (file index, next frame index, capture)

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_cap"] = None  # captures cannot cross process boundaries
        return st

    def __len__(self) -> int:
        return len(self.items)

    def _frame(self, fi: int, idx: int) -> np.ndarray:
        import cv2

        if self._cap is None or self._cap[0] != fi or self._cap[1] > idx:
            if self._cap is not None:
                self._cap[2].release()
            self._cap = [fi, 0, _open(self.paths[fi])]
        cap = self._cap[2]
        while self._cap[1] < idx:  # decode forward: exact, unlike seeking in VFR/HEVC streams
            if not cap.grab():
                raise DataError(f"{self.paths[fi]}: frame {idx} could not be decoded")
            self._cap[1] += 1
        ok, frame = cap.read()
        if not ok:
            raise DataError(f"{self.paths[fi]}: frame {idx} could not be decoded")
        self._cap[1] += 1
        if self.gray == "gray" and frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return frame

    def get(self, index: int, rng=None) -> Sample:
        fi, idx = self.items[index]
        return Sample(image=self._frame(fi, idx), R=None, box=None,
                      source=f"video:{self.paths[fi].name}:{idx}")

    def describe(self) -> dict:
        return {"reader": "video", "paths": [str(p) for p in self.paths], "step": self.step,
                "sizes": [p.stat().st_size for p in self.paths], "gray": self.gray, "len": len(self)}
