"""RTSP output with gst-rtsp-server: ``rtsp://<host>:<port>/<mount>`` serves the annotated video.

The server runs a GLib main loop in a daemon thread.  Each new media (the factory is shared, so
all clients see the same stream) gets its own ``appsrc``; :meth:`RtspOutput.push` feeds it when
a client is connected and costs nothing otherwise.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from ..errors import UserError
from .gst import gst, rtsp_server_module
from .templates import rtsp_launch
from .writer import numpy_to_buffer

log = logging.getLogger(__name__)

__all__ = ["RtspOutput"]


class RtspOutput:
    def __init__(self, port: int, width: int, height: int, fps: float, *, mount: str = "/edgepose",
                 platform: str | None = None, bind: str = "0.0.0.0", bitrate_kbps: int = 2000):
        g = gst()
        RS = rtsp_server_module()
        if not (0 < int(port) < 65536):
            raise UserError(f"--rtsp-port {port} is not a TCP port; use e.g. 8554")
        self.port, self.mount = int(port), "/" + mount.strip("/")
        self.width, self.height, self.fps = width, height, fps
        self._lock = threading.Lock()
        self._appsrc = None
        self._t0 = None
        self._context = g.GLib.MainContext.new()
        self._loop = g.GLib.MainLoop.new(self._context, False)
        self._server = RS.RTSPServer.new()
        self._server.set_address(bind)
        self._server.set_service(str(self.port))
        factory = RS.RTSPMediaFactory.new()
        factory.set_launch(rtsp_launch(platform, width, height, fps, bitrate_kbps, gop=int(round(fps or 30))))
        factory.set_shared(True)
        factory.connect("media-configure", self._on_media_configure)
        self._server.get_mount_points().add_factory(self.mount, factory)
        self._source_id = self._server.attach(self._context)
        if self._source_id == 0:
            raise UserError(f"cannot start the RTSP server on port {self.port} (in use?); pick another --rtsp-port")
        self._thread = threading.Thread(target=self._run_loop, name="edgepose-rtsp", daemon=True)
        self._thread.start()
        log.info("RTSP output at rtsp://%s:%d%s", "127.0.0.1" if bind == "0.0.0.0" else bind, self.port, self.mount)

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def _run_loop(self) -> None:
        self._context.push_thread_default()
        try:
            self._loop.run()
        finally:
            self._context.pop_thread_default()

    def _on_media_configure(self, factory, media) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        with self._lock:
            self._appsrc, self._t0 = appsrc, None
        media.connect("unprepared", self._on_unprepared)

    def _on_unprepared(self, media) -> None:
        with self._lock:
            self._appsrc = None

    @property
    def has_client(self) -> bool:
        return self._appsrc is not None

    def push(self, frame: np.ndarray, pts_ns: int) -> None:
        with self._lock:
            appsrc = self._appsrc
            if appsrc is None:
                return
            if self._t0 is None:
                self._t0 = pts_ns
            pts = max(0, pts_ns - self._t0)
        appsrc.emit("push-buffer", numpy_to_buffer(frame, pts, int(1e9 / self.fps) if self.fps else None))

    def close(self) -> None:
        with self._lock:
            appsrc, self._appsrc = self._appsrc, None
        if appsrc is not None:
            appsrc.emit("end-of-stream")
        if self._source_id:
            src = self._context.find_source_by_id(self._source_id)
            if src is not None:
                src.destroy()
            self._source_id = 0
        self._loop.quit()
        self._thread.join(timeout=5)
