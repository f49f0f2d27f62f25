"""Driver selection among the tracked faces.

Modes:

* ``largest``: the largest face (closest to the camera) anywhere in the frame;
* ``roi``: the largest face whose box centre lies in the driver's seat region, given as
  fractions of the frame ``[x1, y1, x2, y2]``.  ``drive_side`` sets a default region for a
  centre-mounted camera (rear-view mirror / centre console) looking rearward: a left-hand-drive
  driver sits on the vehicle's left, which is the **image right** for such a camera, so
  ``lhd`` -> ``[0.4, 0, 1, 1]`` and ``rhd`` -> ``[0, 0, 0.6, 1]``.  A steering-column camera
  sees the driver in the middle: use ``largest`` or an explicit ``roi`` there.

Faces narrower than ``min_face_frac`` of the frame width are never the driver (passengers in
the back seat, faces on posters).  Hysteresis: the current driver keeps the role while it is
still eligible and at least ``switch_ratio`` times the area of the best other candidate, so
two similar faces do not make the role flicker.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import UserError
from .tracking import Track

__all__ = ["DriverSelector", "default_roi"]

_DEFAULT_ROI = {"lhd": (0.4, 0.0, 1.0, 1.0), "rhd": (0.0, 0.0, 0.6, 1.0)}


def default_roi(drive_side: str) -> tuple[float, float, float, float]:
    if drive_side not in _DEFAULT_ROI:
        raise UserError(f"driver.drive_side must be lhd or rhd, got {drive_side!r}")
    return _DEFAULT_ROI[drive_side]


class DriverSelector:
    def __init__(self, mode: str = "largest", roi: Sequence[float] | None = None, drive_side: str = "lhd",
                 min_face_frac: float = 0.05, switch_ratio: float = 0.7):
        if mode not in ("largest", "roi", "none"):
            raise UserError(f"driver.mode must be largest, roi or none, got {mode!r}")
        if mode == "roi":
            roi = tuple(float(v) for v in (roi if roi else default_roi(drive_side)))
            if len(roi) != 4 or not (0 <= roi[0] < roi[2] <= 1 and 0 <= roi[1] < roi[3] <= 1):
                raise UserError(f"driver.roi must be [x1, y1, x2, y2] fractions of the frame with x1 < x2 "
                                f"and y1 < y2, got {list(roi)}")
        self.mode = mode
        self.roi = roi
        self.min_face_frac = float(min_face_frac)
        self.switch_ratio = float(switch_ratio)
        self.driver_id: int | None = None

    def eligible(self, t: Track, width: int, height: int) -> bool:
        w = t.box[2] - t.box[0]
        if w < self.min_face_frac * width:
            return False
        if self.mode == "roi":
            cx = (t.box[0] + t.box[2]) / 2.0 / width
            cy = (t.box[1] + t.box[3]) / 2.0 / height
            x1, y1, x2, y2 = self.roi
            return x1 <= cx <= x2 and y1 <= cy <= y2
        return True

    def select(self, tracks: list[Track], width: int, height: int) -> int | None:
        """Track id of the driver among ``tracks`` (None when nobody qualifies)."""
        if self.mode == "none":
            return None
        cands = [t for t in tracks if self.eligible(t, width, height)]
        if not cands:
            self.driver_id = None
            return None
        best = max(cands, key=lambda t: t.area)
        current = next((t for t in cands if t.track_id == self.driver_id), None)
        if current is not None and current.area >= self.switch_ratio * best.area:
            return current.track_id
        self.driver_id = best.track_id
        return best.track_id
