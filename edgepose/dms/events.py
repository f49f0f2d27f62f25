"""DMS events and the JSON Lines sink.

Record types (one JSON object per line, ``"record"`` says which):

* ``event``: ``type`` (long_distraction, vats, addw_warning, driver_not_visible,
  monitoring_unavailable, calibrated), ``phase`` (``onset`` when the rule fires, ``end`` when the
  condition is over; an instantaneous event has only ``onset``), ``t`` (stream time of emission),
  ``start``/``end``/``duration`` (seconds), ``zone``, ``speed_kmh``, ``severity``, ``details``.
* ``state`` (periodic, optional): the :class:`Status` snapshot.

Each line is flushed as it is written, so an interrupted run keeps every event already emitted.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Event", "Status", "JsonlSink", "SEVERITY"]

#: fixed severities so consumers can filter without knowing every event type
SEVERITY = {
    "long_distraction": "warning",
    "vats": "warning",
    "addw_warning": "warning",
    "driver_not_visible": "fault",
    "monitoring_unavailable": "fault",
    "calibrated": "info",
}


def _round(v, nd=3):
    if isinstance(v, float):
        return round(v, nd) if math.isfinite(v) else None
    return v


@dataclass
class Event:
    type: str
    phase: str  # onset | end
    t: float
    start: float
    end: float | None = None
    duration: float | None = None
    zone: str | None = None
    speed_kmh: float | None = None
    severity: str = "info"
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"record": "event"}
        d.update({k: _round(v) for k, v in asdict(self).items()})
        d["details"] = {k: _round(v) for k, v in self.details.items()}
        return d


@dataclass
class Status:
    t: float
    # ATTENTIVE | OFF_ROAD | DISTRACTED | UNKNOWN | DRIVER_NOT_VISIBLE from the engine (per frame);
    # UNAVAILABLE only from a live DmsObserver's watchdog, while no frames arrive (the engine runs
    # on frames, so it cannot be in a state without one)
    state: str
    zone: str | None
    yaw: float | None
    pitch: float | None
    glance_s: float  # current continuous off-road glance
    vats_s: float  # off-road time inside the VATS window
    speed_kmh: float | None
    indicator: str | None
    calibrated: bool
    warnings: list[str]

    def to_dict(self) -> dict:
        d = {"record": "state"}
        d.update({k: _round(v, 2) for k, v in asdict(self).items()})
        return d


class JsonlSink:
    """Writes records to a path (truncates) or ``-`` (stdout); one flushed line per record."""

    def __init__(self, target: str | Path | IO[str]):
        self._own = False
        if hasattr(target, "write"):
            self._fh = target
        elif str(target) == "-":
            self._fh = sys.stdout
        else:
            path = Path(target)
            if path.parent and not path.parent.exists():
                from .config import DmsConfigError

                raise DmsConfigError(f"cannot write events to {path}: folder {path.parent} does not exist")
            self._fh = path.open("w", encoding="utf-8")
            self._own = True

        self.target = str(target) if not hasattr(target, "write") else getattr(target, "name", "stream")
        self.failed: dict | None = None  # set when a write failed (disk full): the sink is off from then on

    def write(self, record: dict) -> None:
        if self.failed:
            return
        try:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()
        except OSError as exc:  # a full disk stops this file, never the monitor (or its MQTT link)
            from ..sinks import sink_failure

            self.failed = sink_failure("dms-events", self.target, exc)
            self.close()

    def close(self) -> None:
        if self._own:
            self._own = False
            try:
                self._fh.close()
            except OSError as exc:  # the buffered tail could not be written either
                if not self.failed:
                    from ..sinks import sink_failure

                    self.failed = sink_failure("dms-events", self.target, exc)
