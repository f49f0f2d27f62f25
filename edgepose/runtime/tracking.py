"""IoU tracker with ids and hysteresis, for "detect every N frames, track in between".

* ``update(detections)`` on frames where the detector ran: greedy IoU matching (best pairs
  first) of detections to tracks; unmatched detections start tentative tracks.
* ``predict()`` on frames without detection: every track's box moves by its (damped) velocity.
* Hysteresis: a track is *confirmed* after ``min_hits`` matched detections (so a one-off false
  positive never becomes a face), and is deleted after ``max_age`` consecutive detector runs
  without a match (so one missed detection does not drop or renumber the driver).  ``max_age``
  counts detector runs, not frames, so it means the same whatever ``detect_every`` is.
* ROI mode (``tracker.roi``, :mod:`.frame`): ``refine(track, box)`` puts the box the pose model's box
  head measured on this frame into the track (the next frame's crop starts from it); the frame
  processor counts the frames the model's face-presence score stays low (``low_presence``) and
  whether it ever saw a face there (``seen``).
* Re-identification by place (``reid_age``): a *confirmed* track that was deleted is remembered
  (not reported) for ``reid_age`` more detector runs; a new detection overlapping its last
  detected box (IoU >= ``iou_threshold``) gets the old id back, confirmed at once, instead of a
  new id.  A face the detector misses for a few frames (a turn, a passing occluder: the classroom
  clip lost faces for 2-6 frames, docs/results/pipeline.md) keeps its number; a different face
  taking the same place within that time would inherit it (no appearance model) -- 0 turns it off.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detection import Detection, greedy_matches, iou_matrix

__all__ = ["Track", "IoUTracker"]


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # (4,) float64 x1, y1, x2, y2 (predicted between detections)
    score: float
    landmarks: np.ndarray | None = None
    hits: int = 1  # matched detections so far
    misses: int = 0  # consecutive detector runs without a match
    frames_since_detection: int = 0
    confirmed: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per frame
    det_size: tuple[float, float] = (0.0, 0.0)  # width, height of the last detection
    low_presence: int = 0  # consecutive posed frames with the presence below the threshold (ROI mode)
    seen: bool = False  # the pose model's presence reached the threshold at least once (ROI mode)
    det_box: np.ndarray | None = None  # the last detected box (re-identification compares with it)
    lost_runs: int = 0  # detector runs since the track was deleted (while in the lost pool)

    def __post_init__(self):
        if self.det_size == (0.0, 0.0):
            self.det_size = (float(self.box[2] - self.box[0]), float(self.box[3] - self.box[1]))
        if self.det_box is None:
            self.det_box = np.array(self.box, np.float64)

    def advance(self) -> None:
        """Move the box one frame along its velocity, never shrinking it below half the size
        of the last detection (a noisy velocity must not produce an empty or inverted box)."""
        box = self.box + self.velocity
        w0, h0 = self.det_size
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        w = max(box[2] - box[0], 0.5 * w0, 1.0)
        h = max(box[3] - box[1], 0.5 * h0, 1.0)
        self.box = np.array([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0])

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


class IoUTracker:
    def __init__(self, iou_threshold: float = 0.3, min_hits: int = 2, max_age: int = 3,
                 velocity_smoothing: float = 0.5, predict_motion: bool = True, reid_age: int = 0):
        if not 0.0 < iou_threshold < 1.0:
            raise ValueError("iou_threshold must be in (0, 1)")
        if min_hits < 1 or max_age < 0 or reid_age < 0:
            raise ValueError("min_hits must be >= 1, max_age >= 0 and reid_age >= 0")
        self.iou_threshold = float(iou_threshold)
        self.min_hits = int(min_hits)
        self.max_age = int(max_age)
        self.velocity_smoothing = float(velocity_smoothing)
        self.predict_motion = bool(predict_motion)
        self.reid_age = int(reid_age)
        self.tracks: list[Track] = []
        self.lost: list[Track] = []  # deleted confirmed tracks, kept reid_age detector runs
        self._next_id = 1

    def reset(self, restart_ids: bool = False) -> None:
        """Forget every track; ``restart_ids`` numbers the next tracks from 1 again (a new scene, e.g.
        the next image of a folder; after a reconnect ids go on so old and new faces never share one)."""
        self.tracks.clear()
        self.lost.clear()
        if restart_ids:
            self._next_id = 1

    @property
    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks if t.confirmed]

    def predict(self, moved: dict[int, np.ndarray] | None = None) -> list[Track]:
        """Advance one frame without a detection; returns the confirmed tracks.  ``moved``: boxes
        measured on this frame by image motion (track id -> box, :class:`.motion.MedianFlow`);
        the other tracks move by their velocity."""
        for t in self.tracks:
            t.frames_since_detection += 1
            box = None if moved is None else moved.get(t.track_id)
            if box is not None:
                a = self.velocity_smoothing
                t.velocity = a * t.velocity + (1 - a) * (np.asarray(box, np.float64) - t.box)
                t.box = np.asarray(box, np.float64)
            elif self.predict_motion:
                t.advance()
        return self.confirmed

    def update(self, detections: list[Detection], mover=None) -> list[Track]:
        """Advance one frame with the detector's output; returns the confirmed tracks.  ``mover``
        (boxes -> moved boxes or None each, :meth:`.motion.MedianFlow.move`) carries the tracks
        the detector missed by the image's motion; without it, or where it fails, by velocity."""
        det_boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        # compare against where each track is expected now (one frame further)
        expected = [t.box + (t.velocity if self.predict_motion else 0.0) for t in self.tracks]
        iou = iou_matrix(np.array(expected).reshape(-1, 4), det_boxes)
        pairs = greedy_matches(iou, self.iou_threshold)
        for ti, di in pairs:
            self._match(self.tracks[ti], detections[di])
        matched_t, matched_d = {ti for ti, _ in pairs}, {di for _, di in pairs}
        missed = [t for ti, t in enumerate(self.tracks) if ti not in matched_t]
        moved = mover([t.box for t in missed]) if mover is not None and missed else [None] * len(missed)
        for t, box in zip(missed, moved):
            t.misses += 1
            t.frames_since_detection += 1
            if box is not None:
                t.box = np.asarray(box, np.float64)
            elif self.predict_motion:
                t.advance()
        for t in self.lost:
            t.lost_runs += 1
        self.lost = [t for t in self.lost if t.lost_runs <= self.reid_age]
        if self.reid_age:
            self.lost += [t for t in self.tracks if t.misses > self.max_age and t.confirmed]
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        new = [di for di in range(len(detections)) if di not in matched_d]
        revived = self._revive(detections, new)
        for di in new:
            if di not in revived:
                t = Track(self._next_id, np.asarray(detections[di].box, np.float64), float(detections[di].score),
                          detections[di].landmarks)
                t.confirmed = self.min_hits <= 1
                self._next_id += 1
                self.tracks.append(t)
        return self.confirmed

    def refine(self, t: Track, box) -> None:
        """ROI mode: ``box`` was measured on this frame by the pose model's box head (frame pixels).  It
        becomes the track's box, and the change from the last measured box (a detection or a refinement,
        ``frames_since_detection`` frames ago) updates the velocity, as a detection does in :meth:`_match`."""
        new_box = np.asarray(box, np.float64)
        carried = t.velocity if self.predict_motion else np.zeros(4)
        frames = t.frames_since_detection  # t.box was advanced that many frames past the last measurement
        self._set_measured(t, new_box, carried + (new_box - t.box) / max(frames, 1))
        t.frames_since_detection = 0  # measured now: the next residual spreads over the frames after this one

    def drop(self, track_ids) -> None:
        """Forget these tracks (ROI mode: the pose model saw no face in their crops for too long)."""
        ids = set(track_ids)
        self.tracks = [t for t in self.tracks if t.track_id not in ids]

    def _revive(self, detections: list[Detection], new: list[int]) -> set[int]:
        """Unmatched detections on a lost track's last detected box take that track's id back
        (best overlaps first); returns the detection indices used."""
        if not self.lost or not new:
            return set()
        iou = iou_matrix(np.array([t.det_box for t in self.lost]).reshape(-1, 4),
                         np.array([detections[di].box for di in new], np.float64).reshape(-1, 4))
        pairs = greedy_matches(iou, self.iou_threshold)
        for li, ni in pairs:
            t = self.lost[li]
            d = detections[new[ni]]
            # the old velocity is stale after the gap: start from rest at the new detection
            t.velocity = np.zeros(4)
            t.box = np.asarray(d.box, np.float64)
            t.frames_since_detection = 0
            t.lost_runs = 0
            self._match(t, d)
            self.tracks.append(t)
        used_l = {li for li, _ in pairs}
        self.lost = [t for li, t in enumerate(self.lost) if li not in used_l]
        return {new[ni] for _, ni in pairs}

    def _set_measured(self, t: Track, new_box: np.ndarray, measured_velocity: np.ndarray) -> None:
        """A box measured on this frame (a detection or the ROI box head): it becomes the track's box and the
        velocity follows the measurement, smoothed and clipped."""
        a = self.velocity_smoothing
        t.velocity = a * t.velocity + (1 - a) * measured_velocity
        # a face cannot move or grow by more than a quarter of its size per frame: anything
        # larger is a mismatch or detector noise, not motion
        w, h = new_box[2] - new_box[0], new_box[3] - new_box[1]
        limit = 0.25 * np.array([w, h, w, h])
        t.velocity = np.clip(t.velocity, -limit, limit)
        t.box = new_box

    def _match(self, t: Track, d: Detection) -> None:
        new_box = np.asarray(d.box, np.float64)
        frames = t.frames_since_detection + 1  # frames since this track's last detection
        # t.box is the estimate for the previous frame; the prediction for this frame adds one
        # velocity step, and the residual spread over the elapsed frames corrects the velocity.
        carried = t.velocity if self.predict_motion else np.zeros(4)
        self._set_measured(t, new_box, carried + (new_box - (t.box + carried)) / frames)
        t.det_box = new_box
        t.det_size = (float(new_box[2] - new_box[0]), float(new_box[3] - new_box[1]))
        t.score = float(d.score)
        t.landmarks = d.landmarks
        t.hits += 1
        t.misses = 0
        t.frames_since_detection = 0
        if t.hits >= self.min_hits:
            t.confirmed = True
