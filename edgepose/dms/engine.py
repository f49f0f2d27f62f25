"""The DMS state machine: zones -> off-road timeline -> rules -> events and status.

Every duration comes from frame timestamps (never the wall clock).  The attention timeline is made
of *valid observations* (frames with a driver face and pose).  Between two consecutive valid
observations at t_a < t_b the interval [t_a, t_b) takes the class observed at t_a (sample and
hold) when t_b - t_a <= ``availability.max_gap_s``; a longer gap (frame-rate collapse, face lost)
is UNKNOWN: an off-road glance in progress ends at t_a, and the time counts neither as on- nor as
off-road.  A frame without a valid face always reports UNKNOWN / DRIVER_NOT_VISIBLE, never
ATTENTIVE.

Rules (each can count glances to driving-related zones such as mirrors, or ignore them):

* ``long_distraction``: one continuous off-road glance of >= ``threshold_s`` (Euro NCAP 2023: 3.0 s).
* ``vats``: more than ``threshold_s`` off-road inside the sliding ``window_s`` (10 s in 30 s).
* ``addw_warning``: a glance longer than the speed band's ``warn_after_s`` (EU ADDW: 6 s at
  20-50 km/h, before 3.5 s above 50 km/h); idle below 20 km/h and when the speed is unknown.
* ``driver_not_visible`` (frames, no valid face for ``not_visible_after_s``) and
  ``monitoring_unavailable`` (no frames at all for ``unavailable_after_s``).

Glances toward the side the turn indicator shows (its mirror/window zones) are legitimate.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import numpy as np

from .. import geometry
from .calibration import NeutralCalibrator
from .config import DmsConfig
from .events import SEVERITY, Event, Status
from .inputs import DmsInput
from .mount import CameraMount
from .signals import VehicleSignals
from .zones import OTHER_ZONE, ZoneTracker, build_zones

__all__ = ["DmsEngine", "EPS"]

log = logging.getLogger(__name__)

#: tolerance for threshold comparisons: PTS are integer nanoseconds, so k frames at 30 fps sum to
#: the nominal duration only within ~1e-8 s
EPS = 1e-6


class _Timeline:
    """Off-road glances and off-road intervals for one notion of "off-road"."""

    def __init__(self):
        self.intervals: deque[tuple[float, float]] = deque()
        self._reset_glance()
        self.prev_t: float | None = None
        self.prev_off = False
        self.prev_zone: str | None = None

    def _reset_glance(self):
        self.glance_start: float | None = None
        self.zone_time: dict[str, float] = {}

    def _ended(self, end: float):
        out = (self.glance_start, end, dict(self.zone_time))
        self._reset_glance()
        return out

    def observe(self, t: float, off: bool, zone: str):
        """A valid observation (continuity with the previous one already checked)."""
        ended = None
        if self.prev_t is not None and self.prev_off:
            if self.intervals and abs(self.intervals[-1][1] - self.prev_t) < 1e-12:
                self.intervals[-1] = (self.intervals[-1][0], t)
            else:
                self.intervals.append((self.prev_t, t))
            self.zone_time[self.prev_zone] = self.zone_time.get(self.prev_zone, 0.0) + (t - self.prev_t)
        if off and self.glance_start is None:
            self.glance_start = t
            self.zone_time = {}
        elif not off and self.glance_start is not None:
            ended = self._ended(t)
        self.prev_t, self.prev_off, self.prev_zone = t, off, zone
        return ended

    def close(self):
        """Unknown time starts after the previous observation: a glance ends there."""
        ended = self._ended(self.prev_t) if self.glance_start is not None else None
        self.prev_t, self.prev_off, self.prev_zone = None, False, None
        return ended

    def elapsed(self, t: float) -> float:
        return 0.0 if self.glance_start is None else t - self.glance_start

    def off_in_window(self, t: float, window: float) -> float:
        lo = t - window
        while self.intervals and self.intervals[0][1] <= lo:
            self.intervals.popleft()
        return sum(min(e, t) - max(s, lo) for s, e in self.intervals if min(e, t) > max(s, lo))


class _GlanceRule:
    """Fires once per glance when its elapsed time reaches a (speed-dependent) threshold."""

    def __init__(self, name: str, timeline: _Timeline, threshold: Callable[[float | None], float | None]):
        self.name, self.timeline, self.threshold = name, timeline, threshold
        self.fired_at: float | None = None

    @property
    def active(self) -> bool:
        return self.fired_at is not None

    def _onset(self, t, start, zone, speed, thr) -> Event:
        self.fired_at = t
        return Event(self.name, "onset", t, start, None, t - start, zone, speed, SEVERITY[self.name],
                     {"threshold_s": thr})

    def check(self, t: float, zone: str | None, speed: float | None) -> list[Event]:
        tl = self.timeline
        if tl.glance_start is None or self.fired_at is not None:
            return []
        thr = self.threshold(speed)
        if thr is not None and tl.elapsed(t) >= thr - EPS:
            return [self._onset(t, tl.glance_start, zone, speed, thr)]
        return []

    def glance_ended(self, t: float, ended, speed: float | None) -> list[Event]:
        start, end, zone_time = ended
        zone = max(zone_time, key=zone_time.get) if zone_time else None
        out = []
        if self.fired_at is None:
            thr = self.threshold(speed)
            if thr is not None and end - start >= thr - EPS:  # reached exactly at the glance end
                out.append(self._onset(end, start, zone, speed, thr))
        if self.fired_at is not None:
            out.append(Event(self.name, "end", t, start, end, end - start, zone, speed, SEVERITY[self.name],
                             {"zones": {k: round(v, 3) for k, v in zone_time.items()}}))
        self.fired_at = None
        return out


class DmsEngine:
    """Feed :class:`DmsInput` frames in timestamp order with :meth:`step`; it returns the records
    (:class:`Event` and :class:`Status`) produced by that frame."""

    def __init__(self, cfg: DmsConfig, mount: CameraMount | None = None, signals: VehicleSignals | None = None):
        self.cfg = cfg
        self.mount = mount
        self.signals = signals if signals is not None else VehicleSignals(cfg.signals_stale_after_s)
        self.tracker = ZoneTracker(build_zones(cfg), cfg.enter_margin_deg, cfg.exit_margin_deg)
        self.calibrator = NeutralCalibrator(cfg.calibration)
        self.tl_all = _Timeline()  # every non-road zone is off-road
        self.tl_nd = _Timeline()  # only zones that are not driving-related
        ld, ad = cfg.long_distraction, cfg.addw
        self.rules: list[_GlanceRule] = []
        if ld.enabled:
            self.rules.append(_GlanceRule("long_distraction", self._tl(ld.include_driving_zones), self._long_threshold))
        if ad.enabled:
            self.rules.append(_GlanceRule("addw_warning", self._tl(ad.include_driving_zones), self._addw_threshold))
        self.vats_tl = self._tl(cfg.vats.include_driving_zones)
        self.vats_onset: float | None = None
        self.t_frame: float | None = None  # last frame (any)
        self.t_first: float | None = None
        self.t_valid: float | None = None  # last valid observation
        self.nv_since: float | None = None  # driver_not_visible onset reference
        self.nv_active = False
        self._ind_last = {"left": -np.inf, "right": -np.inf}
        self._last_status_t: float | None = None
        self._last_state: str | None = None
        self.zone: str | None = None
        self.yaw = self.pitch = None
        self.speed: float | None = None
        self.indicator: str | None = None
        self._recal_requested = False
        self._warned_order = False

    # --- configuration helpers ------------------------------------------------------------
    def _tl(self, include_driving: bool) -> _Timeline:
        return self.tl_all if include_driving else self.tl_nd

    def _long_threshold(self, speed):
        ld = self.cfg.long_distraction
        if ld.min_speed_kmh is not None and speed is not None and speed < ld.min_speed_kmh:
            return None
        return ld.threshold_s

    def _addw_threshold(self, speed):
        if speed is None:
            return None
        for b in self.cfg.addw.bands:
            if b.min_kmh <= speed and (b.max_kmh is None or speed <= b.max_kmh):
                return b.warn_after_s
        return None

    def _vats_enabled(self, speed) -> bool:
        v = self.cfg.vats
        return v.enabled and not (v.min_speed_kmh is not None and speed is not None and speed < v.min_speed_kmh)

    def recalibrate(self) -> None:
        """Start a new neutral-pose calibration (API and MQTT command)."""
        self.calibrator.request()

    def _legit(self, zone: str, t: float) -> bool:
        ic = self.cfg.indicator
        if not ic.enabled:
            return False
        for side, zones in (("left", ic.left_zones), ("right", ic.right_zones)):
            if zone in zones and t - self._ind_last[side] <= ic.hold_s + EPS:
                return True
        return False

    def vehicle_pose(self, inp: DmsInput) -> np.ndarray:
        """Canonical vehicle-frame pose: the mount maps R when given; else the runtime's R_vehicle;
        else the camera pose itself (camera straight ahead of the driver)."""
        R = inp.R
        if R is None and inp.R_vehicle is None:
            R = geometry.euler_to_matrix([inp.pitch, inp.yaw, inp.roll or 0.0])
        if R is not None and (self.mount is not None or inp.R_vehicle is None):
            return self.mount.to_vehicle(R) if self.mount is not None else np.asarray(R, dtype=np.float64)
        return np.asarray(inp.R_vehicle, dtype=np.float64)

    # --- the per-frame step ---------------------------------------------------------------
    def step(self, inp: DmsInput) -> list:
        t = float(inp.t)
        if self.t_frame is not None and t <= self.t_frame:
            if not self._warned_order:
                log.warning("DMS: frame timestamp %.3f s is not after the previous %.3f s; such frames are skipped", t, self.t_frame)
                self._warned_order = True
            return []
        out: list = []
        av = self.cfg.availability
        if self.t_first is None:
            self.t_first = t
        # 1. no frames at all for a while: monitoring was unavailable (known once frames resume)
        if self.t_frame is not None and t - self.t_frame > av.unavailable_after_s:
            s, e = self.t_frame, t
            out.append(Event("monitoring_unavailable", "onset", t, s, None, e - s, None, self.speed,
                             SEVERITY["monitoring_unavailable"], {"frame_gap_s": e - s}))
            out.append(Event("monitoring_unavailable", "end", t, s, e, e - s, None, self.speed,
                             SEVERITY["monitoring_unavailable"], {"frame_gap_s": e - s}))
        self.t_frame = t
        # 2. vehicle signals at this instant
        speed, ind = self.signals.at(t)
        self.speed = inp.speed_kmh if inp.speed_kmh is not None else speed
        self.indicator = inp.indicator if inp.indicator is not None else ind
        if self.indicator in ("left", "right"):
            self._ind_last[self.indicator] = t
        # 3. too long since the last valid observation: the timeline becomes UNKNOWN
        if self.t_valid is not None and self.tl_all.prev_t is not None and t - self.t_valid > av.max_gap_s:
            out += self._close_timelines(t)
        valid = inp.has_pose and (inp.score is None or inp.score >= av.min_face_score)
        if valid:
            out += self._observe(t, inp)
        else:
            self.zone = None
            self.yaw = self.pitch = None
        # 4. VATS
        out += self._check_vats(t)
        # 5. availability: driver_not_visible
        ref = self.t_valid if self.t_valid is not None else self.t_first
        if valid and self.nv_active:
            out.append(Event("driver_not_visible", "end", t, self.nv_since, t, t - self.nv_since, None, self.speed,
                             SEVERITY["driver_not_visible"]))
            self.nv_active = False
        elif not valid and not self.nv_active and t - ref >= av.not_visible_after_s - EPS:
            self.nv_active, self.nv_since = True, ref
            out.append(Event("driver_not_visible", "onset", t, ref, None, t - ref, None, self.speed,
                             SEVERITY["driver_not_visible"]))
        # 6. status on change or periodically
        st = self.status(valid)
        every = self.cfg.status_every_s
        if st.state != self._last_state or (every > 0 and (self._last_status_t is None or t - self._last_status_t >= every - EPS)):
            out.append(st)
            self._last_status_t, self._last_state = t, st.state
        return out

    def _close_timelines(self, t: float) -> list:
        out = []
        for tl in {id(self.tl_all): self.tl_all, id(self.tl_nd): self.tl_nd}.values():
            ended = tl.close()
            if ended is not None:
                for r in self.rules:
                    if r.timeline is tl:
                        out += r.glance_ended(t, ended, self.speed)
        self.tracker.reset()
        return out

    def _observe(self, t: float, inp: DmsInput) -> list:
        out: list = []
        R_v = self.vehicle_pose(inp)
        result = self.calibrator.add(t, R_v, self.speed)
        if result is not None:
            out.append(Event("calibrated", "onset", t, t, t, 0.0, None, self.speed, SEVERITY["calibrated"], result))
        pitch, yaw, _ = geometry.matrix_to_euler(self.calibrator.relative(R_v))
        self.yaw, self.pitch = float(yaw), float(pitch)
        zone = self.tracker.update(self.yaw, self.pitch)
        self.zone = zone
        cat = "non_driving" if zone == OTHER_ZONE else self.tracker.category(zone)
        legit = cat != "road" and self._legit(zone, t)
        off_all = cat != "road" and not legit
        off_nd = off_all and cat != "driving"
        for tl, off in ((self.tl_all, off_all), (self.tl_nd, off_nd)):
            ended = tl.observe(t, off, zone)
            if ended is not None:
                for r in self.rules:
                    if r.timeline is tl:
                        out += r.glance_ended(t, ended, self.speed)
        for r in self.rules:
            out += r.check(t, zone, self.speed)
        self.t_valid = t
        return out

    def _check_vats(self, t: float) -> list:
        v = self.cfg.vats
        if not v.enabled:
            return []
        total = self.vats_tl.off_in_window(t, v.window_s)
        self.vats_total = total
        if self.vats_onset is None and total > v.threshold_s + EPS and self._vats_enabled(self.speed):
            self.vats_onset = t
            return [Event("vats", "onset", t, t - v.window_s, None, total, self.zone, self.speed, SEVERITY["vats"],
                          {"off_road_s": total, "window_s": v.window_s, "threshold_s": v.threshold_s})]
        if self.vats_onset is not None and total <= v.threshold_s + EPS:
            s = self.vats_onset
            self.vats_onset = None
            return [Event("vats", "end", t, s, t, t - s, self.zone, self.speed, SEVERITY["vats"],
                          {"off_road_s": total, "window_s": v.window_s})]
        return []

    vats_total = 0.0

    # --- status and shutdown --------------------------------------------------------------
    @property
    def warnings(self) -> list[str]:
        w = [r.name for r in self.rules if r.active]
        if self.vats_onset is not None:
            w.append("vats")
        return w

    def status(self, valid: bool | None = None) -> Status:
        t = self.t_frame if self.t_frame is not None else 0.0
        if valid is None:
            valid = self.t_valid is not None and self.t_valid == self.t_frame
        if self.nv_active:
            state = "DRIVER_NOT_VISIBLE"
        elif not valid:
            state = "UNKNOWN"  # never attentive without a face
        elif self.warnings:
            state = "DISTRACTED"
        elif self.tl_all.glance_start is not None:
            state = "OFF_ROAD"
        else:
            state = "ATTENTIVE"
        return Status(t, state, self.zone, self.yaw, self.pitch, self.tl_all.elapsed(t) if valid else 0.0,
                      self.vats_total, self.speed, self.indicator, self.calibrator.calibrated, self.warnings)

    def finish(self) -> list:
        """End of stream: close every open episode (``details.truncated``) so no onset is left dangling."""
        if self.t_frame is None:
            return []
        t = self.t_frame
        out = self._close_timelines(t)
        for e in out:
            e.details["truncated"] = True
        if self.vats_onset is not None:
            s = self.vats_onset
            out.append(Event("vats", "end", t, s, t, t - s, self.zone, self.speed, SEVERITY["vats"],
                             {"off_road_s": self.vats_total, "truncated": True}))
            self.vats_onset = None
        if self.nv_active:
            out.append(Event("driver_not_visible", "end", t, self.nv_since, t, t - self.nv_since, None, self.speed,
                             SEVERITY["driver_not_visible"], {"truncated": True}))
            self.nv_active = False
        return out
