"""appsrc output: annotated BGR frames -> mp4 file (x264enc / nvv4l2h264enc) and/or a display.

One ``appsrc`` feeds a ``tee`` with a branch per sink.  The encoder branch has no queue, so
``push`` returns once the frame is converted, encoded and muxed: the time it takes is the
"encode" stage of the latency table.  :meth:`close` sends EOS through the muxer and waits for it,
which writes the final MP4 index; the mux is fragmented (``fragment-duration``) so even a killed
process leaves a playable file.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import UserError
from .gst import gst
from .templates import output_branches

log = logging.getLogger(__name__)

__all__ = ["VideoOutput", "numpy_to_buffer"]


def numpy_to_buffer(frame: np.ndarray, pts_ns: int, duration_ns: int | None):
    Gst = gst().Gst
    buf = Gst.Buffer.new_wrapped(np.ascontiguousarray(frame).tobytes())
    buf.pts = int(pts_ns)
    buf.dts = Gst.CLOCK_TIME_NONE
    buf.duration = int(duration_ns) if duration_ns else Gst.CLOCK_TIME_NONE
    return buf


def check_display(platform: str | None) -> None:
    """A window needs a graphical session; without one autovideosink may pick a KMS/framebuffer
    sink that crashes the process, so refuse early with a clear message."""
    import os

    from .templates import detect_platform

    if (platform or detect_platform()) == "desktop" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--display needs a graphical session (DISPLAY / WAYLAND_DISPLAY are not set); run it on "
                        "the desktop, or watch remotely with --rtsp-port 8554, or record with --output out.mp4")


class VideoOutput:
    """Write BGR frames of one fixed size to the requested sinks."""

    def __init__(self, width: int, height: int, fps: float, *, file: str | Path | None = None, display: bool = False,
                 platform: str | None = None, bitrate_kbps: int = 4000, gop: int = 30, async_encode: bool = False):
        self.width, self.height, self.fps = width, height, fps
        # 4:2:0 encoders need even sizes: odd frames are padded by one replicated row/column
        self.out_width, self.out_height = width + (width % 2), height + (height % 2)
        self.file = Path(file) if file else None
        if self.file is not None:
            if self.file.exists() and self.file.is_dir():
                raise UserError(f"--output {self.file} is a directory; give a file name such as {self.file}/out.mp4")
            self.file.parent.mkdir(parents=True, exist_ok=True)
        if display:
            check_display(platform)
        launch = output_branches(platform, str(self.file) if self.file else None, display, self.out_width,
                                 self.out_height, fps, bitrate_kbps, gop, async_encode)
        if launch is None:
            raise ValueError("VideoOutput needs a file or a display")
        Gst = gst().Gst
        log.debug("output pipeline: %s", launch)
        try:
            self._pipe = Gst.parse_launch(launch)
        except Exception as exc:
            raise UserError(f"cannot build the output pipeline ({exc}); check the encoder/display plugins "
                            f"(gst-inspect-1.0 x264enc) or run without --display") from None
        self._src = self._pipe.get_by_name("src")
        self._bus = self._pipe.get_bus()
        self._frames = 0
        self._last_pts: int | None = None
        if self._pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self._check_bus()
            raise UserError("the output pipeline refused to start (display or encoder unavailable)")

    @property
    def frames_written(self) -> int:
        return self._frames

    def push(self, frame: np.ndarray, pts_ns: int) -> None:
        Gst = gst().Gst
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {frame.shape[1]}x{frame.shape[0]} does not match the output "
                             f"{self.width}x{self.height}")
        if (self.out_width, self.out_height) != (self.width, self.height):
            import cv2

            frame = cv2.copyMakeBorder(frame, 0, self.out_height - self.height, 0, self.out_width - self.width,
                                       cv2.BORDER_REPLICATE)
        # the writer's timeline starts at 0 and must strictly increase (the muxer rejects repeats)
        if self._last_pts is None:
            self._t0 = pts_ns
        pts = pts_ns - self._t0
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        dur = int(1e9 / self.fps) if self.fps else None
        ret = self._src.emit("push-buffer", numpy_to_buffer(frame, pts, dur))
        self._last_pts = pts
        if ret != Gst.FlowReturn.OK:
            self._check_bus()
            raise UserError(f"the output pipeline stopped accepting frames ({ret.value_nick}); "
                            f"check the disk space and the output path {self.file}")
        self._frames += 1
        self._check_bus()

    def _check_bus(self) -> None:
        Gst = gst().Gst
        msg = self._bus.pop_filtered(Gst.MessageType.ERROR)
        if msg is not None:
            err, debug = msg.parse_error()
            raise UserError(f"output pipeline failed in {msg.src.get_name()}: {err.message}; check that "
                            f"{self.file or 'the display'} is writable/available and the disk is not full")

    def abort(self) -> None:
        """Stop at once after a failure (disk full): no EOS, the muxer cannot write anything more.  The
        fragmented MP4 keeps every fragment already on disk and stays playable."""
        if self._pipe is not None:
            self._pipe.set_state(gst().Gst.State.NULL)
            self._pipe = None

    def close(self, timeout_s: float = 30.0) -> None:
        """Send EOS and wait until the muxer wrote the index (or the timeout)."""
        if self._pipe is None:
            return
        Gst = gst().Gst
        try:
            self._src.emit("end-of-stream")
            msg = self._bus.timed_pop_filtered(int(timeout_s * Gst.SECOND),
                                               Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if msg is None:
                log.warning("output did not finish within %.0f s; %s may lack its final index", timeout_s, self.file)
            elif msg.type == Gst.MessageType.ERROR:
                err, _ = msg.parse_error()
                log.error("output error while finishing %s: %s", self.file, err.message)
        finally:
            self._pipe.set_state(Gst.State.NULL)
            self._pipe = None
