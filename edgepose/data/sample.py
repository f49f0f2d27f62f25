"""The :class:`Sample` record every reader yields, and the reader base class.

A reader is an indexable, picklable sequence of samples: it builds a light index (paths and
labels) when constructed and decodes an image only when a sample is requested, so it works
inside ``torch.utils.data.DataLoader`` workers and scales to large datasets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError

__all__ = ["Sample", "Reader", "read_image", "landmark_box", "valid_landmarks"]


@dataclass
class Sample:
    """One face: a frame plus its labels.

    ``image``: BGR uint8 HxWx3 or GRAY uint8 HxW (in-car IR);
    ``R``: 3x3 float64 rotation in the edgepose convention (:mod:`edgepose.geometry`), or None
    for unlabelled frames;
    ``box``: (x1, y1, x2, y2) face box in image pixels, or None (whole frame);
    ``landmarks``: Kx2 float64 image pixels (NaN rows = missing), or None;
    ``source``: a stable id such as ``"aflw2000:image00050"``.
    """

    image: np.ndarray
    R: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)


class Reader:
    """Base class: ``len(reader)``, ``reader[i] -> Sample``, iteration.

    ``get(i, rng)`` lets datasets pass their per-worker random generator to readers whose
    boxes are random by design (the 300W-LP training crop); ``reader[i]`` uses a fresh one.
    """

    name = "reader"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def get(self, index: int, rng: np.random.Generator | None = None) -> Sample:  # pragma: no cover
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} samples")
        return self.get(index)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self.get(i)

    def describe(self) -> dict:
        """A JSON-able description used to fingerprint caches (paths, options, sizes)."""
        return {"reader": self.name, "len": len(self)}


def read_image(path: str | Path, gray: str = "keep") -> np.ndarray:
    """Decode an image file to BGR uint8 (or GRAY uint8 when the file is single-channel and
    ``gray="keep"``; ``gray="bgr"`` replicates it to 3 channels).  Raises DataError when the
    file is missing or not an image."""
    import cv2

    if gray not in ("keep", "bgr"):
        raise DataError(f"gray must be 'keep' or 'bgr', got {gray!r}")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image not found: {p}; check the dataset root / the image column")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"cannot decode image {p}: not an image file or corrupt")
    if img.dtype != np.uint8:
        # 16-bit IR/PNG: scale to 8 bits so every op downstream sees uint8
        img = (img.astype(np.float32) * (255.0 / max(float(img.max()), 1.0))).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 2 and gray == "bgr":
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img


def valid_landmarks(pts: np.ndarray) -> np.ndarray:
    """Boolean mask of usable landmarks: AFLW marks a missing point with x = -1 and a filler y,
    so a point counts only when both coordinates are positive and finite."""
    pts = np.asarray(pts, dtype=np.float64)
    return np.isfinite(pts).all(-1) & (pts[:, 0] > 0) & (pts[:, 1] > 0)


def landmark_box(pts: np.ndarray) -> tuple[float, float, float, float]:
    """Tight box (x_min, y_min, x_max, y_max) of the valid landmarks."""
    pts = np.asarray(pts, dtype=np.float64)
    ok = valid_landmarks(pts)
    if ok.sum() < 2:
        raise DataError("fewer than 2 valid landmarks: cannot build a face box")
    p = pts[ok]
    return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())
