"""DMS inputs and outputs: run-JSONL and FrameResult adapters, vehicle-signal files, the observer,
the `edgepose dms` CLI and its error messages."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgepose import geometry
from edgepose.cli.main import main
from edgepose.dms.config import DmsConfigError
from edgepose.dms.events import JsonlSink
from edgepose.dms.inputs import from_frame_result, from_run_record, read_run_jsonl
from edgepose.dms.observer import DmsObserver
from edgepose.dms.signals import VehicleSignals
from edgepose.errors import DataError
from spawn_helpers import wait_until

SCRIPT = """
fps: 30
segments:
  - {duration_s: 6, zone: forward_road, speed_kmh: 65}
  - {duration_s: 3.4, zone: infotainment}
  - {duration_s: 3, zone: forward_road}
  - {duration_s: 2.5, face: false}
  - {duration_s: 2, zone: forward_road}
"""


def test_signals_csv_and_jsonl(tmp_path):
    f = tmp_path / "sig.csv"
    f.write_text("t,speed_kmh,indicator\n0.0,10,off\n2.0,55.5,\n4.0,,left\n1.0,30,\n")  # unsorted row
    s = VehicleSignals.from_file(f, stale_after_s=None)
    assert s.at(-1) == (None, None)
    assert s.at(0.5) == (10.0, "off")
    assert s.at(1.5) == (30.0, "off")  # sample and hold
    assert s.at(3.0) == (55.5, "off")
    assert s.at(100) == (55.5, "left")
    j = tmp_path / "sig.jsonl"
    j.write_text('{"pts_ns": 1000000000, "speed_kmh": 42}\n\n{"t": 3, "indicator": "R"}\n')
    s = VehicleSignals.from_file(j, stale_after_s=1.5)
    assert s.at(1.2) == (42.0, None)
    assert s.at(2.9) == (None, None)  # stale
    assert s.at(3.1) == (None, "right")


@pytest.mark.parametrize("content,suffix,msg", [
    ("speed_kmh\n10\n", ".csv", "time column"),
    ("t,speed_kmh\n0,fast\n", ".csv", ":2:"),
    ("t,speed_kmh\n0,-5\n", ".csv", ">= 0"),
    ("t,indicator\n0,up\n", ".csv", "left/right/off"),
    ('{"t": 0, "speed_kmh": 3}\n{oops\n', ".jsonl", ":2:"),
    ('{"speed_kmh": 3}\n', ".jsonl", "no time"),
    ("t\n0\n", ".csv", "no speed_kmh or indicator"),
    ("x", ".xlsx", ".jsonl or .csv"),
])
def test_signals_file_errors(tmp_path, content, suffix, msg):
    f = tmp_path / f"sig{suffix}"
    f.write_text(content)
    with pytest.raises(DmsConfigError, match=msg):
        VehicleSignals.from_file(f)


def test_run_record_adapter_variants():
    R = geometry.euler_to_matrix([5.0, -20.0, 3.0])
    a = from_run_record({"pts_ns": 1_500_000_000, "faces": [{"box": [0, 0, 10, 10], "R": R.tolist(), "is_driver": True}]})
    assert a.t == 1.5 and a.face_visible and np.allclose(a.R, R)
    b = from_run_record({"t": 2.0, "faces": [{"box": [0, 0, 10, 10], "euler": {"pitch": 5, "yaw": -20, "roll": 3}}]})
    assert b.yaw == -20 and b.pitch == 5 and b.R is None and b.has_pose
    c = from_run_record({"pts_ns": 0, "faces": [{"box": [0, 0, 10, 10], "yaw": 1, "pitch": 2, "is_driver": False},
                                                {"box": [0, 0, 50, 50], "yaw": 9, "pitch": 8, "is_driver": False}]})
    assert not c.face_visible  # the runtime said no face is the driver
    d = from_run_record({"pts_ns": 0, "faces": [{"box": [0, 0, 10, 10], "yaw": 1, "pitch": 2},
                                                {"box": [0, 0, 50, 50], "yaw": 9, "pitch": 8}]})
    assert d.yaw == 9  # no driver flag: the largest face
    assert not from_run_record({"pts_ns": 0, "faces": []}).face_visible
    assert from_run_record({"type": "meta", "model": "x"}) is None


def test_frame_result_adapter():
    R = geometry.euler_to_matrix([0.0, 30.0, 0.0])
    face = SimpleNamespace(track_id=3, box=(10, 10, 90, 90), score=0.8, R=R, euler=np.array([0.0, 30.0, 0.0]),
                           R_vehicle=None, is_driver=True)
    passenger = SimpleNamespace(track_id=4, box=(0, 0, 200, 200), score=0.9, R=np.eye(3), euler=np.zeros(3),
                                R_vehicle=None, is_driver=False)
    inp = from_frame_result(SimpleNamespace(pts_ns=2_000_000_000, faces=[passenger, face], timings={}))
    assert inp.t == 2.0 and inp.track_id == 3 and np.allclose(inp.R, R) and inp.yaw == 30.0
    assert not from_frame_result(SimpleNamespace(pts_ns=1, faces=[])).face_visible


def test_runtime_vehicle_pose_used_without_mount():
    from edgepose.dms.config import load_preset
    from edgepose.dms.engine import DmsEngine
    from edgepose.dms.inputs import DmsInput
    from edgepose.dms.mount import CameraMount

    cfg = load_preset("euro-ncap-2023", ["calibration.mode=off"])
    Rv = geometry.euler_to_matrix([0.0, 50.0, 0.0])
    inp = DmsInput(t=0, face_visible=True, R=np.eye(3), R_vehicle=Rv)
    assert np.allclose(DmsEngine(cfg).vehicle_pose(inp), Rv)  # the runtime's vehicle frame
    m = CameraMount.from_road_pose(yaw=10)
    assert np.allclose(DmsEngine(cfg, mount=m).vehicle_pose(inp), m.to_vehicle(np.eye(3)))  # own mount wins


def test_read_run_jsonl_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list(read_run_jsonl(tmp_path / "none.jsonl"))
    f = tmp_path / "bad.jsonl"
    f.write_text('{"pts_ns": 0, "faces": []}\nnot json\n{"pts_ns": 2, "faces": []}\n')
    with pytest.raises(DataError, match=":2:"):
        list(read_run_jsonl(f))
    f.write_text('{"hello": 1}\n')
    with pytest.raises(DataError, match="no frame records"):
        list(read_run_jsonl(f))
    # a recording killed mid-line: the complete lines are used
    f.write_text('{"pts_ns": 0, "faces": []}\n{"pts_ns": 1000, "fa')
    assert len(list(read_run_jsonl(f))) == 1


def test_cli_simulate_replay_roundtrip(tmp_path, capsys):
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    run, sig, ev = tmp_path / "run.jsonl", tmp_path / "sig.csv", tmp_path / "events.jsonl"
    mount = tmp_path / "mount.yaml"
    mount.write_text("road_pose_deg: [15, 25, 0]\n")
    assert main(["dms", "simulate", str(script), "--out", str(run), "--signals-out", str(sig), "--mount", str(mount)]) == 0
    assert main(["dms", "replay", str(run), "--preset", "eu-addw", "--signals", str(sig), "--mount", str(mount),
                 "--events", str(ev), "--states"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"].get("addw_warning") == 1 and summary["events"].get("driver_not_visible") == 1
    recs = [json.loads(x) for x in ev.read_text().splitlines()]
    kinds = {r["record"] for r in recs}
    assert kinds == {"event", "state"}
    addw = [r for r in recs if r.get("type") == "addw_warning"]
    assert addw[0]["zone"] == "infotainment" and addw[0]["speed_kmh"] == 65.0
    assert addw[1]["duration"] == pytest.approx(3.4, abs=1e-3)
    for r in recs:
        if r["record"] == "state" and r["state"] == "ATTENTIVE":
            assert r["zone"] == "forward_road"
    # without the mount the same recording is read in the camera frame: no longer "forward_road" at rest
    ev2 = tmp_path / "events2.jsonl"
    assert main(["dms", "replay", str(run), "--preset", "eu-addw", "--events", str(ev2), "--states",
                 "--set", "calibration.mode=off"]) == 0
    states = [json.loads(x) for x in ev2.read_text().splitlines() if '"state"' in x]
    assert states[0]["zone"] != "forward_road"


@pytest.mark.parametrize("argv,msg", [
    (["dms", "replay", "/nonexistent/run.jsonl"], "run JSONL not found"),
    (["dms", "replay", "RUN", "--preset", "nope"], "DMS preset not found"),
    (["dms", "replay", "RUN", "--signals", "/nonexistent.csv"], "vehicle signals file not found"),
    (["dms", "replay", "RUN", "--set", "vats.window_s=5"], "window_s"),
    (["dms", "replay", "RUN", "--events", "/nonexistent/dir/ev.jsonl"], "does not exist"),
    (["dms", "zones", "--preset", "euro-ncap-2023", "--set", "addw.bands=[{min_kmh: 50, max_kmh: 20}]"], "max_kmh"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, msg):
    run = tmp_path / "run.jsonl"
    run.write_text('{"pts_ns": 0, "faces": []}\n')
    argv = [str(run) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and "Traceback" not in err


def test_observer_flushes_events_before_close(tmp_path):
    from edgepose.dms.timeline import Script, Segment, synthesize
    from edgepose.dms.zones import build_zones

    out = tmp_path / "ev.jsonl"
    obs = DmsObserver("euro-ncap-2023", events_out=out, overrides=["calibration.mode=off"])
    frames, _ = synthesize(Script(30, 0, [Segment(1, "forward_road"), Segment(4, "lap")]), build_zones(obs.cfg))
    for f in frames:
        lines = obs.process(f)
    assert any(line.startswith("WARNING long_distraction") for line in lines)
    # the onset is on disk while the run is still going (Ctrl-C keeps it)
    assert '"long_distraction"' in out.read_text()
    obs.close()
    last = json.loads(out.read_text().splitlines()[-1])
    assert last["phase"] == "end" and last["details"]["truncated"] is True


def test_jsonl_sink_stdout(capsys):
    sink = JsonlSink("-")
    sink.write({"a": 1})
    sink.close()
    assert capsys.readouterr().out == '{"a":1}\n'


def test_real_runtime_frame_result_and_jsonl_record():
    """The adapters against the runtime's own FrameResult and the pipeline's JSONL face record."""
    frame = pytest.importorskip("edgepose.runtime.frame", reason="edgepose.runtime not available")
    R = geometry.euler_to_matrix([-4.0, 25.0, 1.0])
    driver = frame.FaceResult(track_id=2, box=(50, 40, 150, 160), score=0.95, R=R,
                              euler=geometry.matrix_to_euler(R), is_driver=True, valid=True)
    other = frame.FaceResult(track_id=5, box=(300, 40, 420, 180), score=0.9, R=np.eye(3), euler=np.zeros(3),
                             is_driver=False, valid=True)
    fr = frame.FrameResult(pts_ns=3_000_000_000, faces=[other, driver])
    inp = from_frame_result(fr)
    assert inp.t == 3.0 and inp.track_id == 2 and np.allclose(inp.R, R)
    # a detected driver without a finite pose is not a valid observation
    bad = frame.FaceResult(track_id=2, box=(50, 40, 150, 160), score=0.95, R=np.full((3, 3), np.nan),
                           euler=np.full(3, np.nan), is_driver=True, valid=False)
    assert not from_frame_result(frame.FrameResult(pts_ns=1, faces=[bad])).has_pose
    # the same through the JSON record layouts (FrameResult.to_dict and the pipeline writer)
    rec = fr.to_dict()
    assert np.allclose(from_run_record(json.loads(json.dumps(rec))).R, R, atol=1e-5)
    jsonl = pytest.importorskip("edgepose.pipelines.jsonl", reason="edgepose.pipelines not available")
    rec = {"type": "frame", "frame": 0, "pts_ns": 5, "faces": [jsonl.face_record(other), jsonl.face_record(driver)]}
    assert np.allclose(from_run_record(json.loads(json.dumps(rec))).R, R, atol=1e-5)
    bad_rec = json.loads(json.dumps({"type": "frame", "pts_ns": 5, "faces": [bad.to_dict()]}))
    assert not from_run_record(bad_rec).has_pose


# -- packaged presets -------------------------------------------------------------------------------
_RESOLVE = """
import json, sys
from pathlib import Path
import edgepose
from edgepose.dms.config import load_preset, resolve_preset_path, shipped_presets
pkg = Path(edgepose.__file__).resolve().parent
out = {}
for name in shipped_presets():
    path = resolve_preset_path(name).resolve()
    assert pkg in path.parents, (path, pkg)   # inside the installed package, not a repo folder
    cfg = load_preset(name)                   # also finds its zones_file next to it
    out[name] = [cfg.name, len(cfg.zones)]
print(json.dumps({"package": str(pkg), "presets": out}))
"""


def _resolve_presets_in(cwd, pythonpath: str | None = None) -> tuple[str, dict]:
    """(the edgepose package folder, {preset: [name, zones]}) as a fresh interpreter in ``cwd`` sees them."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([sys.executable, "-c", _RESOLVE], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return got["package"], got["presets"]


def test_shipped_presets_resolve_by_name_from_any_directory(tmp_path):
    _, got = _resolve_presets_in(tmp_path)  # no configs/ folder in sight
    assert got == {"eu-addw": ["eu-addw", 9], "euro-ncap-2023": ["euro-ncap-2023", 9]}
    with pytest.raises(DmsConfigError, match="euro-ncap-2023"):  # the error lists what ships
        from edgepose.dms.config import resolve_preset_path

        resolve_preset_path("no-such-preset")


def test_wheel_ships_the_presets(tmp_path, repo_root):
    """A real (non-editable) wheel, unpacked away from the repo, resolves every preset by name."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"  # build from a copy: an in-tree build would leave build/ in the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, src / name)
    for folder in ("edgepose", "quantize", "pipelines", "benchmarks", "jetson"):
        shutil.copytree(repo_root / folder, src / folder, ignore=ignore, symlinks=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("edgepose-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in ("euro-ncap-2023.yaml", "eu-addw.yaml", "zones-lhd.yaml", "mount-example.yaml"):
            assert f"edgepose/dms/presets/{f}" in names, f
        z.extractall(tmp_path / "site")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    pkg, got = _resolve_presets_in(elsewhere, pythonpath=str(tmp_path / "site"))
    assert Path(pkg) == (tmp_path / "site" / "edgepose").resolve()  # the wheel's copy, not the checkout
    assert set(got) == {"eu-addw", "euro-ncap-2023"}


# -- the live watchdog ------------------------------------------------------------------------------
def _records(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_live_watchdog_reports_a_stall_while_it_lasts(tmp_path):
    from edgepose.dms.inputs import DmsInput

    out = tmp_path / "ev.jsonl"
    obs = DmsObserver("euro-ncap-2023", events_out=out, write_states=True, live_watchdog=True,
                      overrides=["calibration.mode=off", "availability.unavailable_after_s=0.3"])
    R = np.eye(3)
    for i in range(10):  # 10 frames at 30 fps, looking at the road
        obs.process(DmsInput(t=i / 30, face_visible=True, R=R))

    def unavailable():
        return [r for r in _records(out) if r.get("type") == "monitoring_unavailable"]

    # the camera stalls: the onset is on disk while no frame has come back yet
    assert wait_until(lambda: unavailable(), 3.0, poll_s=0.02), _records(out)
    onset, = unavailable()
    assert onset["phase"] == "onset" and onset["details"]["wall_clock"] is True
    assert onset["start"] == pytest.approx(9 / 30, abs=1e-3) and onset["duration"] >= 0.3
    assert _records(out)[-1]["record"] == "state" and _records(out)[-1]["state"] == "UNAVAILABLE"
    # a frame 1.5 s later on the stream clock: one end, no second (after-the-fact) onset
    lines = obs.process(DmsInput(t=9 / 30 + 1.5, face_visible=True, R=R))
    ev = unavailable()
    assert [e["phase"] for e in ev] == ["onset", "end"]
    assert ev[1]["start"] == onset["start"] and ev[1]["end"] == pytest.approx(9 / 30 + 1.5, abs=1e-3)
    assert _records(out)[-1]["state"] != "UNAVAILABLE" and not lines[0].startswith("DMS UNAVAILABLE")
    obs.close()
    obs.close()  # idempotent: run_pipeline and `edgepose run` both close
    assert [e["phase"] for e in unavailable()] == ["onset", "end"]


def test_watchdog_waits_for_the_first_frame_and_stays_off_by_default(tmp_path):
    import time

    out = tmp_path / "ev.jsonl"
    armed = DmsObserver("euro-ncap-2023", events_out=out, live_watchdog=True,
                        overrides=["availability.unavailable_after_s=0.2"])
    time.sleep(0.5)  # model loading, camera start-up: no frame yet is no stall
    armed.close()
    assert out.read_text() == ""
    from edgepose.dms.inputs import DmsInput

    off = DmsObserver("euro-ncap-2023", events_out=out, overrides=["availability.unavailable_after_s=0.2"])
    off.process(DmsInput(t=0.0, face_visible=True, R=np.eye(3)))
    time.sleep(0.5)  # files and replays: no wall-clock watchdog
    assert "monitoring_unavailable" not in out.read_text()
    off.close()


def test_live_signals_keep_bounded_history():
    """A live MQTT feed runs for days: only the last LIVE_HISTORY_S seconds are kept (issue 16)."""
    from edgepose.dms.signals import LIVE_HISTORY_S

    s = VehicleSignals(stale_after_s=1.0)
    for i in range(20000):  # 10 Hz for 2000 s
        s.add_message({"speed_kmh": float(i % 130), "indicator": "left" if i % 2 else "off"}, default_t=i / 10)
    assert len(s._speed.t) <= 2 * 256 + LIVE_HISTORY_S * 10 + 1
    assert s.at(19999 / 10) == (float(19999 % 130), "left")
    assert s.at(19999 / 10 - 30) == (float((19999 - 300) % 130), "left")
