"""Box motion between detector runs from the image itself (median flow), for ``detector.every N``.

Extrapolating a box by its past velocity cannot follow a head that starts or stops moving between
two detector runs.  Here each box is moved by the frame: Lucas-Kanade optical flow of a grid of
points inside the box from the previous frame to this one, checked forward-backward (a point
whose backward track misses its start by more than ``fb_max`` pixels is dropped); the box shifts
by the median displacement and scales by the median ratio of pairwise point distances (Kalal et
al., "Forward-Backward Error", ICPR 2010).  Frames are tracked in grey at most ``max_side`` pixels
wide, so the cost is about a millisecond per frame on one CPU core.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MedianFlow"]


class MedianFlow:
    def __init__(self, max_side: int = 320, grid: int = 6, fb_max: float = 1.0, min_points: int = 6):
        self.max_side = int(max_side)
        self.grid = int(grid)
        self.fb_max = float(fb_max)
        self.min_points = int(min_points)
        self._prev: np.ndarray | None = None
        self._cur: np.ndarray | None = None
        self._scale = 1.0
        self._lk = {"winSize": (11, 11), "maxLevel": 2,
                    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}

    def reset(self) -> None:
        self._prev = self._cur = None

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4
                                                          else cv2.COLOR_BGR2GRAY)
        h, w = gray.shape[:2]
        self._scale = min(1.0, self.max_side / max(h, w))
        if self._scale < 1.0:
            gray = cv2.resize(gray, (round(w * self._scale), round(h * self._scale)), interpolation=cv2.INTER_AREA)
        return gray

    def push(self, frame: np.ndarray) -> None:
        """The next frame (call once per frame, detected or not)."""
        self._prev, self._cur = self._cur, self._gray(frame)

    def move(self, boxes: list[np.ndarray]) -> list[np.ndarray | None]:
        """Each box of the previous frame moved to the current one; None for a box that could not
        be tracked (too few reliable points, no previous frame, or a change of frame size)."""
        prev, cur = self._prev, self._cur
        if prev is None or cur is None or prev.shape != cur.shape:
            return [None] * len(boxes)
        return [self._move(prev, cur, np.asarray(b, np.float64)) for b in boxes]

    def _move(self, prev: np.ndarray, gray: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        s = self._scale
        x1, y1, x2, y2 = box * s
        if x2 - x1 < 4 or y2 - y1 < 4:
            return None
        # grid inside the central 80 % of the box (the edges hold background that does not move with the head)
        u = np.linspace(0.1, 0.9, self.grid)
        gx, gy = np.meshgrid(x1 + u * (x2 - x1), y1 + u * (y2 - y1))
        p0 = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32).reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, gray, p0, None, **self._lk)
        if p1 is None:
            return None
        pb, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev, p1, None, **self._lk)
        fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < self.fb_max)
        if ok.sum() < self.min_points:
            return None
        a, b = p0.reshape(-1, 2)[ok].astype(np.float64), p1.reshape(-1, 2)[ok].astype(np.float64)
        shift = np.median(b - a, axis=0)
        i, j = np.triu_indices(len(a), 1)
        da = np.linalg.norm(a[i] - a[j], axis=1)
        db = np.linalg.norm(b[i] - b[j], axis=1)
        keep = da > 1e-6
        ratio = float(np.median(db[keep] / da[keep])) if keep.any() else 1.0
        ratio = float(np.clip(ratio, 0.8, 1.25))  # a head does not grow or shrink by a quarter per frame
        cx, cy = (x1 + x2) / 2 + shift[0], (y1 + y2) / 2 + shift[1]
        hw, hh = (x2 - x1) / 2 * ratio, (y2 - y1) / 2 * ratio
        return np.array([cx - hw, cy - hh, cx + hw, cy + hh]) / s
