"""DMS state machine on scripted timelines, at the edges of every threshold."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.dms.config import load_preset
from edgepose.dms.engine import DmsEngine
from edgepose.dms.events import Event, Status
from edgepose.dms.inputs import DmsInput
from edgepose.dms.signals import VehicleSignals
from edgepose.dms.timeline import Script, Segment, synthesize
from edgepose.dms.zones import build_zones

FWD = "forward_road"


def run(segments, preset="euro-ncap-2023", overrides=(), fps=30.0, signals=None):
    cfg = load_preset(preset, ["calibration.mode=off", "status_every_s=0", *overrides])
    frames, sig = synthesize(Script(fps, 0.0, list(segments)), build_zones(cfg))
    eng = DmsEngine(cfg, signals=signals or sig)
    events, states = [], []
    for f in frames:
        for r in eng.step(f):
            (events if isinstance(r, Event) else states).append(r)
    events += eng.finish()
    return eng, events, states


def onsets(events, kind):
    return [e for e in events if e.type == kind and e.phase == "onset"]


# --- long distraction (Euro NCAP 2023: a single glance >= 3.0 s) ---------------------------

@pytest.mark.parametrize("dur,fires", [(2.9, False), (3.1, True)])
@pytest.mark.parametrize("zone", ["infotainment", "lap", "left_mirror"])
def test_long_distraction_edges(dur, fires, zone):
    _, ev, _ = run([Segment(2, FWD), Segment(dur, zone), Segment(2, FWD)])
    got = onsets(ev, "long_distraction")
    assert bool(got) == fires
    if fires:
        (on,) = got
        assert on.start == pytest.approx(2.0, abs=1e-6)
        assert on.t == pytest.approx(5.0, abs=1 / 30 + 1e-6)  # fires when 3.0 s are reached, not at the end
        (end,) = [e for e in ev if e.type == "long_distraction" and e.phase == "end"]
        assert end.duration == pytest.approx(dur, abs=1e-6)
        assert end.zone == zone


def test_long_distraction_ignores_driving_zones_when_configured():
    _, ev, _ = run([Segment(1, FWD), Segment(4, "left_mirror"), Segment(1, FWD)],
                   overrides=["long_distraction.include_driving_zones=false"])
    assert not onsets(ev, "long_distraction")
    _, ev, _ = run([Segment(1, FWD), Segment(4, "infotainment"), Segment(1, FWD)],
                   overrides=["long_distraction.include_driving_zones=false"])
    assert len(onsets(ev, "long_distraction")) == 1


def test_glance_across_two_offroad_zones_is_one_glance():
    _, ev, _ = run([Segment(1, FWD), Segment(1.6, "infotainment"), Segment(1.6, "lap"), Segment(1, FWD)])
    (end,) = [e for e in ev if e.type == "long_distraction" and e.phase == "end"]
    assert end.duration == pytest.approx(3.2, abs=1e-6)
    assert set(end.details["zones"]) == {"infotainment", "lap"}


# --- VATS: > 10 s off-road within a sliding 30 s window ------------------------------------

def _vats_script(total_off):
    # four glances below 3 s each (no long distraction) spread over < 30 s
    g = total_off / 4
    assert g < 2.95
    return [Segment(2, FWD), *[s for _ in range(4) for s in (Segment(g, "infotainment"), Segment(3.0, FWD))]]


@pytest.mark.parametrize("total,fires", [(9.9, False), (10.1, True)])
def test_vats_edges(total, fires):
    _, ev, _ = run(_vats_script(total))
    assert not onsets(ev, "long_distraction")
    got = onsets(ev, "vats")
    assert bool(got) == fires
    if fires:
        assert got[0].details["off_road_s"] > 10.0
        assert any(e.type == "vats" and e.phase == "end" for e in ev)  # clears when the window slides on


def test_vats_window_slides():
    # 10.4 s off-road but spread over more than 30 s: never more than 10 s in one window
    segs = [Segment(1, FWD)] + [s for _ in range(4) for s in (Segment(2.6, "lap"), Segment(8.0, FWD))]
    _, ev, _ = run(segs)
    assert not onsets(ev, "vats")


# --- EU ADDW speed bands ---------------------------------------------------------------------

@pytest.mark.parametrize("speed,glance,fires", [
    (15.0, 8.0, False),   # below 20 km/h: inactive
    (19.9, 8.0, False),
    (20.0, 5.9, False),   # 20..50: 6 s
    (20.0, 6.1, True),
    (50.0, 5.9, False),   # 50 itself is still the 6 s band
    (50.0, 6.1, True),
    (50.1, 2.9, False),   # above 50: warns at 3.0 s (before 3.5 s)
    (50.1, 3.1, True),
    (120.0, 3.1, True),
])
def test_addw_bands(speed, glance, fires):
    _, ev, _ = run([Segment(1, FWD, speed_kmh=speed), Segment(glance, "infotainment"), Segment(1, FWD)], preset="eu-addw")
    got = onsets(ev, "addw_warning")
    assert bool(got) == fires
    if fires:
        assert got[0].speed_kmh == pytest.approx(speed)
        assert got[0].details["threshold_s"] == (6.0 if speed <= 50 else 3.0)


def test_addw_threshold_follows_speed_during_a_glance():
    # 4 s glance: at 40 km/h no warning; when the car speeds up past 50 after 2 s, 3.0 s applies
    segs = [Segment(1, FWD, speed_kmh=40), Segment(2, "infotainment"), Segment(2, "infotainment", speed_kmh=60),
            Segment(1, FWD)]
    _, ev, _ = run(segs, preset="eu-addw")
    (on,) = onsets(ev, "addw_warning")
    assert on.t == pytest.approx(4.0, abs=1 / 30 + 1e-6)
    # slowing below 20 km/h: idle
    segs = [Segment(1, FWD, speed_kmh=60), Segment(1, "infotainment"), Segment(5, "infotainment", speed_kmh=10),
            Segment(1, FWD)]
    _, ev, _ = run(segs, preset="eu-addw")
    assert not onsets(ev, "addw_warning")


def test_addw_idle_without_speed():
    _, ev, _ = run([Segment(1, FWD), Segment(8, "infotainment"), Segment(1, FWD)], preset="eu-addw")
    assert not onsets(ev, "addw_warning")


# --- availability: never attentive without a face ---------------------------------------------

def test_face_lost_and_found():
    segs = [Segment(2, FWD), Segment(3, face=False), Segment(2, FWD)]
    eng, ev, states = run(segs)
    nv = [e for e in ev if e.type == "driver_not_visible"]
    assert [e.phase for e in nv] == ["onset", "end"]
    assert nv[0].start == pytest.approx(2 - 1 / 30, abs=1e-6)  # last valid observation
    assert nv[0].t - nv[0].start == pytest.approx(2.0, abs=1 / 30 + 1e-6)
    assert nv[1].end == pytest.approx(5.0, abs=1e-6)
    # no state report while the face is missing is ATTENTIVE
    for s in states:
        if 2.0 <= s.t < 5.0:
            assert s.state in ("UNKNOWN", "DRIVER_NOT_VISIBLE")
    assert states[-1].state == "ATTENTIVE"


def test_every_faceless_frame_is_not_attentive():
    cfg = load_preset("euro-ncap-2023", ["calibration.mode=off", "status_every_s=0"])
    eng = DmsEngine(cfg)
    rng = np.random.default_rng(0)
    t = 0.0
    for _ in range(300):
        t += 1 / 30
        visible = bool(rng.random() < 0.5)
        eng.step(DmsInput(t=t, face_visible=visible, yaw=0.0 if visible else None, pitch=0.0 if visible else None))
        if not visible:
            assert eng.status().state not in ("ATTENTIVE", "OFF_ROAD", "DISTRACTED")


def test_short_face_dropout_does_not_split_a_glance():
    # 0.3 s without a face inside a 3.3 s glance (< max_gap 0.5 s): still one long glance
    segs = [Segment(1, FWD), Segment(1.5, "lap"), Segment(0.3, face=False), Segment(1.5, "lap"), Segment(1, FWD)]
    _, ev, _ = run(segs)
    assert len(onsets(ev, "long_distraction")) == 1


def test_long_face_dropout_is_unknown_not_offroad():
    # 1.5 s + 1.0 s unknown + 1.5 s: the unknown second is not off-road time, no 3 s glance
    segs = [Segment(1, FWD), Segment(1.5, "lap"), Segment(1.0, face=False), Segment(1.5, "lap"), Segment(1, FWD)]
    _, ev, _ = run(segs)
    assert not onsets(ev, "long_distraction")


def test_monitoring_unavailable_on_frame_stall():
    segs = [Segment(2, FWD), Segment(1.5, frames=False), Segment(2, FWD)]
    _, ev, _ = run(segs)
    mu = [e for e in ev if e.type == "monitoring_unavailable"]
    assert [e.phase for e in mu] == ["onset", "end"]
    assert mu[1].duration == pytest.approx(1.5 + 1 / 30, abs=1e-6)


# --- frame-rate robustness ------------------------------------------------------------------------

def test_frame_rate_drop_keeps_durations():
    # the same 3.1 s glance at 30 fps, then 5 fps: fires; at 5 fps 2.9 s: does not
    segs = [Segment(1, FWD), Segment(1.0, "infotainment", fps=30), Segment(2.1, "infotainment", fps=5), Segment(1, FWD, fps=5)]
    _, ev, _ = run(segs)
    (end,) = [e for e in ev if e.type == "long_distraction" and e.phase == "end"]
    assert end.duration == pytest.approx(3.1, abs=1e-6)
    segs = [Segment(1, FWD), Segment(1.0, "infotainment", fps=30), Segment(1.9, "infotainment", fps=5), Segment(1, FWD, fps=5)]
    _, ev, _ = run(segs)
    assert not onsets(ev, "long_distraction")


def test_frame_gap_longer_than_max_gap_is_unknown():
    # 30 fps -> 5 fps -> a 2 s gap -> 30 fps inside one off-road "glance": the gap splits it
    segs = [Segment(1, FWD), Segment(1.0, "lap", fps=30), Segment(1.0, "lap", fps=5), Segment(2.0, frames=False),
            Segment(1.5, "lap", fps=30), Segment(1, FWD)]
    _, ev, _ = run(segs)
    assert not onsets(ev, "long_distraction")  # 2.0 s + 1.5 s, never 3 s observed
    ends = [e for e in ev if e.phase == "end" and e.type == "monitoring_unavailable"]
    assert len(ends) == 1
    # the same timeline with the gap filled by frames is a 5.5 s glance
    segs[3] = Segment(2.0, "lap", fps=5)
    _, ev, _ = run(segs)
    (end,) = [e for e in ev if e.type == "long_distraction" and e.phase == "end"]
    assert end.duration == pytest.approx(5.5, abs=1e-6)


def test_vats_counts_unknown_time_as_neither():
    # 11 s "off-road" of which 2 s are a frame gap: 9 s observed off-road -> no VATS
    segs = [Segment(1, FWD), Segment(2.5, "lap"), Segment(0.5, FWD), Segment(2.0, "lap"), Segment(2.0, frames=False),
            Segment(2.0, "lap"), Segment(0.5, FWD), Segment(2.5, "lap"), Segment(1, FWD)]
    _, ev, _ = run(segs)
    assert not onsets(ev, "vats")


def test_out_of_order_frames_are_skipped():
    cfg = load_preset("euro-ncap-2023", ["calibration.mode=off"])
    eng = DmsEngine(cfg)
    eng.step(DmsInput(t=1.0, face_visible=True, yaw=0.0, pitch=0.0))
    assert eng.step(DmsInput(t=0.5, face_visible=True, yaw=0.0, pitch=0.0)) == []
    assert eng.t_frame == 1.0


# --- turn indicator ------------------------------------------------------------------------------

def test_indicator_makes_side_glances_legitimate():
    base = [Segment(1, FWD, speed_kmh=80), Segment(3.5, "left_mirror"), Segment(1, FWD)]
    _, ev, _ = run(base)
    assert onsets(ev, "long_distraction")
    signalled = [Segment(1, FWD, speed_kmh=80, indicator="left"), Segment(3.5, "left_mirror"), Segment(1, FWD, indicator="off")]
    _, ev, _ = run(signalled)
    assert not onsets(ev, "long_distraction")
    # the wrong side is not legitimate
    wrong = [Segment(1, FWD, indicator="right"), Segment(3.5, "left_mirror"), Segment(1, FWD)]
    _, ev, _ = run(wrong)
    assert onsets(ev, "long_distraction")
    # legitimacy can be switched off
    _, ev, _ = run(signalled, overrides=["indicator.enabled=false"])
    assert onsets(ev, "long_distraction")


def test_indicator_hold_after_switch_off():
    segs = [Segment(1, FWD, indicator="left"), Segment(0.5, FWD, indicator="off"), Segment(3.5, "left_mirror"), Segment(1, FWD)]
    _, ev, _ = run(segs, overrides=["indicator.hold_s=1.0"])
    assert onsets(ev, "long_distraction")  # the legitimacy expired 1.0 s after the indicator went off


# --- states ----------------------------------------------------------------------------------------

def test_state_sequence():
    eng, ev, states = run([Segment(1, FWD), Segment(3.5, "lap"), Segment(1, FWD)])
    seq = [s.state for s in states]
    assert seq[0] == "ATTENTIVE"
    assert "OFF_ROAD" in seq and "DISTRACTED" in seq
    assert seq.index("OFF_ROAD") < seq.index("DISTRACTED")
    assert seq[-1] == "ATTENTIVE"


def test_truncated_episode_closed_at_end():
    _, ev, _ = run([Segment(1, FWD), Segment(4, "lap")])
    ends = [e for e in ev if e.type == "long_distraction" and e.phase == "end"]
    assert len(ends) == 1 and ends[0].details.get("truncated")
