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

    def __init__(self, port, topics, client_id):
        self.q: queue.Queue = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
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


def test_unreachable_broker_is_a_clear_error():
    port = _free_port()  # nothing listens here
    with pytest.raises(MqttError, match=f"127.0.0.1:{port}"):
        MqttLink(MqttSettings(port=port, connect_timeout_s=1.0))
    with pytest.raises(MqttError, match="port"):
        MqttSettings.from_url("mqtt://localhost:notaport/x")


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
