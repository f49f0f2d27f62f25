"""Lazy GStreamer import and one-time initialisation.

``gi`` is an optional dependency (extra ``gst``); nothing here is imported until a pipeline is
actually built, so ``import edgepose.pipelines`` stays cheap and works without PyGObject.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

from ..errors import require

_LOCK = threading.Lock()
_GST: SimpleNamespace | None = None


def gst() -> SimpleNamespace:
    """``Gst``, ``GstApp``, ``GstVideo``, ``GLib`` (initialised once per process)."""
    global _GST
    with _LOCK:
        if _GST is None:
            gi = require("gi", "gst", "The GStreamer pipeline")
            gi.require_version("Gst", "1.0")
            gi.require_version("GstApp", "1.0")  # appsink.pull_sample needs GstApp loaded
            gi.require_version("GstVideo", "1.0")
            from gi.repository import GLib, Gst, GstApp, GstVideo

            Gst.init(None)
            _GST = SimpleNamespace(Gst=Gst, GstApp=GstApp, GstVideo=GstVideo, GLib=GLib)
        return _GST


def rtsp_server_module():
    """``GstRtspServer`` (gst-rtsp-server GI bindings), imported only for ``--rtsp-port``."""
    gst()
    gi = require("gi", "gst", "RTSP output")
    from ..errors import DependencyError

    try:
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GstRtspServer
    except (ValueError, ImportError) as exc:
        raise DependencyError(
            f"RTSP output needs the gst-rtsp-server GObject bindings ({exc}); install them with "
            f"`apt-get install gir1.2-gst-rtsp-server-1.0` (Debian/Ubuntu/JetPack)") from None
    return GstRtspServer


def element_available(name: str) -> bool:
    return gst().Gst.ElementFactory.find(name) is not None
