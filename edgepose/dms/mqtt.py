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

import json
import logging
import queue
import threading
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
    connect_timeout_s: float = 5.0

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
    """Connected publisher/subscriber; ``close()`` publishes ``offline`` and disconnects cleanly."""

    def __init__(self, settings: MqttSettings, on_signals=None):
        mqtt = require("paho.mqtt.client", "mqtt", "Publishing DMS events over MQTT")
        self.s = settings
        self.commands: queue.Queue[str] = queue.Queue()
        self._on_signals = on_signals
        self._connected = threading.Event()
        self._refused: str | None = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv311)
        if settings.username:
            c.username_pw_set(settings.username, settings.password)
        c.will_set(settings.topic("availability"), "offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        self.client = c
        try:
            c.connect(settings.host, settings.port, keepalive=settings.keepalive)
        except OSError as exc:
            raise MqttError(f"cannot connect to the MQTT broker at {settings.host}:{settings.port} ({exc}); "
                            "start the broker or fix --mqtt mqtt://HOST:PORT") from None
        c.loop_start()
        if not self._connected.wait(settings.connect_timeout_s) or self._refused:
            c.loop_stop()
            raise MqttError(f"MQTT broker {settings.host}:{settings.port} did not accept the connection "
                            f"({self._refused or 'timeout'}); check the address and credentials")

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._connected.set()
            return
        # (re)connect: announce and (re)subscribe - subscriptions do not survive a clean session
        client.publish(self.s.topic("availability"), "online", qos=1, retain=True)
        client.subscribe(self.s.topic("cmd"), qos=1)
        if self.s.signals_topic:
            client.subscribe(self.s.signals_topic, qos=0)
        self._connected.set()

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

    def publish_event(self, record: dict):
        return self.client.publish(self.s.topic("events"), json.dumps(record, separators=(",", ":")), qos=1)

    def publish_status(self, record: dict):
        return self.client.publish(self.s.topic("status"), json.dumps(record, separators=(",", ":")), qos=1, retain=True)

    def drain_commands(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.commands.get_nowait())
            except queue.Empty:
                return out

    def close(self, timeout_s: float = 2.0) -> None:
        """Clean shutdown: retained ``offline`` (the will is not sent on a clean disconnect)."""
        if self.client is None:
            return
        try:
            info = self.client.publish(self.s.topic("availability"), "offline", qos=1, retain=True)
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            log.warning("MQTT: could not publish offline status: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None
