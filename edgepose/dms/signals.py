"""Vehicle signals (speed, turn indicator): timestamped samples with sample-and-hold lookup.

Sources: a JSONL or CSV file recorded on the same clock as the video PTS (seconds; ``t`` or
``pts_ns``), or live messages (MQTT, :mod:`edgepose.dms.mqtt`).  A sample holds until the next one;
a sample older than ``stale_after_s`` is treated as unknown, so a dead CAN gateway never freezes the
speed at 80 km/h.
"""
from __future__ import annotations

import bisect
import csv
import json
import math
import threading
from pathlib import Path

from .config import DmsConfigError

__all__ = ["VehicleSignals", "parse_indicator", "INDICATOR_VALUES"]

INDICATOR_VALUES = ("left", "right", "off")
_INDICATOR_ALIASES = {"left": "left", "l": "left", "right": "right", "r": "right", "off": "off", "none": "off",
                      "0": "off", "": "off", "false": "off", "hazard": "off"}


def parse_indicator(value) -> str | None:
    """'left' | 'right' | 'off', or None when absent; raises ValueError on anything else."""
    if value is None:
        return None
    if value is False:  # YAML 1.1 reads a bare `off` as false
        return "off"
    key = str(value).strip().lower()
    if key not in _INDICATOR_ALIASES:
        raise ValueError(f"indicator must be one of left/right/off, got {value!r}")
    return _INDICATOR_ALIASES[key]


#: seconds of live (MQTT) vehicle signals kept; older samples are dropped (bounded memory)
LIVE_HISTORY_S = 60.0
_LIVE_PRUNE_EVERY = 256  # prune only when a series holds more than twice this (amortised O(1))


class _Series:
    def __init__(self):
        self.t: list[float] = []
        self.v: list = []

    def add(self, t: float, v) -> None:
        if self.t and t < self.t[-1]:  # out of order: insert in place (files may be unsorted)
            i = bisect.bisect_right(self.t, t)
            self.t.insert(i, t)
            self.v.insert(i, v)
        else:
            self.t.append(t)
            self.v.append(v)

    def prune(self, before: float) -> None:
        """Forget samples older than ``before`` except the last one at or before it (still the value
        at ``before``)."""
        i = bisect.bisect_right(self.t, before) - 1
        if i > 0:
            del self.t[:i], self.v[:i]

    def at(self, t: float, stale_after: float | None):
        i = bisect.bisect_right(self.t, t) - 1
        if i < 0:
            return None
        if stale_after is not None and t - self.t[i] > stale_after:
            return None
        return self.v[i]


class VehicleSignals:
    """Thread-safe store; ``at(t) -> (speed_kmh | None, indicator | None)``."""

    def __init__(self, stale_after_s: float | None = 5.0):
        self.stale_after_s = stale_after_s
        self._speed = _Series()
        self._indicator = _Series()
        self._lock = threading.Lock()

    def add(self, t: float, speed_kmh: float | None = None, indicator: str | None = None) -> None:
        with self._lock:
            if speed_kmh is not None:
                if not math.isfinite(speed_kmh) or speed_kmh < 0:
                    raise ValueError(f"speed_kmh must be a finite number >= 0, got {speed_kmh}")
                self._speed.add(float(t), float(speed_kmh))
            if indicator is not None:
                self._indicator.add(float(t), parse_indicator(indicator))

    def at(self, t: float) -> tuple[float | None, str | None]:
        with self._lock:
            return self._speed.at(t, self.stale_after_s), self._indicator.at(t, self.stale_after_s)

    def add_message(self, msg: dict, default_t: float) -> None:
        """One live message ``{"speed_kmh": .., "indicator": .., "t"?: ..}`` (t defaults to stream time)."""
        t = _time_of(msg)
        t = default_t if t is None else t
        self.add(t, _num(msg.get("speed_kmh")), msg.get("indicator"))
        # a live feed runs for days: keep LIVE_HISTORY_S of it (the engine asks for the current time,
        # never for the past; late messages within that window still sort in)
        with self._lock:
            for series in (self._speed, self._indicator):
                if len(series.t) > 2 * _LIVE_PRUNE_EVERY:
                    series.prune(series.t[-1] - LIVE_HISTORY_S)

    @property
    def empty(self) -> bool:
        return not self._speed.t and not self._indicator.t

    @classmethod
    def from_file(cls, path: str | Path, stale_after_s: float | None = 5.0) -> "VehicleSignals":
        """JSONL (one object per line) or CSV with a header: ``t`` (s) or ``pts_ns``, ``speed_kmh``,
        ``indicator`` (left/right/off); either signal column may be missing or empty on a row."""
        path = Path(path)
        if not path.is_file():
            raise DmsConfigError(f"vehicle signals file not found: {path}")
        sig = cls(stale_after_s)
        rows: list[tuple[int, dict]] = []
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            with path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append((n, json.loads(line)))
                        except json.JSONDecodeError as exc:
                            raise DmsConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
            with path.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
                if not reader.fieldnames or not ({"t", "pts_ns", "time_s"} & set(reader.fieldnames)):
                    raise DmsConfigError(f"{path}: the CSV header needs a time column 't' (seconds) or 'pts_ns', "
                                         f"plus 'speed_kmh' and/or 'indicator'; got {reader.fieldnames}")
                rows = [(n, {k: (v if v != "" else None) for k, v in r.items()}) for n, r in enumerate(reader, 2)]
        else:
            raise DmsConfigError(f"{path}: vehicle signals must be .jsonl or .csv")
        for n, rec in rows:
            try:
                t = _time_of(rec)
                if t is None:
                    raise ValueError("no time ('t' seconds or 'pts_ns')")
                sig.add(t, _num(rec.get("speed_kmh")), rec.get("indicator"))
            except (TypeError, ValueError) as exc:
                raise DmsConfigError(f"{path}:{n}: {exc}") from None
        if sig.empty:
            raise DmsConfigError(f"{path} holds no speed_kmh or indicator samples")
        return sig


def _num(v) -> float | None:
    if v is None:
        return None
    return float(v)


def _time_of(rec: dict) -> float | None:
    if rec.get("pts_ns") is not None:
        return int(float(rec["pts_ns"])) / 1e9
    for k in ("t", "time_s"):
        if rec.get(k) is not None:
            return float(rec[k])
    return None
