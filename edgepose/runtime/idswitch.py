"""Id switches of the tracker's output, counted without ground truth (real clips have none).

What is counted, frame by frame over the faces a run reports (track id + box):

* **fragmentation** -- an id ends (it was reported up to frame f with box b and is gone) and a
  *new* id starts within ``window`` frames (f < f' <= f + window) on a box that overlaps b
  (IoU >= ``iou``): the same face almost surely got a new number (a track lost through a turn,
  a missed detection longer than ``max_age``, a box that jumped).  Each ended id is paired with
  at most one new id, the best-overlapping one first.
* **swap** -- an id reported on two consecutive frames whose box on the second overlaps another
  id's previous box (IoU >= ``iou``) more than its own previous box: it took over a neighbour's
  face.  Two faces exchanging ids count 2, like MOT's IDSW counts each identity that changes id.

``switches`` = fragmentations + swaps.  Without ground truth this is a proxy: a face that leaves
and a different face entering at the same place within ``window`` frames counts too, and a
face lost for longer than ``window`` frames does not.  ``ids`` (distinct ids) against the faces
visible tells the rest.  Memory is bounded: only the last frame and the ids ended within the
window are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .detection import greedy_matches, iou_matrix

__all__ = ["IdSwitchCounter", "count_id_switches", "format_id_switches"]

#: events kept in the summary (the counts are complete)
MAX_EVENTS = 20


@dataclass
class IdSwitchCounter:
    window: int = 10  # frames after an id ends in which a new id on its box counts as a fragmentation
    iou: float = 0.3
    fragmentations: int = 0
    swaps: int = 0
    events: list = field(default_factory=list)  # [frame, old id, new id, kind]
    _prev: dict = field(default_factory=dict)  # id -> box on the previous frame
    _ended: dict = field(default_factory=dict)  # id -> (last frame, last box)
    _seen: set = field(default_factory=set)
    _last_frame: int | None = None

    def __post_init__(self):
        if self.window < 1 or not 0.0 < self.iou < 1.0:
            raise ValueError("window must be >= 1 and iou in (0, 1)")

    def add(self, frame: int, faces: Iterable) -> None:
        """One frame's faces: ``(track_id, box)`` pairs or objects with ``track_id`` and ``box``."""
        cur: dict[int, np.ndarray] = {}
        for f in faces:
            tid, box = (f.track_id, f.box) if hasattr(f, "track_id") else f
            cur[int(tid)] = np.asarray(box, np.float64)[:4]
        self._swaps(frame, cur)
        for tid, box in self._prev.items():
            if tid not in cur:
                self._ended[tid] = (self._last_frame, box)
        self._ended = {t: v for t, v in self._ended.items() if frame - v[0] <= self.window}
        new = [t for t in cur if t not in self._seen]
        if new and self._ended:
            old = list(self._ended)
            iou = iou_matrix(np.array([self._ended[t][1] for t in old]), np.array([cur[t] for t in new]))
            for oi, ni in greedy_matches(iou, self.iou):
                self.fragmentations += 1
                self._event(frame, old[oi], new[ni], "fragmentation")
                del self._ended[old[oi]]
        self._seen.update(cur)
        self._prev = cur
        self._last_frame = frame

    def _swaps(self, frame: int, cur: dict) -> None:
        both = [t for t in cur if t in self._prev]
        if len(self._prev) < 2 or not both:
            return
        prev_ids = list(self._prev)
        iou = iou_matrix(np.array([cur[t] for t in both]), np.array([self._prev[t] for t in prev_ids]))
        for i, t in enumerate(both):
            own = iou[i, prev_ids.index(t)]
            j = int(np.argmax(iou[i]))
            if prev_ids[j] != t and iou[i, j] >= self.iou and iou[i, j] > own:
                self.swaps += 1
                self._event(frame, prev_ids[j], t, "swap")

    def _event(self, frame: int, old: int, new: int, kind: str) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append([int(frame), int(old), int(new), kind])

    def summary(self) -> dict:
        return {"switches": self.fragmentations + self.swaps, "fragmentations": self.fragmentations,
                "swaps": self.swaps, "ids": len(self._seen), "window_frames": self.window, "iou": self.iou,
                "events": [list(e) for e in self.events]}


def count_id_switches(frames: Iterable[Iterable], window: int = 10, iou: float = 0.3) -> dict:
    """The :class:`IdSwitchCounter` summary of a whole sequence (frame i = the i-th item)."""
    c = IdSwitchCounter(window=window, iou=iou)
    for i, faces in enumerate(frames):
        c.add(i, faces)
    return c.summary()


def format_id_switches(s: dict) -> str:
    """One line for the CLIs' end-of-run summary."""
    return (f"id switches: {s['switches']} ({s['fragmentations']} new id on an ended id's box within "
            f"{s['window_frames']} frames, {s['swaps']} swaps; IoU >= {s['iou']}), {s['ids']} ids")
