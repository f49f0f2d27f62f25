"""Video source URIs (jetson-utils style) -> a parsed :class:`SourceSpec`.

=====================================  ==========================================================
``/path/video.mp4``, ``file:///abs``   a video file (every frame processed, none dropped)
``v4l2:///dev/video0?format=GRAY8``    a V4L2 camera (USB/UVC, IR driver cameras)
``csi://0``                            a Jetson CSI camera through nvarguscamerasrc
``rtsp://host:8554/stream``            an RTSP stream (reconnects with backoff)
``test://ball?width=640&num=90``       videotestsrc pattern (``format=GRAY8``, ``live=1`` options)
``photo.jpg``                          one still image: one frame (kind ``file``)
``photos/``, ``"photos/*.png"``        a folder of images or a file-name pattern in one folder (kind
                                       ``images``): each image one independent frame, natural name
                                       order, decoded with OpenCV (edgepose.pipelines.images)
=====================================  ==========================================================

Query options common to camera/test URIs: ``width``, ``height``, ``fps``, ``format`` (BGR or
GRAY8).  ``file://`` accepts ``format=GRAY8`` to decode to one channel (files, stills and image
folders: ``file:///data/photos?format=GRAY8``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import SourceError

__all__ = ["SourceSpec", "parse_source", "check_file_source", "check_device_source", "check_image_source",
           "list_images", "natural_key", "KINDS", "FORMATS", "STILL_SUFFIXES"]

KINDS = ("file", "v4l2", "csi", "rtsp", "test", "images")
#: still images: one such file is a one-frame ``file`` source; a folder of them is an ``images`` source
STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_WILDCARDS = re.compile(r"[*?\[]")
FORMATS = ("BGR", "GRAY8")
_TEST_PATTERNS = ("smpte", "snow", "black", "white", "red", "green", "blue", "checkers-1", "checkers-2",
                  "checkers-4", "checkers-8", "circular", "blink", "smpte75", "zone-plate", "gamut",
                  "chroma-zone-plate", "solid-color", "ball", "smpte100", "bar", "pinwheel", "spokes",
                  "gradient", "colors")


@dataclass
class SourceSpec:
    kind: str  # one of KINDS
    location: str  # file path, device, sensor id, rtsp url or test pattern
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    format: str = "BGR"
    num_buffers: int = -1  # test:// only: frames before EOS (-1 = endless)
    live: bool = False  # drop frames to stay real-time (cameras, rtsp, test://...?live=1)
    options: dict = field(default_factory=dict)
    uri: str = ""

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    @property
    def is_still(self) -> bool:
        """A single image file: one frame."""
        return self.is_file and Path(self.location).suffix.lower() in STILL_SUFFIXES

    @property
    def independent_frames(self) -> bool:
        """Every frame is its own scene (an image folder): nothing carries over from one to the next."""
        return self.kind == "images"

    @property
    def pattern(self) -> str | None:
        """``images`` sources given as ``folder/PATTERN``: the file-name pattern (None = every image)."""
        return self.options.get("pattern")

    @property
    def reconnects(self) -> bool:
        """Network streams and USB cameras come back after a glitch; files and test sources don't."""
        return self.kind in ("rtsp", "v4l2")

    @property
    def name(self) -> str:
        return self.uri or self.location


def _int(opts: dict, key: str, uri: str, default=None):
    if key not in opts:
        return default
    try:
        v = int(opts.pop(key))
    except ValueError:
        raise SourceError(f"source {uri!r}: option {key}= must be an integer") from None
    if v <= 0 and key != "num":
        raise SourceError(f"source {uri!r}: option {key}= must be positive")
    return v


def _format(opts: dict, uri: str) -> str:
    fmt = opts.pop("format", "BGR").upper()
    fmt = {"GRAY": "GRAY8", "MONO": "GRAY8", "IR": "GRAY8"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise SourceError(f"source {uri!r}: format={fmt} is not supported; use format=BGR or format=GRAY8")
    return fmt


def parse_source(uri: str) -> SourceSpec:
    """Parse a source URI or plain path; raises SourceError naming the problem and the fix."""
    uri = str(uri).strip()
    if not uri:
        raise SourceError("empty source; give a file path or a URI such as test://ball or v4l2:///dev/video0")
    if "://" not in uri:
        return _path_source(uri, uri, "BGR")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "rtsp" or scheme == "rtsps":
        # the query belongs to the camera's URL; pass it through untouched
        return SourceSpec("rtsp", uri, live=True, uri=uri)
    opts = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "file":
        spec = _path_source(unquote(parts.netloc + parts.path), uri, _format(opts, uri))
    elif scheme == "v4l2":
        device = unquote(parts.netloc + parts.path) or "/dev/video0"
        spec = SourceSpec("v4l2", device, width=_int(opts, "width", uri), height=_int(opts, "height", uri),
                          fps=_int(opts, "fps", uri), format=_format(opts, uri), live=True, uri=uri)
    elif scheme == "csi":
        sensor = parts.netloc or parts.path.strip("/") or "0"
        if not sensor.isdigit():
            raise SourceError(f"source {uri!r}: CSI sensor id must be a number, e.g. csi://0")
        spec = SourceSpec("csi", sensor, width=_int(opts, "width", uri, 1280), height=_int(opts, "height", uri, 720),
                          fps=_int(opts, "fps", uri, 30), format=_format(opts, uri), live=True, uri=uri)
    elif scheme == "test":
        pattern = (parts.netloc + parts.path).strip("/") or "smpte"
        if pattern not in _TEST_PATTERNS:
            raise SourceError(f"source {uri!r}: unknown test pattern {pattern!r}; "
                              f"choose one of {', '.join(_TEST_PATTERNS)}")
        live = opts.pop("live", "0").lower() in ("1", "true", "yes")
        spec = SourceSpec("test", pattern, width=_int(opts, "width", uri, 640), height=_int(opts, "height", uri, 360),
                          fps=_int(opts, "fps", uri, 30), format=_format(opts, uri),
                          num_buffers=_int(opts, "num", uri, -1), live=live, uri=uri)
    else:
        raise SourceError(f"unsupported source scheme {scheme!r} in {uri!r}; use a file path, file://, "
                          f"v4l2://, csi://, rtsp:// or test://")
    if opts:
        raise SourceError(f"source {uri!r}: unknown option(s) {', '.join(sorted(opts))}; "
                          f"valid: width, height, fps, format (and num, live for test://)")
    return spec


def _path_source(path: str, uri: str, fmt: str) -> SourceSpec:
    """A path: a folder or a file-name pattern is an image folder, anything else a file (video or still)."""
    p = Path(path)
    if p.is_dir():
        return SourceSpec("images", str(p), format=fmt, uri=uri)
    if _WILDCARDS.search(p.name) and not p.exists():
        if _WILDCARDS.search(str(p.parent)):
            raise SourceError(f"source {uri!r}: only the file-name part of an image pattern may hold wildcards "
                              f"(e.g. \"photos/*.png\"); give one folder")
        return SourceSpec("images", str(p.parent), format=fmt, options={"pattern": p.name}, uri=uri)
    return SourceSpec("file", str(p), format=fmt, uri=uri)


def natural_key(name: str) -> tuple:
    """Sort key for file names in natural order: ``img2`` before ``img10``, case-insensitive."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
                 for part in re.split(r"(\d+)", name) if part) + (name,)


def list_images(spec: SourceSpec) -> list[Path]:
    """The images of an ``images`` source, in natural name order: the folder's files (one level, not
    recursive) whose suffix is a still's (case-insensitive), or those matching its pattern."""
    import fnmatch

    folder = Path(spec.location)
    try:
        entries = [e for e in os.scandir(folder) if e.is_file()]
    except OSError as exc:
        raise SourceError(f"cannot list the image folder {folder} ({exc.strerror}); check the path and its "
                          f"permissions") from None
    names = [e.name for e in entries if Path(e.name).suffix.lower() in STILL_SUFFIXES
             and (spec.pattern is None or fnmatch.fnmatchcase(e.name, spec.pattern))]
    return [folder / n for n in sorted(names, key=natural_key)]


def check_image_source(spec: SourceSpec) -> list[Path]:
    """The images of an ``images`` source; a folder or pattern without any is a one-line error."""
    folder = Path(spec.location)
    if not folder.is_dir():
        raise SourceError(f"image folder not found: {folder}; check the path (relative paths are resolved from "
                          f"{os.getcwd()})")
    images = list_images(spec)
    if not images:
        kinds = ", ".join(STILL_SUFFIXES)
        if spec.pattern is not None:
            raise SourceError(f"no image in {folder} matches {spec.pattern!r} (images are {kinds}); check the "
                              f"pattern, and quote it so the shell passes it on")
        raise SourceError(f"{folder} holds no images ({kinds}; subfolders are not read); put the images "
                          f"there, or give a video file or one image")
    return images


def check_file_source(spec: SourceSpec) -> None:
    """Fail early and clearly on a file that cannot be a video (before GStreamer says it vaguely)."""
    path = Path(spec.location)
    if not path.exists():
        raise SourceError(f"video file not found: {path}; check the path (relative paths are resolved "
                          f"from {os.getcwd()})")
    if path.is_dir():
        raise SourceError(f"{path} is a directory; give a video file such as {path}/clip.mp4")
    if not os.access(path, os.R_OK):
        raise SourceError(f"video file {path} is not readable; fix its permissions")
    if path.stat().st_size == 0:
        raise SourceError(f"video file {path} is empty (0 bytes); the copy or recording was probably "
                          f"interrupted - record or copy it again")
    if mp4_without_index(path):
        raise SourceError(f"{path} cannot be decoded: it is an MP4/MOV without its 'moov' index - the recording was "
                          f"cut off before it was finalised (power loss, a full disk) or the copy is truncated or "
                          f"corrupt; copy it again, or rebuild the index from a good recording of the same camera "
                          f"(e.g. `untrunc good.mp4 {path.name}`)")


def mp4_without_index(path: Path) -> bool:
    """True for an ISO-BMFF file (MP4/MOV, first box ``ftyp``) whose top-level boxes end without a
    ``moov`` box. Recorders write ``moov`` last unless told otherwise, so a recording cut off by power
    loss has ``ftyp`` + ``mdat`` only; GStreamer's qtdemux then waits for an index that never comes
    instead of failing. Reads box headers only (a few bytes per box)."""
    size_total = path.stat().st_size
    with open(path, "rb") as fh:
        pos, first = 0, True
        while pos + 8 <= size_total:
            fh.seek(pos)
            head = fh.read(16)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if first and kind != b"ftyp":
                return False  # not ISO-BMFF (or another layout): leave it to GStreamer
            first = False
            if kind == b"moov":
                return False
            if size == 1 and len(head) >= 16:  # 64-bit size follows the type
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:  # box runs to the end of the file
                break
            if size < 8:
                return True  # a broken box header: no index can follow
            pos += size
    return not first  # an ftyp file whose boxes ended (or ran past the end) without moov


def check_device_source(spec: SourceSpec) -> None:
    """A V4L2 device node that does not exist will not appear by reconnecting: fail at once."""
    dev = Path(spec.location)
    if not dev.exists():
        found = sorted(str(p) for p in Path("/dev").glob("video*"))
        raise SourceError(f"camera {dev} not found; cameras here: {', '.join(found) or 'none'} "
                          f"(list them with `v4l2-ctl --list-devices`)")
    if not os.access(dev, os.R_OK | os.W_OK):
        raise SourceError(f"no permission to open camera {dev}; add the user to the 'video' group "
                          f"(`sudo usermod -aG video $USER`, then log in again)")
