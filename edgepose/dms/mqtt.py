"""MQTT link for the DMS (paho-mqtt >= 2, extra ``mqtt``).

Topics under ``prefix`` (default ``edgepose/dms``):

* ``<prefix>/events`` - every event as JSON, QoS 1, not retained.
* ``<prefix>/status`` - the current state as JSON, QoS 1, **retained** (a late subscriber gets it).
* ``<prefix>/availability`` - ``online`` / ``offline``, retained; ``offline`` is also the
  **last will**, so the broker announces a monitor that died without disconnecting.
* ``<prefix>/cmd`` - commands in: ``recalibrate`` (plain or ``{"command": "recalibrate"}``).
* ``signals_topic`` (optional) - vehicle signals in: ``{"speed_kmh": 63.0, "indicator": "left"}``,
  optionally with ``t`` (seconds on the video clock); without ``t`` a message is stamped with the
  stream time of the latest frame.

Callbacks run on paho's network thread; commands are queued and applied on the frame thread.
"""
from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from ..errors import UserError, require

__all__ = ["MqttSettings", "MqttLink", "MqttError"]

log = logging.getLogger(__name__)


class MqttError(UserError):
    """The MQTT broker cannot be reached or rejected us."""


@dataclass
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "edgepose/dms"
    client_id: str = "edgepose-dms"
    keepalive: int = 10
    signals_topic: str | None = None
    username: str | None = None
    password: str | None = None
    # how long start-up waits for the first connection before going on without it (events queue)
    connect_timeout_s: float = 1.0

    @classmethod
    def from_url(cls, url: str, **kw) -> "MqttSettings":
        """``mqtt://[user:pass@]host[:port][/topic/prefix]``."""
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        if u.scheme not in ("mqtt", "tcp"):
            raise MqttError(f"MQTT URL {url!r}: use mqtt://host:port/prefix (TLS is not supported here)")
        try:
            port = u.port or 1883
        except ValueError:
            raise MqttError(f"MQTT URL {url!r}: the port is not a number") from None
        prefix = u.path.strip("/") or cls.prefix
        return cls(host=u.hostname or "127.0.0.1", port=port, prefix=prefix, username=u.username,
                   password=u.password, **kw)

    def topic(self, leaf: str) -> str:
        return f"{self.prefix}/{leaf}"


class MqttLink:
    """Publisher/subscriber that never blocks or stops the monitor (docs/dms.md, "When the broker is away").

    The connection is made in the background: a broker that is down at start, or goes away during the
    run, is (re)connected by paho's network thread with backoff (``reconnect_delay_s``, doubling).
    While the link is down, events wait in a bounded queue (``queue_size``; when it is full the
    oldest is dropped and counted) and only the newest status is kept; both are sent, in order, as
    soon as the broker accepts us again.  Drops and returns of the link are logged once each and
    counted in :meth:`stats`.  ``close()`` publishes ``offline`` and disconnects cleanly.
    """

    def __init__(self, settings: MqttSettings, on_signals=None, queue_size: int = 1000,
                 reconnect_delay_s: tuple[float, float] = (0.5, 8.0)):
        mqtt = require("paho.mqtt.client", "mqtt", "Publishing DMS events over MQTT")
        self._mqtt = mqtt
        self.s = settings
        self.commands: queue.Queue[str] = queue.Queue()
        self._on_signals = on_signals
        self._lock = threading.Lock()  # frame thread (publish) vs network thread (connect/disconnect)
        self._up = False
        self._pending: collections.deque[str] = collections.deque()
        self._queue_size = max(1, int(queue_size))
        self._status: str | None = None  # newest status while down (retained: only the last matters)
        self.connected = threading.Event()  # set while the broker accepts us (tests wait on it)
        self.published = self.dropped = self.disconnects = self.connects = 0
        self._down_since: float | None = time.monotonic()
        self._down_s = 0.0
        self._last_refusal: str | None = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv311)
        if settings.username:
            c.username_pw_set(settings.username, settings.password)
        c.will_set(settings.topic("availability"), "offline", qos=1, retain=True)
        c.reconnect_delay_set(*reconnect_delay_s)
        # safety net for the window before paho notices a dead link: never an unbounded backlog
        # (room for a flushed backlog plus the availability message, all awaiting their PUBACK)
        c.max_queued_messages_set(2 * self._queue_size + 16)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self.client = c
        c.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
        c.loop_start()  # connects, and reconnects, with backoff on paho's thread
        if not self.connected.wait(settings.connect_timeout_s):
            log.warning("MQTT broker %s:%d not reachable (%s); monitoring goes on, events are queued (at most %d) "
                        "and sent once it is", settings.host, settings.port,
                        self._last_refusal or f"no answer within {settings.connect_timeout_s:g} s", self._queue_size)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            msg = str(reason_code)
            if msg != self._last_refusal:  # once per distinct reason, not once per retry
                log.error("MQTT broker %s:%d refused the connection (%s); check the credentials in --mqtt; "
                          "retrying in the background", self.s.host, self.s.port, msg)
            self._last_refusal = msg
            return
        # (re)connect: announce and (re)subscribe - subscriptions do not survive a clean session
        client.publish(self.s.topic("availability"), "online", qos=1, retain=True)
        client.subscribe(self.s.topic("cmd"), qos=1)
        if self.s.signals_topic:
            client.subscribe(self.s.signals_topic, qos=0)
        with self._lock:
            self._up = True
            self.connects += 1
            down = 0.0
            if self._down_since is not None:
                down = time.monotonic() - self._down_since
                self._down_s += down
                self._down_since = None
            backlog, status = list(self._pending), self._status
            self._pending.clear()
            self._status = None
            for payload in backlog:  # in order, before anything newer
                self._send(self.s.topic("events"), payload, retain=False)
            if status is not None:
                self._send(self.s.topic("status"), status, retain=True)
        self._last_refusal = None
        if self.connects > 1:
            log.warning("MQTT link to %s:%d is back after %.1f s; %d queued events sent", self.s.host, self.s.port,
                        down, len(backlog))
        elif backlog:
            log.info("MQTT broker %s:%d reached; %d queued events sent", self.s.host, self.s.port, len(backlog))
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        with self._lock:
            was_up, self._up = self._up, False
            if was_up:
                self.disconnects += 1
                self._down_since = time.monotonic()
        self.connected.clear()
        if was_up and self.client is not None:  # not our own close()
            log.warning("MQTT link to %s:%d lost (%s); reconnecting in the background, events are queued",
                        self.s.host, self.s.port, reason_code)

    def _send(self, topic: str, payload: str, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
        else:
            self.published += 1

    def _publish(self, leaf: str, record: dict, retain: bool) -> None:
        payload = json.dumps(record, separators=(",", ":"))
        with self._lock:
            if self.client is None:
                return
            if self._up:
                self._send(self.s.topic(leaf), payload, retain)
            elif retain:
                self._status = payload
            else:
                if len(self._pending) >= self._queue_size:
                    self._pending.popleft()  # the oldest goes: the newest events matter most
                    self.dropped += 1
                self._pending.append(payload)

    def publish_event(self, record: dict) -> None:
        self._publish("events", record, retain=False)

    def publish_status(self, record: dict) -> None:
        self._publish("status", record, retain=True)

    def stats(self) -> dict:
        """What the link did: for the run summary."""
        with self._lock:
            down = self._down_s + (time.monotonic() - self._down_since if self._down_since is not None else 0.0)
            return {"broker": f"{self.s.host}:{self.s.port}", "connected": self._up,
                    "connected_ever": self.connects > 0, "disconnects": self.disconnects,
                    "events_published": self.published, "events_queued": len(self._pending),
                    "events_dropped": self.dropped, "down_s": round(down, 1)}

    def _on_message(self, client, userdata, msg):
        text = msg.payload.decode("utf-8", "replace").strip()
        if msg.topic == self.s.topic("cmd"):
            cmd = text
            if text.startswith("{"):
                try:
                    cmd = str(json.loads(text).get("command", ""))
                except (json.JSONDecodeError, AttributeError):
                    cmd = ""
            if cmd:
                self.commands.put(cmd)
            return
        if self.s.signals_topic and msg.topic == self.s.signals_topic and self._on_signals is not None:
            try:
                data = json.loads(text)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                self._on_signals(data)
            except (ValueError, TypeError) as exc:
                log.warning("ignored vehicle-signal message on %s: %s (%r)", msg.topic, exc, text[:80])

    def drain_commands(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.commands.get_nowait())
            except queue.Empty:
                return out

    def close(self, timeout_s: float = 2.0) -> None:
        """Clean shutdown: retained ``offline`` (the will is not sent on a clean disconnect); events still
        queued for a broker that never came back are counted as dropped (and logged)."""
        with self._lock:
            c, self.client = self.client, None
            up, left = self._up, len(self._pending)
            self.dropped += left
            self._pending.clear()
        if c is None:
            return
        if left:
            log.warning("MQTT: %d DMS events were never delivered (broker %s:%d unreachable at the end)", left,
                        self.s.host, self.s.port)
        if up:
            try:
                info = c.publish(self.s.topic("availability"), "offline", qos=1, retain=True)
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT: could not publish offline status: %s", exc)
        c.disconnect()
        c.loop_stop()
