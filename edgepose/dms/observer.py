"""``DmsObserver``: the DMS as a frame observer for ``edgepose run --dms PRESET``.

::

    obs = DmsObserver("configs/dms/euro-ncap-2023.yaml", events_out="events.jsonl",
                      mqtt="mqtt://127.0.0.1:1883/edgepose/dms", signals="signals.csv")
    for frame_result in processor:            # FrameResult from edgepose.runtime
        overlay_lines = obs(frame_result)     # -> ["DMS ATTENTIVE  forward_road ...", ...]
    obs.close()                               # closes open episodes, publishes offline

The observer owns the engine and routes records: events -> JSONL + MQTT events topic; states ->
MQTT retained status (and the JSONL when ``write_states``).  MQTT commands are applied on the
calling (frame) thread.
"""
from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import IO

from .config import DmsConfig, load_preset
from .engine import DmsEngine
from .events import Event, JsonlSink, Status
from .inputs import DmsInput, from_frame_result
from .mount import CameraMount
from .signals import VehicleSignals

__all__ = ["DmsObserver", "create_frame_observer"]

log = logging.getLogger(__name__)


class DmsObserver:
    def __init__(self, preset: str | Path | DmsConfig, events_out: str | Path | IO[str] | None = None,
                 mqtt=None, signals: str | Path | VehicleSignals | None = None,
                 mount: str | Path | CameraMount | None = None, overrides: list[str] | None = None,
                 write_states: bool = False):
        self.cfg = preset if isinstance(preset, DmsConfig) else load_preset(preset, overrides)
        o = self.cfg.outputs  # the preset's outputs section fills what the caller left out
        events_out = events_out if events_out is not None else (o.events or None)
        signals = signals if signals is not None else (o.signals or None)
        mount = mount if mount is not None else (o.mount or None)
        write_states = write_states or o.write_states
        if mqtt is None and o.mqtt:
            from .mqtt import MqttSettings

            mqtt = MqttSettings.from_url(o.mqtt, client_id=o.mqtt_client_id, signals_topic=o.mqtt_signals_topic or None)
        if isinstance(signals, (str, Path)):
            signals = VehicleSignals.from_file(signals, self.cfg.signals_stale_after_s)
        if isinstance(mount, (str, Path)):
            mount = CameraMount.from_file(mount)
        self.engine = DmsEngine(self.cfg, mount=mount, signals=signals)
        self.write_states = write_states
        self.counts: collections.Counter[str] = collections.Counter()
        self.frames = 0
        self.valid_frames = 0
        self._t_stream = 0.0
        self._sink = JsonlSink(events_out) if events_out is not None else None
        self.mqtt = None
        if mqtt is not None:
            from .mqtt import MqttLink, MqttSettings

            settings = MqttSettings.from_url(mqtt) if isinstance(mqtt, str) else mqtt
            try:
                self.mqtt = MqttLink(settings, on_signals=self._on_live_signals)
            except BaseException:
                if self._sink:
                    self._sink.close()
                raise

    def _on_live_signals(self, msg: dict) -> None:
        self.engine.signals.add_message(msg, default_t=self._t_stream)

    def recalibrate(self) -> None:
        self.engine.recalibrate()

    def __call__(self, frame_result) -> list[str]:
        """One ``FrameResult`` -> overlay status lines."""
        return self.process(from_frame_result(frame_result))

    def process(self, inp: DmsInput) -> list[str]:
        if self.mqtt is not None:
            for cmd in self.mqtt.drain_commands():
                if cmd == "recalibrate":
                    log.info("DMS: recalibration requested over MQTT")
                    self.recalibrate()
                else:
                    log.warning("DMS: unknown MQTT command %r (known: recalibrate)", cmd)
        self._t_stream = inp.t
        self.frames += 1
        self.valid_frames += int(inp.has_pose)
        self._route(self.engine.step(inp))
        return self.overlay_lines()

    def _route(self, records) -> None:
        for r in records:
            d = r.to_dict()
            if isinstance(r, Event):
                if r.phase == "onset":
                    self.counts[r.type] += 1
                log.info("DMS %s %s at %.2f s (%s)", r.type, r.phase, r.t, r.zone or "-")
                if self._sink:
                    self._sink.write(d)
                if self.mqtt:
                    self.mqtt.publish_event(d)
            elif isinstance(r, Status):
                if self._sink and self.write_states:
                    self._sink.write(d)
                if self.mqtt:
                    self.mqtt.publish_status(d)

    def overlay_lines(self) -> list[str]:
        st = self.engine.status()
        head = f"DMS {st.state}"
        if st.zone:
            head += f"  {st.zone}  yaw {st.yaw:+.0f} pitch {st.pitch:+.0f}"
        v = self.cfg.vats
        info = f"glance {st.glance_s:.1f}s  VATS {st.vats_s:.1f}/{v.threshold_s:.0f}s"
        if st.speed_kmh is not None:
            info += f"  {st.speed_kmh:.0f} km/h"
        if st.indicator in ("left", "right"):
            info += f"  ind {st.indicator}"
        if self.engine.calibrator.collecting:
            info += "  calibrating"
        lines = [head, info]
        if st.warnings:
            lines.append("WARNING " + ", ".join(st.warnings))
        return lines

    def close(self) -> None:
        """Flush: close open episodes, final status, MQTT offline, close the file."""
        try:
            recs = self.engine.finish()
            if self.engine.t_frame is not None:
                recs.append(self.engine.status())
            self._route(recs)
        finally:
            if self.mqtt is not None:
                self.mqtt.close()
                self.mqtt = None
            if self._sink is not None:
                self._sink.close()
                self._sink = None

    def summary(self) -> dict:
        e = self.engine
        dur = (e.t_frame - e.t_first) if e.t_first is not None else 0.0
        return {"frames": self.frames, "duration_s": round(dur, 3),
                "valid_face_fraction": round(self.valid_frames / self.frames, 3) if self.frames else 0.0,
                "calibrated": e.calibrator.calibrated, "events": dict(self.counts)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def create_frame_observer(preset: str | Path, **kwargs) -> DmsObserver:
    """The hook ``edgepose run --dms PRESET`` calls; keyword arguments as for :class:`DmsObserver`
    (``events_out``, ``mqtt``, ``signals``, ``mount``, ``overrides``, ``write_states``)."""
    return DmsObserver(preset, **kwargs)
