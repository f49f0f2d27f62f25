"""OpenCV's bundled Haar cascade: the zero-download fallback detector.

Frontal faces only, no landmarks, weaker than YuNet on turned heads; use it when no ONNX
detector is available (``edgepose models fetch yunet`` fixes that).  The score is the
cascade's level weight squashed to (0, 1) with a logistic, so thresholds stay comparable
in spirit with the CNN detectors (it is not a calibrated probability).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import DependencyError, ModelError
from .detection import Detection, merge_overlaps

__all__ = ["HaarDetector", "default_cascade_path"]


def default_cascade_path() -> Path:
    root = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not root:
        raise DependencyError("this OpenCV build ships no Haar cascades (OpenCV 5 removed them); "
                              "install opencv-python-headless<5 or use `edgepose models fetch yunet`")
    return Path(root) / "haarcascade_frontalface_default.xml"


class HaarDetector:
    name = "haar"

    def __init__(self, model_path: str | os.PathLike | None = None, score_threshold: float = 0.0,
                 nms_threshold: float | None = 0.3, input_size: int | None = 640, min_size_frac: float = 0.05,
                 scale_factor: float = 1.1, min_neighbors: int = 5, **_ignored):
        self.model_path = Path(model_path) if model_path else default_cascade_path()
        if not self.model_path.exists():
            raise ModelError(f"Haar cascade not found: {self.model_path}")
        self.cascade = cv2.CascadeClassifier(str(self.model_path))
        if self.cascade.empty():
            raise ModelError(f"OpenCV cannot read the Haar cascade {self.model_path}")
        self.score_threshold = float(score_threshold)
        # OpenCV groups overlapping windows (min_neighbors), yet one head can still come out as
        # two boxes (the face and a mouth or eye window nested in it, each given its own pose): merged here
        self.nms_threshold = None if nms_threshold is None else float(nms_threshold)
        self.input_size = input_size  # frames are downscaled so the longest side is at most this
        self.min_size_frac = float(min_size_frac)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4
                                                          else cv2.COLOR_BGR2GRAY)
        h, w = gray.shape[:2]
        scale = min(1.0, self.input_size / max(h, w)) if self.input_size else 1.0
        if scale < 1.0:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(16, int(self.min_size_frac * min(gray.shape[:2])))
        rects, _, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side), outputRejectLevels=True)
        dets = []
        for (x, y, bw, bh), wgt in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            score = float(1.0 / (1.0 + np.exp(-float(wgt))))
            if score >= self.score_threshold:
                dets.append(Detection((x / scale, y / scale, (x + bw) / scale, (y + bh) / scale), score, None))
        return merge_overlaps(dets, self.nms_threshold)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
