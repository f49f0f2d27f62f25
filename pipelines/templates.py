"""Pipeline templates (``templates/<platform>.yaml``) -> GStreamer launch strings.

Users pick a platform with ``--platform desktop|jetson``; by default it is detected
(``/etc/nv_tegra_release`` exists on Jetson / JetPack).  Templates are data files so a
deployment can adapt them (``EDGEPOSE_PIPELINE_TEMPLATES=/dir`` points at a folder with its own
``<platform>.yaml``) without touching code.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import SourceError, UserError
from .sources import SourceSpec

__all__ = ["PLATFORMS", "detect_platform", "load_templates", "source_pipeline", "output_branches",
           "rtsp_launch", "quote"]

PLATFORMS = ("desktop", "jetson")
TEMPLATE_DIR = Path(__file__).with_name("templates")
JETSON_MARKER = Path("/etc/nv_tegra_release")


def detect_platform(marker: Path = JETSON_MARKER) -> str:
    return "jetson" if marker.exists() else "desktop"


def _template_dir() -> Path:
    env = os.environ.get("EDGEPOSE_PIPELINE_TEMPLATES")
    return Path(env) if env else TEMPLATE_DIR


@lru_cache(maxsize=8)
def _load(path: str) -> dict:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or "sources" not in data or "sinks" not in data:
        raise UserError(f"pipeline template file {path} needs 'sources' and 'sinks' sections")
    return data


def load_templates(platform: str | None = None) -> dict:
    platform = platform or detect_platform()
    if platform not in PLATFORMS:
        raise UserError(f"unknown platform {platform!r}; use one of {', '.join(PLATFORMS)}")
    path = _template_dir() / f"{platform}.yaml"
    if not path.exists():
        raise UserError(f"pipeline templates for {platform} not found at {path}; unset "
                        f"EDGEPOSE_PIPELINE_TEMPLATES or add {path.name} there")
    return _load(str(path))


def quote(value: str) -> str:
    """Quote a property value for Gst.parse_launch (paths with spaces, URLs with '&')."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def appsink_props(live: bool) -> str:
    """Live sources: keep only the newest frame (stay real-time).  Files and finite test
    sources: never drop; a full appsink blocks the decoder until Python pulls (back-pressure)."""
    if live:
        return "appsink name=sink drop=true max-buffers=1 sync=false emit-signals=false"
    return "appsink name=sink drop=false max-buffers=2 sync=false emit-signals=false"


def source_pipeline(spec: SourceSpec, platform: str | None = None) -> str:
    """Launch string ending in ``appsink name=sink`` for a parsed source."""
    if spec.kind == "images":  # no GStreamer pipeline: edgepose.pipelines.images decodes them
        raise SourceError(f"{spec.name} is a folder of images; it is read by edgepose.pipelines.images."
                          f"ImageFolderSource, not through a GStreamer pipeline")
    t = load_templates(platform)
    tpl = t["sources"].get(spec.kind)
    if not tpl:
        raise SourceError(f"{spec.kind}:// sources are not available on the {t.get('platform', platform)} "
                          f"platform (e.g. csi:// needs nvarguscamerasrc on a Jetson); use --platform jetson "
                          f"on a Jetson or another source")
    size = ""
    if spec.kind in ("v4l2",):
        if spec.width:
            size += f",width={spec.width}"
        if spec.height:
            size += f",height={spec.height}"
        if spec.fps:
            size += f",framerate={spec.fps}/1"
    return tpl.format(
        location=quote(spec.location), device=quote(spec.location), sensor=spec.location,
        pattern=spec.location, width=spec.width, height=spec.height, fps=spec.fps, format=spec.format,
        nv_format="GRAY8" if spec.format == "GRAY8" else "BGRx", num_buffers=spec.num_buffers,
        is_live=str(spec.live).lower(), caps_size=size, appsink=appsink_props(spec.live))


def _sink_fields(bitrate_kbps: int, gop: int) -> dict:
    return {"bitrate": int(bitrate_kbps), "bitrate_bps": int(bitrate_kbps) * 1000, "gop": int(gop)}


def output_branches(platform: str | None, file: str | None, display: bool, width: int, height: int, fps: float,
                    bitrate_kbps: int = 4000, gop: int = 30, async_encode: bool = False) -> str | None:
    """``appsrc name=src ... ! tee`` with one branch per requested sink, or None when no sink.

    ``async_encode``: a (blocking, never leaking) queue after appsrc moves conversion + encoding to
    a GStreamer thread, overlapping it with the next frame's inference.
    """
    if not file and not display:
        return None
    t = load_templates(platform)["sinks"]
    f = _sink_fields(bitrate_kbps, gop)
    fps_n, fps_d = _fraction(fps)
    caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={fps_n}/{fps_d}"
    # block=true: when the encoder falls behind, push-buffer waits instead of queueing frames
    head = f"appsrc name=src is-live=false format=time block=true max-bytes={width * height * 3 * 4} caps={caps}"
    branches = []
    if file:
        branches.append(t["encoder"].format(**f) + " ! " + t["file"].format(location=quote(file), **f))
    if display:
        branches.append(t["display"].format(**f))
    if len(branches) == 1:
        q = "queue max-size-buffers=4 max-size-bytes=0 max-size-time=0 ! " if async_encode else ""
        return f"{head} ! {q}{branches[0]}"
    # queues decouple the display from the encoder so a slow window never stalls the recording
    return f"{head} ! tee name=t " + " ".join(f"t. ! queue ! {b}" for b in branches)


def rtsp_launch(platform: str | None, width: int, height: int, fps: float, bitrate_kbps: int = 2000,
                gop: int = 30) -> str:
    t = load_templates(platform)["sinks"]
    fps_n, fps_d = _fraction(fps)
    caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={fps_n}/{fps_d}"
    return t["rtsp"].format(rtsp_caps=caps, **_sink_fields(bitrate_kbps, gop))


def _fraction(fps: float) -> tuple[int, int]:
    from fractions import Fraction

    fr = Fraction(float(fps) if fps and fps > 0 else 30.0).limit_denominator(1001)
    return fr.numerator, fr.denominator
