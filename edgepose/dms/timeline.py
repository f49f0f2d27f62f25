"""Scripted driver timelines: exact head-pose sequences for testing presets and the state machine.

A script is a list of segments (look at zone X for N seconds at F fps, face lost, frames stop,
speed, indicator).  It produces the same :class:`DmsInput` frames as a live pipeline (integer
nanosecond PTS, camera-frame R through an optional mount) and can be written as an
``edgepose run --jsonl`` file plus a vehicle-signals CSV, so a preset can be checked end to end
with ``edgepose dms replay`` before any car drive.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import yaml

from .. import geometry, runrecord
from ..config import ConfigError, from_dict
from ..metadata import atomic_write_text
from .config import DmsConfigError
from .inputs import DmsInput
from .mount import CameraMount
from .signals import VehicleSignals
from .zones import Zone

__all__ = ["Segment", "Script", "synthesize", "load_script", "write_run_jsonl", "write_signals_csv"]


@dataclass
class Segment:
    duration_s: float
    zone: str | None = None  # look at the centre of this zone (overrides yaw/pitch)
    yaw: float = 0.0  # vehicle frame, degrees (+ = the driver's right)
    pitch: float = 0.0
    roll: float = 0.0
    face: bool = True  # False: frames arrive but no face is detected
    frames: bool = True  # False: no frames at all (pipeline stall / camera dropout)
    fps: float | None = None  # None: the script's fps
    speed_kmh: float | None = None  # None: unchanged
    indicator: str | None = None  # left | right | off; None: unchanged


@dataclass
class Script:
    fps: float = 30.0
    t0: float = 0.0
    segments: list[Segment] | None = None


def zone_centre(zones: list[Zone], name: str) -> tuple[float, float]:
    for z in zones:
        if z.name == name:
            c = z.polygon.mean(axis=0)
            return float(c[0]), float(c[1])
    raise DmsConfigError(f"timeline zone {name!r} is not in the preset; zones: {[z.name for z in zones]}")


def synthesize(script: Script, zones: list[Zone] | None = None, mount: CameraMount | None = None,
               signal_hz: float = 1.0) -> tuple[list[DmsInput], VehicleSignals]:
    """Frames (camera-frame R, so the mount is exercised) and the vehicle signals of a script."""
    frames: list[DmsInput] = []
    speed: float | None = None
    indicator: str | None = None
    signals = VehicleSignals(stale_after_s=None)
    t_ns = int(round(script.t0 * 1e9))
    for seg in script.segments or []:
        if seg.duration_s <= 0:
            raise DmsConfigError(f"timeline segment duration_s must be > 0: {seg}")
        start_ns, end_ns = t_ns, t_ns + int(round(seg.duration_s * 1e9))
        speed = seg.speed_kmh if seg.speed_kmh is not None else speed
        indicator = seg.indicator if seg.indicator is not None else indicator
        # signals are sampled like a vehicle bus: at each segment start and every 1/signal_hz
        ts = start_ns
        while ts < end_ns and (speed is not None or indicator is not None):
            try:
                signals.add(ts / 1e9, speed, indicator)
            except ValueError as exc:
                raise DmsConfigError(f"timeline segment {seg}: {exc}") from None
            ts += int(round(1e9 / signal_hz))
        yaw, pitch = zone_centre(zones or [], seg.zone) if seg.zone else (seg.yaw, seg.pitch)
        R_v = geometry.euler_to_matrix([pitch, yaw, seg.roll])
        R_cam = R_v @ mount.C.T if mount is not None else R_v  # inverse of R_vehicle = R . C
        fps = seg.fps or script.fps
        if seg.frames:
            k = 0
            while True:
                pts = start_ns + int(round(k * 1e9 / fps))
                if pts >= end_ns:
                    break
                frames.append(DmsInput(t=pts / 1e9, face_visible=seg.face, R=R_cam.copy() if seg.face else None,
                                       score=0.9 if seg.face else None, track_id=1 if seg.face else None))
                k += 1
        t_ns = end_ns
    return frames, signals


def load_script(path: str | Path) -> Script:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return from_dict(Script, data)
    except OSError as exc:
        raise DmsConfigError(f"cannot read timeline script {path}: {exc}") from None
    except (yaml.YAMLError, ConfigError, TypeError) as exc:
        raise DmsConfigError(f"timeline script {path} is invalid: {exc}") from None


def _face(inp: DmsInput) -> SimpleNamespace:
    """The driver face of a scripted frame, with the attributes :func:`runrecord.face_record` reads."""
    return SimpleNamespace(track_id=inp.track_id, box=(200.0, 120.0, 360.0, 300.0), score=inp.score,
                           R=inp.R, euler=geometry.matrix_to_euler(inp.R), is_driver=True, valid=True)


def write_run_jsonl(frames: list[DmsInput], path: str | Path) -> None:
    """The frames as an ``edgepose run --jsonl`` run record (:mod:`edgepose.runrecord`), written atomically."""
    lines = [runrecord.dumps(runrecord.header_record(source="edgepose dms simulate"))]
    lines += [runrecord.dumps(runrecord.frame_record(i, int(round(f.t * 1e9)), [_face(f)] if f.face_visible else []))
              for i, f in enumerate(frames)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_signals_csv(signals: VehicleSignals, path: str | Path) -> None:
    """Speed/indicator samples as CSV (t, speed_kmh, indicator)."""
    rows: dict[float, dict] = {}
    for t, v in zip(signals._speed.t, signals._speed.v):
        rows.setdefault(t, {})["speed_kmh"] = v
    for t, v in zip(signals._indicator.t, signals._indicator.v):
        rows.setdefault(t, {})["indicator"] = v
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["t", "speed_kmh", "indicator"])
    for t in sorted(rows):
        w.writerow([f"{t:.9f}", rows[t].get("speed_kmh", ""), rows[t].get("indicator", "")])
    atomic_write_text(path, buf.getvalue())
