"""The run record: the JSON Lines file that joins ``edgepose run``, DMS replay and the benchmarks.

This module is its one owner -- schema, writer, reader and validator.  The pipeline
(``edgepose run --jsonl``), ``edgepose dms simulate`` and ``FrameResult.to_dict`` write through
:func:`face_record` / :func:`frame_record`; DMS replay, the pipeline benchmark and the demo's
scoring read through :func:`read_records` / :func:`frame_records`.

One record per line, each written and flushed on its own, so a crash or Ctrl-C never loses the
frames already processed.  Schema ``edgepose.run/1``:

* ``{"type": "header", "schema": "edgepose.run/1", "source", "platform", "width", "height", "fps", ...}``
* ``{"type": "frame", "frame": int, "pts_ns": int, "faces": [face...], "latency_ms": {stage: ms}}``
  and optional ``"status": [str]`` (lines from frame observers); an image folder source (``edgepose run
  photos/``) adds ``"image": str`` (the image's file name) and ``"width"``, ``"height"`` (its size: images
  may differ), and its ``pts_ns`` is the image's position in the listing x 1 s;
  ``face = {"track_id": int (-1 = untracked), "box": [x1, y1, x2, y2], "score": float | null,
  "yaw", "pitch", "roll": float deg | null, "R": 3x3 nested list, "is_driver": bool, "valid": bool}``
  plus, when a camera mount is set, ``"R_vehicle"`` (3x3) and ``"yaw_vehicle"``, ``"pitch_vehicle"``,
  ``"roll_vehicle"``.  ``null`` marks a non-finite value (JSON has no NaN); ``valid: false`` = no
  finite pose this frame.
* ``{"type": "summary", "schema", "frames": int, "fps": float, "latency_ms": {stage: {...}}, ...}``
  (image folders: ``decode_errors``, the images skipped, named in ``undecodable``)

Rounding (one rule for every writer): box 0.01 px, score 1e-4, angles 1e-3 deg, matrices 1e-6.

Versions: the header's ``schema`` names the version.  Adding an optional key keeps the version;
a change a reader must know about bumps it, and :data:`READABLE` lists what this edgepose reads.
Files without a header (the layout ``dms simulate`` wrote before this module: untyped frame lines
with ``pts_ns`` or ``t``), or with a header that names no schema, are read as version 1.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, UserError

__all__ = ["SCHEMA", "READABLE", "RunRecordWriter", "dumps", "face_record", "frame_record", "header_record",
           "read_records", "frame_records", "is_frame", "validate_record"]

FAMILY = "edgepose.run"
VERSION = 1
SCHEMA = f"{FAMILY}/{VERSION}"
READABLE = (1,)  # versions this reader understands


# -- writing ---------------------------------------------------------------------------------------
def _finite(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None  # JSON has no NaN; null marks an invalid value


def _num(x, digits: int) -> float | None:
    x = _finite(x)
    return None if x is None else round(x, digits)


def _matrix(m, flat: bool) -> list:
    rows = [[_num(v, 6) for v in row] for row in m]
    return [v for row in rows for v in row] if flat else rows


def face_record(face, *, flat_matrices: bool = False) -> dict:
    """A face (``runtime.FaceResult`` or any object with its attributes) -> the record's face dict.

    ``flat_matrices`` writes R as 9 numbers instead of 3x3 (kept for ``FaceResult.to_dict``'s
    historical layout; readers accept both)."""
    pitch, yaw, roll = face.euler
    tid = getattr(face, "track_id", None)
    score = getattr(face, "score", None)
    rec = {
        "track_id": int(tid) if tid is not None else -1,
        "box": [round(float(v), 2) for v in face.box[:4]],
        "score": _num(score, 4),
        "yaw": _num(yaw, 3), "pitch": _num(pitch, 3), "roll": _num(roll, 3),
        "R": _matrix(face.R, flat_matrices),
        "is_driver": bool(getattr(face, "is_driver", False)),
        # False when no finite pose exists this frame (not posed, or the model returned NaN)
        "valid": bool(getattr(face, "valid", True)),
    }
    rv = getattr(face, "R_vehicle", None)
    if rv is not None:
        rec["R_vehicle"] = _matrix(rv, flat_matrices)
        ev = getattr(face, "euler_vehicle", None)
        if ev is not None:
            rec["pitch_vehicle"], rec["yaw_vehicle"], rec["roll_vehicle"] = (_num(v, 3) for v in ev)
    return rec


def frame_record(index: int, pts_ns: int, faces: Iterable, latency_ms: dict[str, float] | None = None,
                 status: list[str] | None = None, **extra) -> dict:
    """One frame line; ``faces`` are face objects (see :func:`face_record`)."""
    rec = {"type": "frame", "frame": int(index), "pts_ns": int(pts_ns),
           "faces": [face_record(f) for f in faces],
           "latency_ms": {k: round(float(v), 3) for k, v in (latency_ms or {}).items()}, **extra}
    if status:
        rec["status"] = list(status)
    return rec


def header_record(**fields) -> dict:
    """The first line: schema plus whatever describes the run (source, model, size, platform)."""
    return {"type": "header", "schema": SCHEMA, **fields}


def dumps(record: dict[str, Any]) -> str:
    """One line of the file (compact; NaN is an error: use null)."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


class RunRecordWriter:
    """Writes records line by line (flushed each time; fsync on close)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"--jsonl {self.path} is a directory; give a file name such as {self.path}/run.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(dumps(record) + "\n")
        self._fh.flush()  # line by line: what was processed is on disk

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> "RunRecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- reading ---------------------------------------------------------------------------------------
def _check_schema(schema, where: str) -> None:
    if schema is None:
        return  # a header without a schema (hand-written or older tools): read as version 1
    family, _, version = str(schema).partition("/")
    if family != FAMILY:
        raise DataError(f"{where}: schema {schema!r} is not a run record ({SCHEMA}); "
                        "is this an `edgepose run --jsonl` file?")
    if not version.isdigit() or int(version) not in READABLE:
        raise DataError(f"{where}: {schema} was written by another edgepose version (this one reads "
                        f"{', '.join(f'{FAMILY}/{v}' for v in READABLE)}); read it with the version that wrote it")


def read_records(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` for every line of a run record.

    Checks the header's schema version; a truncated last line (a recording that was killed) ends
    the file; any other bad line raises a ``DataError`` naming its number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"run JSONL not found: {path}; record one with `edgepose run SOURCE --jsonl {path.name}`")
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                if lineno > 1 and not fh.readline():  # a truncated last line (recording killed): stop
                    return
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg}); "
                                "is this an `edgepose run --jsonl` file?") from None
            if isinstance(rec, dict) and rec.get("type") == "header":
                _check_schema(rec.get("schema"), f"{path}:{lineno}")
            yield lineno, rec


def is_frame(rec) -> bool:
    """A frame line: ``type: frame``, or an untyped line with faces (the pre-header layout)."""
    return isinstance(rec, dict) and (rec.get("type") == "frame" or ("type" not in rec and "faces" in rec))


def frame_records(path: str | Path) -> list[dict]:
    """The frame lines of a run record, in file order."""
    return [rec for _, rec in read_records(path) if is_frame(rec)]


# -- validation ------------------------------------------------------------------------------------
_NUM = (float, int, type(None))
_FACE_TYPES = {"track_id": int, "box": list, "yaw": _NUM, "pitch": _NUM, "roll": _NUM, "R": list, "is_driver": bool}
_FRAME_TYPES = {"frame": int, "pts_ns": int, "faces": list, "latency_ms": dict}
_FRAME_OPTIONAL = {"image": str, "width": int, "height": int}  # checked when present


def validate_record(rec: dict) -> None:
    """Raise ValueError when a frame record misses a key or has a wrong type (tests and tools)."""
    if rec.get("type") != "frame":
        if rec.get("type") == "header":
            try:
                _check_schema(rec.get("schema"), "header")
            except DataError as exc:
                raise ValueError(str(exc)) from None
        return
    for key, tp in _FRAME_TYPES.items():
        if not isinstance(rec.get(key), tp):
            raise ValueError(f"frame record: key {key!r} missing or not {tp}: {rec.get(key)!r}")
    for key, tp in _FRAME_OPTIONAL.items():
        if key in rec and not isinstance(rec[key], tp):
            raise ValueError(f"frame record: key {key!r} is not {tp}: {rec[key]!r}")
    for face in rec["faces"]:
        for key, tp in _FACE_TYPES.items():
            if key not in face or not isinstance(face[key], tp):
                raise ValueError(f"face record: key {key!r} missing or wrong type: {face.get(key)!r}")
        if len(face["box"]) != 4 or len(face["R"]) != 3 or any(len(r) != 3 for r in face["R"]):
            raise ValueError(f"face record: box must have 4 values and R 3x3: {face}")
