"""Driver monitoring on top of head pose: zones, attention state machine, events, MQTT.

Live: ``DmsObserver(preset, events_out=..., mqtt=...)`` is a frame observer for ``edgepose run``.
Offline: ``edgepose dms replay RUN.jsonl --preset euro-ncap-2023``.  See docs/dms.md.
Heavy/optional modules (paho-mqtt) are imported only by :mod:`edgepose.dms.mqtt`.
"""
from __future__ import annotations

from .config import DmsConfig, DmsConfigError, load_preset
from .engine import DmsEngine
from .events import Event, JsonlSink, Status
from .inputs import DmsInput, from_frame_result, from_run_record, read_run_jsonl
from .mount import CameraMount
from .signals import VehicleSignals

__all__ = ["DmsConfig", "DmsConfigError", "load_preset", "DmsEngine", "Event", "Status", "JsonlSink",
           "DmsInput", "from_frame_result", "from_run_record", "read_run_jsonl", "CameraMount",
           "VehicleSignals", "DmsObserver", "create_frame_observer"]


def __getattr__(name):  # DmsObserver pulls in the output plumbing; import it on first use
    if name in ("DmsObserver", "create_frame_observer"):
        from . import observer

        return getattr(observer, name)
    raise AttributeError(name)
