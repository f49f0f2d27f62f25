"""JSON Lines metadata: one record per frame, a summary record at the end.

Each line is written and flushed on its own, so a crash or Ctrl-C never loses the frames already
processed.  Schema (``schema: edgepose.run/1``):

* ``{"type": "header", "schema", "source", "model", "detector", "width", "height", "fps", "platform"}``
* ``{"type": "frame", "frame": int, "pts_ns": int, "faces": [face...], "latency_ms": {stage: ms}}``
  with ``face = {"track_id": int, "box": [x1, y1, x2, y2], "score": float, "yaw", "pitch", "roll": float deg,
  "R": 3x3 nested list, "is_driver": bool, "valid": bool}`` and optional ``"status": [str]`` from frame observers
* ``{"type": "summary", "frames": int, "fps": float, "latency_ms": {stage: {"mean", "p50", "p90", "p99"}}, ...}``
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["JsonlWriter", "SCHEMA", "face_record", "validate_record"]

SCHEMA = "edgepose.run/1"


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None  # JSON has no NaN; null marks an invalid value


def face_record(face) -> dict:
    """FaceResult -> JSON-ready dict (angles from the face's Euler (pitch, yaw, roll))."""
    pitch, yaw, roll = (float(v) for v in face.euler)
    rec = {
        "track_id": int(face.track_id) if face.track_id is not None else -1,
        "box": [round(float(v), 2) for v in face.box[:4]],
        "score": round(float(face.score), 4) if face.score is not None else None,
        "yaw": _finite(round(yaw, 3)), "pitch": _finite(round(pitch, 3)), "roll": _finite(round(roll, 3)),
        "R": [[_finite(round(float(v), 6)) for v in row] for row in face.R],
        "is_driver": bool(getattr(face, "is_driver", False)),
        # False when no finite pose exists this frame (not posed, or the model returned NaN)
        "valid": bool(getattr(face, "valid", True)),
    }
    rv = getattr(face, "R_vehicle", None)
    if rv is not None:
        rec["R_vehicle"] = [[_finite(round(float(v), 6)) for v in row] for row in rv]
    return rec


class JsonlWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            from ..errors import UserError

            raise UserError(f"--jsonl {self.path} is a directory; give a file name such as {self.path}/run.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self._fh.flush()  # line by line: what was processed is on disk

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


_FACE_TYPES = {"track_id": int, "box": list, "yaw": (float, int, type(None)), "pitch": (float, int, type(None)),
               "roll": (float, int, type(None)), "R": list, "is_driver": bool}
_FRAME_TYPES = {"frame": int, "pts_ns": int, "faces": list, "latency_ms": dict}


def validate_record(rec: dict) -> None:
    """Raise ValueError when a frame record misses a key or has a wrong type (used by tests and tools)."""
    if rec.get("type") != "frame":
        return
    for key, tp in _FRAME_TYPES.items():
        if not isinstance(rec.get(key), tp):
            raise ValueError(f"frame record: key {key!r} missing or not {tp}: {rec.get(key)!r}")
    for face in rec["faces"]:
        for key, tp in _FACE_TYPES.items():
            if key not in face or not isinstance(face[key], tp):
                raise ValueError(f"face record: key {key!r} missing or wrong type: {face.get(key)!r}")
        if len(face["box"]) != 4 or len(face["R"]) != 3 or any(len(r) != 3 for r in face["R"]):
            raise ValueError(f"face record: box must have 4 values and R 3x3: {face}")
