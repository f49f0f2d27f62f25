"""The DMS input record and its adapters (live ``FrameResult`` and recorded ``run --jsonl``).

One :class:`DmsInput` per video frame: the frame timestamp (seconds, from the buffer PTS - never
wall clock), whether a valid driver face was seen, and the driver's head pose, either as the
canonical camera-frame ``R`` (mapped to the vehicle frame with the camera mount), as ``R_vehicle``
(when the runtime already applied a mount), or as camera-frame yaw/pitch when no matrix exists.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["DmsInput", "from_frame_result", "from_run_record", "read_run_jsonl"]


@dataclass
class DmsInput:
    t: float  # seconds (pts_ns / 1e9)
    face_visible: bool
    R: np.ndarray | None = None  # canonical camera-frame pose of the driver's head
    R_vehicle: np.ndarray | None = None  # canonical vehicle-frame pose, if the runtime made it
    yaw: float | None = None  # camera-frame degrees; used only when R is absent
    pitch: float | None = None
    roll: float | None = None
    score: float | None = None
    track_id: int | None = None
    speed_kmh: float | None = None  # when vehicle signals travel with the frame
    indicator: str | None = None

    @property
    def has_pose(self) -> bool:
        return self.face_visible and (self.R is not None or self.R_vehicle is not None
                                      or (self.yaw is not None and self.pitch is not None))


def _box_area(box) -> float:
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)
    except (TypeError, ValueError):
        return 0.0


def _pick_driver(faces: list, get) -> Any | None:
    """The face flagged ``is_driver``; else the largest box (the runtime normally flags one)."""
    if not faces:
        return None
    flagged = [f for f in faces if get(f, "is_driver")]
    if flagged:
        return flagged[0]
    if all(get(f, "is_driver") is False for f in faces):
        return None  # the runtime decided that none of these faces is the driver
    return max(faces, key=lambda f: _box_area(get(f, "box")))


def _matrix(value) -> np.ndarray | None:
    """3x3 (nested or flat 9) -> array; None when absent or not finite (JSON null = invalid pose)."""
    if value is None:
        return None
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if m.size != 9 or not np.all(np.isfinite(m)):
        return None
    return m.reshape(3, 3)


def from_frame_result(fr) -> DmsInput:
    """Live adapter: ``FrameResult(pts_ns, faces=[FaceResult(track_id, box, score, R, euler,
    R_vehicle, is_driver)])`` from :mod:`edgepose.runtime`."""
    faces = list(getattr(fr, "faces", None) or [])
    face = _pick_driver(faces, lambda f, k: getattr(f, k, None))
    t = float(getattr(fr, "pts_ns")) / 1e9
    if face is None:
        return DmsInput(t=t, face_visible=False)
    if getattr(face, "valid", True) is False:  # detected, but no finite pose this frame
        return DmsInput(t=t, face_visible=True)
    euler = getattr(face, "euler", None)
    e = np.asarray(euler, dtype=np.float64).reshape(-1) if euler is not None else None
    tid = getattr(face, "track_id", None)
    return DmsInput(
        t=t, face_visible=True, R=_matrix(getattr(face, "R", None)), R_vehicle=_matrix(getattr(face, "R_vehicle", None)),
        pitch=float(e[0]) if e is not None and e.size == 3 else None,
        yaw=float(e[1]) if e is not None and e.size == 3 else None,
        roll=float(e[2]) if e is not None and e.size == 3 else None,
        score=_float(getattr(face, "score", None)), track_id=int(tid) if tid is not None else None)


def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _record_time(rec: dict) -> float | None:
    if rec.get("pts_ns") is not None:
        return int(rec["pts_ns"]) / 1e9
    for key in ("t", "time_s", "pts_s", "timestamp"):
        if rec.get(key) is not None:
            return float(rec[key])
    return None


def from_run_record(rec: dict) -> DmsInput | None:
    """Offline adapter for one ``edgepose run --jsonl`` line; ``None`` for non-frame records.

    Accepts per frame ``pts_ns`` (or ``t`` seconds) and ``faces``: a list of objects with
    ``box``, ``score``, ``track_id``, ``is_driver`` and the pose as ``R`` (3x3), ``R_vehicle``,
    or ``yaw``/``pitch``/``roll`` (also nested as ``euler: {pitch, yaw, roll}``), degrees.
    """
    if not isinstance(rec, dict) or rec.get("type") not in (None, "frame"):
        return None
    t = _record_time(rec)
    if t is None or "faces" not in rec:
        return None
    faces = rec.get("faces") or []
    face = _pick_driver(faces, lambda f, k: f.get(k) if isinstance(f, dict) else None)
    if face is None:
        return DmsInput(t=t, face_visible=False)
    if face.get("valid") is False:  # detected, but no finite pose this frame
        return DmsInput(t=t, face_visible=True)
    eul = face.get("euler") if isinstance(face.get("euler"), dict) else face
    if isinstance(face.get("euler"), (list, tuple)) and len(face["euler"]) == 3:
        eul = dict(zip(("pitch", "yaw", "roll"), face["euler"]))
    tid = face.get("track_id")
    return DmsInput(
        t=t, face_visible=True, R=_matrix(face.get("R")), R_vehicle=_matrix(face.get("R_vehicle")),
        yaw=_float(eul.get("yaw")), pitch=_float(eul.get("pitch")), roll=_float(eul.get("roll")),
        score=_float(face.get("score")), track_id=int(tid) if tid is not None else None,
        speed_kmh=_float(rec.get("speed_kmh")), indicator=rec.get("indicator"))


def read_run_jsonl(path: str | Path) -> Iterator[DmsInput]:
    """DmsInputs from a recorded run (skips header/summary lines; bad lines name their number).
    Lines are read by :func:`edgepose.runrecord.read_records` (the record's one owner)."""
    from ..runrecord import read_records

    path = Path(path)
    n_frames = 0
    for lineno, rec in read_records(path):
        try:
            inp = from_run_record(rec)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}:{lineno}: cannot read the frame record ({exc})") from None
        if inp is not None:
            n_frames += 1
            yield inp
    if n_frames == 0:
        raise DataError(f"{path} holds no frame records (lines with pts_ns/t and faces); "
                        "is it an `edgepose run --jsonl` output?")
