"""Pull frames out of a GStreamer source pipeline (appsink), with clear errors and reconnects.

* Files and finite test sources: the appsink never drops; ``try-pull-sample`` waits for each
  decoded frame, so every frame of the file is processed exactly once.
* Live sources (cameras, RTSP): the appsink keeps only the newest frame (``drop=true
  max-buffers=1 sync=false``); RTSP and V4L2 sources are rebuilt with exponential backoff
  after an error or an unexpected end of stream.
* Errors on the bus become :class:`~edgepose.errors.SourceError` naming the source and the fix.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..errors import SourceError
from .frames import sample_to_array
from .gst import gst
from .sources import SourceSpec, check_device_source, check_file_source
from .templates import source_pipeline

log = logging.getLogger(__name__)

__all__ = ["Frame", "VideoSource"]


@dataclass
class Frame:
    image: np.ndarray  # BGR (H, W, 3) or GRAY8 (H, W), C-contiguous copy
    pts_ns: int  # monotonic presentation time in ns (source pts; synthesised when missing)
    index: int  # 0-based count of frames delivered
    decode_ms: float  # wait for the decoded frame + stride-aware copy
    # live sources: how old the frame was when Python got it (pipeline clock minus its running
    # time: capture, network, jitter buffer, decode and queueing); None for files
    age_ms: float | None = None
    name: str | None = None  # image folders: the image's file name (edgepose.pipelines.images)


class _PipelineFailure(Exception):
    def __init__(self, text: str, debug: str = "", missing_plugin: str | None = None):
        super().__init__(text)
        self.text, self.debug, self.missing_plugin = text, debug, missing_plugin


class VideoSource:
    """Iterate :class:`Frame` objects from a source URI.

    ``should_stop`` is polled while waiting so Ctrl-C ends a quiet live source promptly.
    """

    def __init__(self, spec: SourceSpec, platform: str | None = None, *, max_reconnects: int = 5,
                 backoff_s: tuple[float, float] = (0.5, 8.0), first_frame_timeout_s: float = 30.0,
                 stall_timeout_s: float = 5.0,
                 should_stop: Callable[[], bool] = lambda: False):
        self.spec = spec
        self.platform = platform
        self.max_reconnects = max_reconnects
        self.backoff_s = backoff_s
        self.first_frame_timeout_s = first_frame_timeout_s
        self.stall_timeout_s = stall_timeout_s  # live sources: no frame this long = lost, reconnect
        self.should_stop = should_stop
        self.launch = source_pipeline(spec, platform)
        self.fps: float | None = None
        self.duration_ns: int | None = None  # files: container duration (progress estimate)
        self.width: int | None = None
        self.height: int | None = None
        self.reconnect_count = 0
        self.edit_list_skipped = 0  # frames before an MP4/MOV edit list's start (see _clipped_by_edit_list)
        self.ended_early_s: tuple[float, float] | None = None  # files: (last frame end, declared duration)
        # files at a constant rate: frames the decoder never delivered (gaps in the timeline: corrupt
        # data, decode errors), and the decoder/demuxer warnings on the bus
        self.dropped_frames = 0
        self.gaps = 0
        self.decode_warnings = 0
        self._pipe = None
        self._missing: str | None = None

    # --- pipeline lifetime -------------------------------------------------------------------
    def _start(self):
        g = gst()
        Gst = g.Gst
        log.debug("source pipeline: %s", self.launch)
        try:
            pipe = Gst.parse_launch(self.launch)
        except Exception as exc:  # GLib.Error: a missing element or bad syntax in the template
            raise SourceError(f"cannot build the source pipeline for {self.spec.name}: {exc}; check that the "
                              f"GStreamer plugins are installed (gst-inspect-1.0) or fix the template") from None
        self._pipe = pipe
        self._sink = pipe.get_by_name("sink")
        self._bus = pipe.get_bus()
        self._missing = None
        if pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self._raise_bus_error(default="the pipeline refused to start")

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.set_state(gst().Gst.State.NULL)
            self._pipe = None

    def _poll_bus(self) -> None:
        """Raise on a queued ERROR; remember missing-plugin notices (they precede the error)."""
        Gst = gst().Gst
        while True:
            msg = self._bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.ELEMENT | Gst.MessageType.WARNING)
            if msg is None:
                return
            if msg.type == Gst.MessageType.ELEMENT:
                st = msg.get_structure()
                if st is not None and st.get_name() == "missing-plugin":
                    self._missing = _missing_plugin_text(msg, st)
            elif msg.type == Gst.MessageType.WARNING:
                err, debug = msg.parse_warning()
                self.decode_warnings += 1
                (log.warning if self.decode_warnings <= 3 else log.debug)(
                    "source warning from %s: %s", msg.src.get_name() if msg.src else "?", err.message)
                log.debug("source warning details: %s", debug)
            else:
                err, debug = msg.parse_error()
                raise _PipelineFailure(err.message, debug or "", self._missing)

    def _raise_bus_error(self, default: str):
        try:
            self._poll_bus()
        except _PipelineFailure as f:
            raise self._source_error(f) from None
        raise self._source_error(_PipelineFailure(default))

    # --- errors ------------------------------------------------------------------------------
    def _source_error(self, f: _PipelineFailure) -> SourceError:
        name = self.spec.name
        if f.missing_plugin or "missing a plug-in" in f.text or "no suitable plugins" in f.debug.lower():
            what = f.missing_plugin or f.text
            return SourceError(
                f"{name}: no GStreamer decoder for this stream ({what}); the codec is unsupported here - install "
                f"the plugin (gstreamer1.0-libav, -plugins-bad or -plugins-ugly) or transcode, e.g. "
                f"`ffmpeg -i {name} -c:v libx264 -pix_fmt yuv420p out.mp4`")
        if self.spec.is_file and "not-linked" in f.debug:
            return SourceError(f"{name} has no video stream (audio only or an unknown stream type); check it with "
                               f"`ffprobe {name}` and give a video file")
        if self.spec.is_file:
            return SourceError(
                f"{name} cannot be decoded: {f.text} - the file is corrupt, truncated or not a video; "
                f"check it with `ffprobe {name}` and copy or re-record it")
        if self.spec.kind == "rtsp":
            return SourceError(f"RTSP source {name} failed: {f.text}; check the URL, credentials and network "
                               f"(try `gst-launch-1.0 playbin uri={name}`)")
        if self.spec.kind == "v4l2":
            return SourceError(f"camera {self.spec.location} failed: {f.text}; check the device exists "
                               f"(`v4l2-ctl --list-devices`), is not in use, and supports the requested format")
        return SourceError(f"source {name} failed: {f.text}")

    # --- iteration ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        if self.spec.is_file:
            check_file_source(self.spec)
        elif self.spec.kind == "v4l2":
            check_device_source(self.spec)
        index, last_pts, offset = 0, None, 0
        attempts = 0
        try:
            while True:
                try:
                    self._start()
                    for image, pts in self._pull_frames():
                        attempts = 0
                        if pts is None:  # no timestamp from the source: continue the timeline
                            pts = self._synth_pts(last_pts)
                        else:
                            if self.spec.is_file and last_pts is None:
                                # files: the timeline starts at 0 on the first frame shown, as in FFmpeg
                                # (ffprobe, OpenCV): qtdemux's buffer times still hold the offset of
                                # an MP4 edit list (B-frame delay, a cut) - 67 to 208 ms on our clips
                                offset = -pts
                            pts += offset
                        if last_pts is not None and pts <= last_pts:
                            # a reconnected stream restarts its clock: keep our timeline monotonic
                            step = int(1e9 / self.fps) if self.fps else 1
                            offset += last_pts + step - pts
                            pts = last_pts + step
                        if last_pts is not None and self.spec.is_file and self.fps:
                            self._count_gap(pts - last_pts, index)
                        last_pts = pts
                        yield Frame(image, pts, index, self._decode_ms, self._age_ms)
                        index += 1
                    failure = None
                except _PipelineFailure as f:
                    failure = f
                finally:
                    self.close()
                if self.should_stop():
                    return
                if not self.spec.reconnects:
                    if failure is not None:
                        raise self._source_error(failure)
                    if index == 0 and self.spec.is_file:
                        for frame in self._opencv_frames():
                            index += 1
                            yield frame
                        if index:
                            return
                        raise SourceError(f"{self.spec.name} contains no decodable video frames; check it with "
                                          f"`ffprobe {self.spec.name}`")
                    self._check_ended_early(last_pts)
                    if self.dropped_frames:
                        log.warning("%s: %d frames missing (%d gaps in the timeline; %d decoder warnings): corrupt "
                                    "data, decode errors or a stream-copy cut that lost them; the results skip "
                                    "them", self.spec.name, self.dropped_frames, self.gaps, self.decode_warnings)
                    return
                # live source lost (error or EOS): reconnect with exponential backoff
                attempts += 1
                reason = failure.text if failure else "end of stream"
                if attempts > self.max_reconnects:
                    raise self._source_error(failure or _PipelineFailure(
                        f"stream ended and {self.max_reconnects} reconnect attempts failed"))
                delay = min(self.backoff_s[0] * 2 ** (attempts - 1), self.backoff_s[1])
                log.warning("source %s lost (%s); reconnecting in %.1f s (attempt %d/%d)", self.spec.name,
                            reason, delay, attempts, self.max_reconnects)
                self.reconnect_count += 1
                if self._sleep(delay):
                    return
        finally:
            self.close()

    def _opencv_frames(self) -> Iterator[Frame]:
        """Frames of a file GStreamer ended without a single frame and without an error, decoded with
        OpenCV's FFmpeg backend instead.  The known case: GStreamer 1.22's qtdemux ends an MP4 at once
        when its edit list starts past the first keyframe - what ``ffmpeg -ss T -i in.mp4 -c copy``
        writes; FFmpeg applies such an edit list as ``ffprobe`` does (same frames, same times)."""
        import cv2

        cap = cv2.VideoCapture(self.spec.location, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            return
        log.warning("%s: GStreamer's MP4 demuxer delivered no frame (an edit list it cannot apply, e.g. a cut made "
                    "with `ffmpeg -ss T -c copy`); decoding it with OpenCV/FFmpeg instead", self.spec.name)
        try:
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = fps if fps and fps > 0 else self.fps
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            index, last = 0, None
            while not self.should_stop():
                t0 = time.perf_counter()
                ok, image = cap.read()
                if not ok:
                    return
                if self.spec.format == "GRAY8":
                    image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                pts = int(round(cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6))
                if last is not None and pts <= last:
                    pts = last + int(1e9 / (self.fps or 30.0))
                last = pts
                yield Frame(np.ascontiguousarray(image), pts, index, (time.perf_counter() - t0) * 1e3, None)
                index += 1
        finally:
            cap.release()

    def _count_gap(self, dt_ns: int, index: int) -> None:
        """A step of more than 1.5 frame durations between two decoded frames of a constant-rate file
        means frames were lost in between (players and OpenCV skip them just as silently)."""
        step = 1e9 / self.fps
        if dt_ns <= 1.5 * step:
            return
        missing = int(round(dt_ns / step)) - 1
        self.dropped_frames += missing
        self.gaps += 1
        if self.gaps <= 3:
            log.warning("%s: %d frame(s) missing before frame %d (%.0f ms gap in the timeline): corrupt data or "
                        "a decode error", self.spec.name, missing, index, dt_ns / 1e6)

    def _check_ended_early(self, last_pts: int | None) -> None:
        """A file whose frames stop well before its declared duration was cut off (a recording with its
        index up front survives power loss, its tail does not): say so instead of ending quietly."""
        if not self.spec.is_file or not self.duration_ns or last_pts is None:
            return
        frame_ns = 1e9 / self.fps if self.fps else 0.0
        end_ns = last_pts + frame_ns
        if self.duration_ns - end_ns > max(1e9, 2 * frame_ns):
            self.ended_early_s = (end_ns * 1e-9, self.duration_ns * 1e-9)
            log.warning("%s ended at %.1f s of its declared %.1f s: the file is truncated (a cut-off recording "
                        "or an incomplete copy); the frames after %.1f s are missing", self.spec.name,
                        end_ns * 1e-9, self.duration_ns * 1e-9, end_ns * 1e-9)

    @property
    def expected_frames(self) -> int | None:
        """Frame count estimated from duration x rate (for progress bars; not exact for VFR)."""
        if self.spec.kind == "test" and self.spec.num_buffers > 0:
            return self.spec.num_buffers
        if self.duration_ns and self.fps:
            return int(round(self.duration_ns * 1e-9 * self.fps))
        return None

    def _sleep(self, seconds: float) -> bool:
        """Sleep in small steps; True when a stop was requested meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.should_stop():
                return True
            time.sleep(min(0.05, end - time.monotonic()) if end > time.monotonic() else 0)
        return self.should_stop()

    def _synth_pts(self, last_pts: int | None) -> int:
        step = int(1e9 / self.fps) if self.fps else int(1e9 / 30)
        return 0 if last_pts is None else last_pts + step

    def _pull_frames(self):
        Gst = gst().Gst
        timeout = 100 * Gst.MSECOND
        last_frame = time.monotonic()
        first = True
        while True:
            t0 = time.perf_counter()
            sample = self._sink.try_pull_sample(timeout)
            if sample is None:
                self._poll_bus()
                if self._sink.is_eos():
                    return
                if self.should_stop():
                    return
                waited = time.monotonic() - last_frame
                if first and not self.spec.live and waited > self.first_frame_timeout_s:
                    raise _PipelineFailure(f"no video frame after {self.first_frame_timeout_s:.0f} s "
                                           f"(no video stream, or a stream nothing here can decode)")
                if self.spec.reconnects and waited > (self.first_frame_timeout_s if first else self.stall_timeout_s):
                    # a dead network camera often sends nothing at all instead of an error
                    raise _PipelineFailure(f"no frame for {waited:.1f} s (stream stalled)")
                continue
            last_frame = time.monotonic()
            if first:
                self._read_caps(sample)
                first = False
            if self.spec.is_file and _clipped_by_edit_list(sample, self.fps):
                self.edit_list_skipped += 1
                continue
            image, pts = sample_to_array(sample)
            self._decode_ms = (time.perf_counter() - t0) * 1e3
            self._age_ms = self._frame_age_ms(sample) if self.spec.live else None
            yield image, pts

    def _frame_age_ms(self, sample) -> float | None:
        Gst = gst().Gst
        buf, seg, clock = sample.get_buffer(), sample.get_segment(), self._pipe.get_clock()
        if clock is None or seg is None or buf.pts == Gst.CLOCK_TIME_NONE:
            return None
        running = seg.to_running_time(Gst.Format.TIME, buf.pts)
        if running == Gst.CLOCK_TIME_NONE:
            return None
        return (clock.get_time() - self._pipe.get_base_time() - running) / 1e6

    def _read_caps(self, sample) -> None:
        g = gst()
        ok, dur = self._pipe.query_duration(g.Gst.Format.TIME)
        self.duration_ns = int(dur) if ok and dur > 0 else None
        info = g.GstVideo.VideoInfo.new_from_caps(sample.get_caps())
        self.width, self.height = int(info.width), int(info.height)
        if info.fps_n > 0 and info.fps_d > 0:
            self.fps = info.fps_n / info.fps_d
        elif self.spec.fps:
            self.fps = float(self.spec.fps)


def _clipped_by_edit_list(sample, fps: float | None) -> bool:
    """True for a frame that starts before the container's edit-list start.

    MP4/MOV edit lists can begin between two frames.  qtdemux then delivers the frame that
    straddles the start with its pts clipped to the segment start and a shortened duration;
    FFmpeg (ffprobe, OpenCV) and players discard that frame.  Skipping it keeps edgepose's
    frame count and timeline identical to theirs.
    """
    if not fps:
        return False
    Gst = gst().Gst
    buf, seg = sample.get_buffer(), sample.get_segment()
    if seg is None or buf.pts == Gst.CLOCK_TIME_NONE or buf.duration == Gst.CLOCK_TIME_NONE:
        return False
    return seg.start > 0 and buf.pts == seg.start and buf.duration < 0.9 * 1e9 / fps


def _missing_plugin_text(msg, st) -> str:
    try:
        import gi

        gi.require_version("GstPbutils", "1.0")
        from gi.repository import GstPbutils

        return GstPbutils.missing_plugin_message_get_description(msg)
    except (ImportError, ValueError):  # GstPbutils typelib absent: fall back to the raw structure
        return st.to_string()
