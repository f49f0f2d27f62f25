"""DMS over MQTT against a real mosquitto broker started on loopback for this module."""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install 'edgepose[mqtt]')")

from edgepose.dms.mqtt import MqttError, MqttLink, MqttSettings  # noqa: E402
from edgepose.dms.observer import DmsObserver  # noqa: E402
from edgepose.dms.timeline import Script, Segment, synthesize  # noqa: E402
from edgepose.dms.zones import build_zones  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto)")
    d = tmp_path_factory.mktemp("mosquitto")
    port = _free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.skip(f"mosquitto exited: {proc.stdout.read().decode(errors='replace')[-400:]}")
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.skip("mosquitto did not start listening within 10 s")
    yield port
    proc.terminate()
    proc.wait(5)


class Listener:
    """A plain paho subscriber collecting (topic, payload, retain) tuples."""

    def __init__(self, port, topics, client_id, durable=False):
        """``durable``: a persistent session - QoS 1 messages published while it is away (or before it
        reconnects after a broker restart) are kept for it by the broker."""
        self.q: queue.Queue = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not durable)
        self.c.reconnect_delay_set(0.1, 0.5)
        subscribed = queue.Queue()
        self.c.on_message = lambda c, u, m: self.q.put((m.topic, m.payload.decode(), bool(m.retain)))
        self.c.on_subscribe = lambda *a: subscribed.put(True)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(t, 1) for t in topics])
        self.c.connect("127.0.0.1", port, 10)
        self.c.loop_start()
        subscribed.get(timeout=5)

    def collect(self, until, timeout=5.0):
        got, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(self.q.get(timeout=0.1))
            except queue.Empty:
                continue
            if until(got):
                break
        return got

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_events_status_retained_and_commands(broker, tmp_path):
    prefix = "test/dms1"
    lis = Listener(broker, [f"{prefix}/events", f"{prefix}/availability"], "lis1")
    obs = DmsObserver("euro-ncap-2023", events_out=tmp_path / "ev.jsonl",
                      mqtt=f"mqtt://127.0.0.1:{broker}/{prefix}", overrides=["calibration.mode=command"])
    frames, _ = synthesize(Script(15, 0, [Segment(1, "forward_road"), Segment(3.5, "lap"), Segment(1, "forward_road")]),
                           build_zones(obs.cfg))
    lines = []
    for f in frames:
        lines = obs.process(f)
    assert lines[0].startswith("DMS ATTENTIVE")
    got = lis.collect(lambda g: sum(t.endswith("/events") for t, _, _ in g) >= 2)
    ev = [json.loads(p) for t, p, _ in got if t.endswith("/events")]
    assert [(e["type"], e["phase"]) for e in ev] == [("long_distraction", "onset"), ("long_distraction", "end")]
    assert (f"{prefix}/availability", "online", False) in got or any(p == "online" for _, p, _ in got)

    # command topic: recalibrate is applied on the next frame
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cmd")
    pub.connect("127.0.0.1", broker, 10)
    pub.loop_start()
    pub.publish(f"{prefix}/cmd", json.dumps({"command": "recalibrate"}), qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    t = frames[-1].t
    while not obs.engine.calibrator.collecting and time.monotonic() < deadline:
        t += 1 / 15
        obs.process(type(frames[-1])(t=t, face_visible=True, R=frames[-1].R))
        time.sleep(0.02)
    assert obs.engine.calibrator.collecting
    pub.disconnect()
    pub.loop_stop()

    # a late subscriber gets the retained status
    late = Listener(broker, [f"{prefix}/status"], "late")
    (topic, payload, retained), = late.collect(lambda g: len(g) >= 1)
    st = json.loads(payload)
    assert retained and st["record"] == "state" and st["state"] in ("ATTENTIVE", "OFF_ROAD")
    late.close()

    obs.close()  # clean close publishes a retained "offline"
    got = lis.collect(lambda g: any(p == "offline" for _, p, _ in g))
    assert any(t.endswith("/availability") and p == "offline" for t, p, _ in got)
    lis.close()
    # the JSONL sink saw the same events
    lines = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines if x["record"] == "event"][:2] == ["long_distraction", "long_distraction"]


def test_last_will_fires_when_publisher_dies(broker):
    prefix = "test/dms-will"
    lis = Listener(broker, [f"{prefix}/availability"], "lis-will")
    code = (
        "import sys, time\n"
        "from edgepose.dms.mqtt import MqttLink, MqttSettings\n"
        f"link = MqttLink(MqttSettings(port={broker}, prefix='{prefix}', client_id='victim', keepalive=60))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(REPO))
    try:
        assert proc.stdout.readline().strip() == b"ready"
        got = lis.collect(lambda g: any(p == "online" for _, p, _ in g))
        assert any(p == "online" for _, p, _ in got)
        os.kill(proc.pid, signal.SIGKILL)  # no DISCONNECT packet: the broker must send the will
        proc.wait(5)
        got = lis.collect(lambda g: any(p == "offline" for _, p, _ in g), timeout=10)
        assert any(t == f"{prefix}/availability" and p == "offline" for t, p, _ in got)
    finally:
        if proc.poll() is None:
            proc.kill()
        lis.close()
    # the will was retained: a late subscriber learns the monitor is offline
    late = Listener(broker, [f"{prefix}/availability"], "late-will")
    got = late.collect(lambda g: len(g) >= 1)
    late.close()
    assert got and got[0][1] == "offline" and got[0][2]


def test_live_vehicle_signals_topic(broker):
    prefix = "test/dms-sig"
    settings = MqttSettings(port=broker, prefix=prefix, client_id="dms-sig", signals_topic="test/vehicle")
    obs = DmsObserver("eu-addw", mqtt=settings, overrides=["calibration.mode=off"])
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="car")
    pub.connect("127.0.0.1", broker, 10)
    pub.loop_start()
    try:
        frames, _ = synthesize(Script(15, 0, [Segment(1, "forward_road"), Segment(4, "infotainment"),
                                               Segment(1, "forward_road")]), build_zones(obs.cfg))
        pub.publish("test/vehicle", json.dumps({"speed_kmh": 70, "t": 0.0}), qos=1).wait_for_publish(5)
        pub.publish("test/vehicle", json.dumps({"speed_kmh": 70, "t": 3.0}), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while obs.engine.signals.at(3.0)[0] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        for f in frames:
            obs.process(f)
        assert obs.counts["addw_warning"] == 1  # 70 km/h -> 3 s band; a 4 s glance warns
    finally:
        pub.disconnect()
        pub.loop_stop()
        obs.close()


def test_bad_mqtt_url_is_a_clear_error():
    with pytest.raises(MqttError, match="port"):
        MqttSettings.from_url("mqtt://localhost:notaport/x")


class Mosquitto:
    """A mosquitto we can start, kill and restart on one port; with persistence, so a subscriber's
    session (clean_session=False) and its queued QoS 1 messages survive a restart."""

    def __init__(self, d: Path, port: int):
        if MOSQUITTO is None:
            pytest.skip("mosquitto binary not found (apt-get install mosquitto)")
        self.port, self.proc = port, None
        self.conf = d / "mosquitto.conf"
        # started as root, mosquitto drops to its own user, which cannot write pytest's 0700 tmp folders
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {d}/\nautosave_interval 0\nautosave_on_changes true\n")

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    pytest.skip(f"mosquitto exited: {self.proc.stdout.read().decode(errors='replace')[-400:]}")
                time.sleep(0.05)
        pytest.skip("mosquitto did not start listening within 10 s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(5)
        self.proc = None


def _events(got):
    return [json.loads(p) for t, p, _ in got if t.endswith("/events")]


def test_link_outlives_the_broker(tmp_path):
    """No broker at start, a broker later, the broker killed mid-run and back: every event arrives, in
    order; a full queue drops the oldest and counts it (issue 16, item 4)."""
    from edgepose.dms.events import Event

    port, prefix = _free_port(), "test/outage"
    broker = Mosquitto(tmp_path, port)
    broker.start()  # only to create the subscriber's persistent session, then gone before the link starts
    Listener(port, [f"{prefix}/events"], "durable", durable=True).close()
    broker.stop()

    def ev(i):
        return Event("long_distraction", "onset", float(i), float(i), None, 0.0, "lap", None, 2, {}).to_dict()

    link = MqttLink(MqttSettings(port=port, prefix=prefix, connect_timeout_s=0.2), queue_size=4,
                    reconnect_delay_s=(0.1, 0.4))
    try:
        assert not link.connected.is_set()
        for i in range(6):  # broker down: 6 events into a queue of 4 -> events 0 and 1 are dropped
            link.publish_event(ev(i))
        assert link.stats()["events_dropped"] == 2 and link.stats()["events_queued"] == 4
        broker.start()
        assert link.connected.wait(10), "the link did not connect once the broker started"
        link.publish_event(ev(6))
        lis = Listener(port, [f"{prefix}/events"], "durable", durable=True)
        got = lis.collect(lambda g: len(_events(g)) >= 5)
        assert [e["t"] for e in _events(got)] == [2.0, 3.0, 4.0, 5.0, 6.0]

        broker.stop(signal.SIGKILL)  # mid-run crash: the link notices, the monitor goes on
        deadline = time.monotonic() + 10
        while link.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not link.connected.is_set()
        for i in (7, 8):
            link.publish_event(ev(i))
        broker.start()
        assert link.connected.wait(10), "the link did not come back with the broker"
        got = lis.collect(lambda g: len(_events(g)) >= 2, timeout=10)
        lis.close()
        assert [e["t"] for e in _events(got)] == [7.0, 8.0]
        st = link.stats()
        assert st["disconnects"] == 1 and st["events_dropped"] == 2 and st["events_queued"] == 0
        assert st["connected"] and st["events_published"] >= 7
    finally:
        link.close()
        broker.stop()


def test_edgepose_run_publishes_and_closes_the_link(broker, tmp_path):
    """`edgepose run --dms --mqtt` end to end (shipped model, Haar, a faceless test pattern), and a run
    whose model fails to load after the link is up still leaves a retained `offline` behind."""
    from edgepose.cli.main import main as cli

    prefix = "test/run"
    lis = Listener(broker, [f"{prefix}/events", f"{prefix}/availability"], "lis-run")
    url = f"mqtt://127.0.0.1:{broker}/{prefix}"
    rc = cli(["run", "test://ball?width=320&height=240&fps=30&num=45", "--detector", "haar", "--quiet",
              "--threads", "1", "--dms", "euro-ncap-2023", "--dms-set", "availability.not_visible_after_s=1.0",
              "--mqtt", url, "--dms-events", str(tmp_path / "ev.jsonl")])
    assert rc == 0
    got = lis.collect(lambda g: any(p == "offline" for _, p, _ in g))
    ev = [json.loads(p) for t, p, _ in got if t.endswith("/events")]
    assert ("driver_not_visible", "onset") in [(e["type"], e["phase"]) for e in ev]
    assert [p for t, p, _ in got if t.endswith("/availability")][-1] == "offline"
    lis.close()

    prefix = "test/run-fail"
    rc = cli(["run", "test://ball?num=3", "--model", str(tmp_path / "missing.onnx"), "--quiet",
              "--dms", "euro-ncap-2023", "--mqtt", f"mqtt://127.0.0.1:{broker}/{prefix}"])
    assert rc == 2
    late = Listener(broker, [f"{prefix}/availability"], "late-fail")
    (_, payload, retained), = late.collect(lambda g: len(g) >= 1)
    late.close()
    assert retained and payload == "offline"  # not a stale retained "online"


def test_watchdog_replaces_the_retained_status_during_a_stall(broker):
    from edgepose.dms.inputs import DmsInput

    prefix = "test/dms-stall"
    obs = DmsObserver("euro-ncap-2023", mqtt=f"mqtt://127.0.0.1:{broker}/{prefix}", live_watchdog=True,
                      overrides=["calibration.mode=off", "availability.unavailable_after_s=0.3"])
    for i in range(10):
        obs.process(DmsInput(t=i / 30, face_visible=True, R=np.eye(3)))
    time.sleep(1.0)  # no frames: the watchdog fires while the stall lasts
    late = Listener(broker, [f"{prefix}/status"], "late-stall")
    (_, payload, retained), = late.collect(lambda g: len(g) >= 1)
    assert retained and json.loads(payload)["state"] == "UNAVAILABLE"
    # frames are back: the subscriber (still connected) must get a fresh status. Not a second late
    # subscriber: with no frames after this one the watchdog fires again 0.3 s later, and on a slow
    # machine a late joiner would see that second UNAVAILABLE instead
    obs.process(DmsInput(t=2.0, face_visible=True, R=np.eye(3)))
    got = late.collect(lambda g: json.loads(g[-1][1])["state"] != "UNAVAILABLE")
    late.close()
    assert got and json.loads(got[-1][1])["state"] == "ATTENTIVE", [json.loads(p)["state"] for _, p, _ in got]
    obs.close()


@pytest.mark.slow  # ~14 s: waits out the link's reconnect backoff
def test_edgepose_run_starts_without_a_broker(tmp_path):
    """`edgepose run --dms --mqtt` with nothing listening starts anyway (it exited 2), and the events it
    queued arrive once mosquitto starts on that port; SIGTERM then ends it with rc 0, the events file
    complete and the summary reporting the outage (issue 16, item 4)."""
    port, prefix = _free_port(), "test/late-broker"
    broker = Mosquitto(tmp_path, port)
    broker.start()  # the subscriber's persistent session only; the broker is gone before the run
    Listener(port, [f"{prefix}/events", f"{prefix}/availability"], "late-sub", durable=True).close()
    broker.stop()
    events, jsonl = tmp_path / "ev.jsonl", tmp_path / "run.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgepose.cli.main", "run", "test://ball?width=160&height=120&fps=15&live=1",
         "--detector", "haar", "--quiet", "--threads", "1", "--jsonl", str(jsonl), "--dms", "euro-ncap-2023",
         "--dms-set", "availability.not_visible_after_s=0.5", "--mqtt", f"mqtt://127.0.0.1:{port}/{prefix}",
         "--dms-events", str(events)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180  # model loading on a busy machine
        while not (events.exists() and "driver_not_visible" in events.read_text()):
            assert proc.poll() is None, f"edgepose run exited {proc.returncode}: {proc.stderr.read()[-800:]}"
            assert time.monotonic() < deadline, "no driver_not_visible onset within 180 s"
            time.sleep(0.1)
        broker.start()
        lis = Listener(port, [f"{prefix}/events", f"{prefix}/availability"], "late-sub", durable=True)
        got = lis.collect(lambda g: any(e["type"] == "driver_not_visible" for e in _events(g)), timeout=20)
        assert ("driver_not_visible", "onset") in [(e["type"], e["phase"]) for e in _events(got)]
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
        assert proc.returncode == 0, err[-800:]
        got += lis.collect(lambda g: any(p == "offline" for _, p, _ in g))
        lis.close()
        assert ("driver_not_visible", "end") in [(e["type"], e["phase"]) for e in _events(got)]
        assert [p for t, p, _ in got if t.endswith("/availability")][-1] == "offline"
        summary = json.loads(jsonl.read_text().splitlines()[-1])
        link = summary["dms"]["mqtt"]
        assert link["connected_ever"] and link["events_dropped"] == 0 and link["down_s"] > 0
        assert "not reachable" in err
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KB tmpfs: real writes there fail with ENOSPC once it is full."""
    d = tmp_path / "full"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN): {r.stderr.strip()[:200]}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_full_disk_stops_the_recording_not_the_monitor(broker, full_disk, tmp_path, data_file):
    """--output and --jsonl on a disk that fills up mid-run: both stop (logged, in the summary), every
    frame is still processed, the DMS events file elsewhere and MQTT keep flowing, rc 0 (issue 16)."""
    from edgepose.cli.main import main as cli

    # 640x360: the first 1 s fragment of the H.264 recording (frame ~30) outgrows 64 KB
    clip = data_file("videos/single_face.mp4")
    n = 48
    prefix = "test/full-disk"
    lis = Listener(broker, [f"{prefix}/status", f"{prefix}/availability"], "lis-full")
    stats, events = tmp_path / "stats.json", tmp_path / "ev.jsonl"
    rc = cli(["run", str(clip), "--max-frames", str(n), "--every", "6", "--detector", "haar", "--quiet", "--output",
              str(full_disk / "out.mp4"), "--jsonl", str(full_disk / "run.jsonl"), "--stats", str(stats),
              "--dms", "euro-ncap-2023", "--dms-states", "--dms-events", str(events),
              "--mqtt", f"mqtt://127.0.0.1:{broker}/{prefix}"])
    assert rc == 0
    got = lis.collect(lambda g: any(p == "offline" for _, p, _ in g))
    lis.close()
    summary = json.loads(stats.read_text())
    assert summary["frames"] == n  # detection, pose and the DMS saw every frame
    failed = {f["sink"]: f for f in summary["sink_failures"]}
    assert set(failed) == {"video", "jsonl"}, summary["sink_failures"]
    assert all(f["error"] and f["at"] for f in failed.values())
    assert 0 < failed["video"]["frame"] < n - 8 and summary["frames_written"] < n - 8
    # the events file (another disk) has the DMS states up to the end; MQTT got the statuses
    states = [json.loads(line) for line in events.read_text().splitlines()]
    assert summary["dms"]["frames"] == n and states[-1]["t"] - states[0]["t"] >= (n - 2) / 30
    assert sum(t.endswith("/status") for t, _, _ in got) >= 2


def test_full_disk_stops_the_events_file_not_the_dms(broker, full_disk):
    """The events file on a full disk: that file stops (once, in the summary), MQTT keeps the events."""
    from edgepose.dms.inputs import DmsInput

    with pytest.raises(OSError), open(full_disk / "filler", "wb", buffering=0) as fh:
        while True:  # fill the disk to the last byte
            fh.write(b"\0" * 4096)
    prefix = "test/events-full"
    lis = Listener(broker, [f"{prefix}/status"], "lis-ev-full")
    obs = DmsObserver("euro-ncap-2023", events_out=full_disk / "ev.jsonl", write_states=True,
                      mqtt=f"mqtt://127.0.0.1:{broker}/{prefix}", overrides=["calibration.mode=off"])
    for i in range(300):
        obs.process(DmsInput(t=i / 30, face_visible=True, R=np.eye(3)))
    got = lis.collect(lambda g: len(g) >= 3)
    obs.close()
    lis.close()
    failed = obs.summary()["events_file_failed"]
    assert failed["sink"] == "dms-events" and failed["error"]
    assert obs.summary()["frames"] == 300 and len(got) >= 3
