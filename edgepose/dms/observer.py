"""``DmsObserver``: the DMS as a frame observer for ``edgepose run --dms PRESET``.

::

    obs = DmsObserver("euro-ncap-2023", events_out="events.jsonl",
                      mqtt="mqtt://127.0.0.1:1883/edgepose/dms", signals="signals.csv")
    for frame_result in processor:            # FrameResult from edgepose.runtime
        overlay_lines = obs(frame_result)     # -> ["DMS ATTENTIVE  forward_road ...", ...]
    obs.close()                               # closes open episodes, publishes offline

The observer owns the engine and routes records: events -> JSONL + MQTT events topic; states ->
MQTT retained status (and the JSONL when ``write_states``).  MQTT commands are applied on the
calling (frame) thread.

Live watchdog (``live_watchdog=True``, what ``edgepose run`` sets for cameras and streams): the engine
sees a camera stall only when frames come back, so a thread checks the wall clock and, once no frame
arrived for ``availability.unavailable_after_s``, emits the ``monitoring_unavailable`` onset at once
and publishes the state ``UNAVAILABLE`` (retained over MQTT), so no consumer keeps reading the last
ATTENTIVE.  The next frame ends the episode (one onset, one end; the engine's own after-the-fact
report of the same gap is dropped).
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import IO

from .config import DmsConfig, load_preset
from .engine import DmsEngine
from .events import SEVERITY, Event, JsonlSink, Status
from .inputs import DmsInput, from_frame_result
from .mount import CameraMount
from .signals import VehicleSignals

__all__ = ["DmsObserver", "create_frame_observer"]

log = logging.getLogger(__name__)


class DmsObserver:
    def __init__(self, preset: str | Path | DmsConfig, events_out: str | Path | IO[str] | None = None,
                 mqtt=None, signals: str | Path | VehicleSignals | None = None,
                 mount: str | Path | CameraMount | None = None, overrides: list[str] | None = None,
                 write_states: bool = False, live_watchdog: bool = False):
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
        # the watchdog thread and the frame thread both route records: one at a time
        self._lock = threading.RLock()
        self._wall_last: float | None = None  # time.monotonic() of the last frame
        self._stall: Event | None = None  # the watchdog's open monitoring_unavailable onset
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._sink = JsonlSink(events_out) if events_out is not None else None
        self._sink_failed: dict | None = None
        self.mqtt = None
        self.mqtt_stats: dict | None = None  # the link's counters, kept after close() for the summary
        if mqtt is not None:
            from .mqtt import MqttLink, MqttSettings

            settings = MqttSettings.from_url(mqtt) if isinstance(mqtt, str) else mqtt
            try:
                self.mqtt = MqttLink(settings, on_signals=self._on_live_signals)
            except BaseException:
                if self._sink:
                    self._sink.close()
                raise
        if live_watchdog:
            self._watchdog = threading.Thread(target=self._watch, name="dms-watchdog", daemon=True)
            self._watchdog.start()

    def _on_live_signals(self, msg: dict) -> None:
        self.engine.signals.add_message(msg, default_t=self._t_stream)

    def recalibrate(self) -> None:
        self.engine.recalibrate()

    def __call__(self, frame_result) -> list[str]:
        """One ``FrameResult`` -> overlay status lines."""
        return self.process(from_frame_result(frame_result))

    def process(self, inp: DmsInput) -> list[str]:
        with self._lock:
            return self._process(inp)

    def _process(self, inp: DmsInput) -> list[str]:
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
        records = self.engine.step(inp)
        if self._stall is not None and self.engine.t_frame == inp.t:  # the frame was taken: stall over
            records = self._end_stall(inp.t, records)
        self._route(records)
        self._wall_last = time.monotonic()
        return self.overlay_lines()

    # --- the live watchdog ------------------------------------------------------------------
    def _watch(self) -> None:
        limit = self.cfg.availability.unavailable_after_s
        while not self._stop.wait(min(0.1, limit / 4)):
            last = self._wall_last
            if last is None or self._stall is not None:
                continue  # armed by the first frame: model loading is not a stall
            stalled = time.monotonic() - last
            if stalled > limit:
                with self._lock:
                    if self._stall is None and self._wall_last == last and not self._closed:
                        self._start_stall(stalled)

    def _start_stall(self, stalled_s: float) -> None:
        """No frame for ``stalled_s`` of wall time: report the onset now, on the stream clock
        (last frame time + the wall time since; ``details.wall_clock`` marks the estimate)."""
        e = self.engine
        t0 = e.t_frame if e.t_frame is not None else 0.0
        onset = Event("monitoring_unavailable", "onset", t0 + stalled_s, t0, None, stalled_s, None, e.speed,
                      SEVERITY["monitoring_unavailable"], {"wall_clock": True, "no_frames_s": round(stalled_s, 3)})
        self._stall = onset
        log.warning("DMS: no frames for %.1f s: monitoring unavailable", stalled_s)
        self._route([onset, self._unavailable_status(onset.t)])

    def _unavailable_status(self, t: float) -> Status:
        st = self.engine.status()
        return dataclasses.replace(st, t=t, state="UNAVAILABLE", zone=None, yaw=None, pitch=None, glance_s=0.0,
                                   warnings=[])

    def _stall_end(self, t: float, details: dict) -> Event:
        """The ``end`` record of the watchdog's open episode at ``t``; closes it."""
        s, self._stall = self._stall, None
        return Event("monitoring_unavailable", "end", t, s.start, t, t - s.start, None, self.engine.speed,
                     SEVERITY["monitoring_unavailable"], details)

    def _end_stall(self, t: float, records: list) -> list:
        """Frames are back: one end record for the watchdog's onset, instead of the engine's
        after-the-fact onset/end pair for the same gap; and a fresh status so the retained
        UNAVAILABLE is replaced even when the engine state did not change."""
        s = self._stall
        out: list = [self._stall_end(t, {"frame_gap_s": t - s.start})]
        out += [r for r in records if not (isinstance(r, Event) and r.type == "monitoring_unavailable")]
        if not any(isinstance(r, Status) for r in out):
            out.append(self.engine.status())
        return out

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
        if self._stall is not None:
            return ["DMS UNAVAILABLE  no frames"]
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
        """Flush: close open episodes, final status, MQTT offline, close the file.  Idempotent:
        the frame loop and ``Run.close()`` (edgepose.pipelines) both call it."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2.0)
            self._watchdog = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finish()

    def _finish(self) -> None:
        try:
            recs = self.engine.finish()
            if self._stall is not None:  # the stream ended during a stall: the episode is cut short
                recs.append(self._stall_end(max(self.engine.t_frame or 0.0, self._stall.t), {"truncated": True}))
            if self.engine.t_frame is not None:
                recs.append(self.engine.status())
            self._route(recs)
        finally:
            if self.mqtt is not None:
                self.mqtt.close()
                self.mqtt_stats = self.mqtt.stats()
                self.mqtt = None
            if self._sink is not None:
                self._sink.close()
                self._sink_failed = self._sink.failed
                self._sink = None

    def summary(self) -> dict:
        e = self.engine
        dur = (e.t_frame - e.t_first) if e.t_first is not None else 0.0
        out = {"frames": self.frames, "duration_s": round(dur, 3),
               "valid_face_fraction": round(self.valid_frames / self.frames, 3) if self.frames else 0.0,
               "calibrated": e.calibrator.calibrated, "events": dict(self.counts)}
        mqtt = self.mqtt.stats() if self.mqtt is not None else self.mqtt_stats
        if mqtt is not None:
            out["mqtt"] = mqtt
        if self._sink is not None and self._sink.failed:
            out["events_file_failed"] = self._sink.failed
        elif self._sink_failed:
            out["events_file_failed"] = self._sink_failed
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def create_frame_observer(preset: str | Path | DmsConfig, **kwargs) -> DmsObserver:
    """The hook ``edgepose run --dms PRESET`` calls; keyword arguments as for :class:`DmsObserver`
    (``events_out``, ``mqtt``, ``signals``, ``mount``, ``overrides``, ``write_states``,
    ``live_watchdog``)."""
    return DmsObserver(preset, **kwargs)
