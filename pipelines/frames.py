"""GstSample -> numpy frame, honouring the row stride.

Rows of a raw video buffer may be padded (BGR with an odd width is aligned to 4 bytes per row,
hardware converters align to 32/64/256).  The geometry comes from the caps
(``GstVideo.VideoInfo``) or, when upstream attached one, from the buffer's ``GstVideoMeta``;
the pixels are sliced row by row and **copied before the buffer is unmapped** (a view on
mapped memory is invalid afterwards).
"""
from __future__ import annotations

import numpy as np

from .gst import gst

#: GStreamer raw formats edgepose pulls, with their bytes per pixel.  BGR for colour cameras and
#: files, GRAY8 for mono IR driver cameras (kept single-channel all the way to the model).
PIXEL_BYTES = {"BGR": 3, "GRAY8": 1, "BGRx": 4, "BGRA": 4}


def sample_geometry(sample):
    """(format, width, height, stride, offset) of a sample's first plane."""
    g = gst()
    info = g.GstVideo.VideoInfo.new_from_caps(sample.get_caps())
    fmt = g.GstVideo.VideoFormat.to_string(info.finfo.format)
    stride, offset = int(info.stride[0]), int(info.offset[0])
    meta = g.GstVideo.buffer_get_video_meta(sample.get_buffer())
    if meta is not None:  # upstream's layout wins over the caps' default layout
        stride, offset = int(meta.stride[0]), int(meta.offset[0])
    return fmt, int(info.width), int(info.height), stride, offset


def buffer_to_array(buf, fmt: str, width: int, height: int, stride: int, offset: int = 0) -> np.ndarray:
    """Copy one packed plane out of a Gst.Buffer -> (H, W, C) uint8 (or (H, W) for GRAY8)."""
    g = gst()
    if fmt not in PIXEL_BYTES:
        raise ValueError(f"unsupported raw format {fmt}; the source template must convert to BGR or GRAY8")
    bpp = PIXEL_BYTES[fmt]
    row = width * bpp
    if stride < row:
        raise ValueError(f"stride {stride} is smaller than a {width}-pixel {fmt} row ({row} bytes)")
    ok, mapinfo = buf.map(g.Gst.MapFlags.READ)
    if not ok:
        raise RuntimeError("could not map the GStreamer buffer for reading")
    try:
        need = offset + stride * (height - 1) + row
        if mapinfo.size < need:
            raise ValueError(f"buffer holds {mapinfo.size} bytes, a {width}x{height} {fmt} frame "
                             f"with stride {stride} needs {need}")
        flat = np.frombuffer(mapinfo.data, dtype=np.uint8, count=need - offset, offset=offset)
        # a (height, row) view that skips the padding at the end of every row
        rows = np.lib.stride_tricks.as_strided(flat, shape=(height, row), strides=(stride, 1))
        out = np.array(rows, copy=True)  # copy BEFORE unmap
    finally:
        buf.unmap(mapinfo)
    if fmt == "GRAY8":
        return out.reshape(height, width)
    out = out.reshape(height, width, bpp)
    return np.ascontiguousarray(out[..., :3]) if bpp == 4 else out


def sample_to_array(sample) -> tuple[np.ndarray, int | None]:
    """(frame, pts_ns or None) from an appsink sample."""
    g = gst()
    buf = sample.get_buffer()
    fmt, w, h, stride, offset = sample_geometry(sample)
    frame = buffer_to_array(buf, fmt, w, h, stride, offset)
    pts = buf.pts
    return frame, (None if pts == g.Gst.CLOCK_TIME_NONE else int(pts))
