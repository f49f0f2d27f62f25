"""One pass of a source through a processor, in steps: open, one step per frame, finish.

:class:`FrameLoop` is the engine behind :func:`edgepose.pipelines.runner.run_pipeline` and
:class:`edgepose.pipelines.builder.Run`.  Its state (sinks, counters, the FPS average) lives on the
object, so each step takes only what changes per frame:

* :meth:`FrameLoop.open`    checks, the JSONL writer, the progress bar, the source
* :meth:`FrameLoop.step`    one frame: processor -> observers -> overlay -> video / RTSP / annotated
  images -> JSONL (the sinks open on the first frame, when the size and rate are known); the frames of
  an image folder are independent: the processor starts a new scene before each one
* :meth:`FrameLoop.finish`  close the sinks even when an error is on its way up, fill the summary,
  write the summary record and ``--stats``
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from ..metadata import atomic_write_text
from ..runrecord import SCHEMA, RunRecordWriter, frame_record
from ..runtime.idswitch import IdSwitchCounter
from ..sinks import sink_failure
from .reader import Frame, VideoSource
from .sources import SourceSpec
from .stats import LatencyStats
from .summary import RunSummary
from .templates import detect_platform

log = logging.getLogger(__name__)

__all__ = ["Outputs", "LoopOptions", "FrameLoop", "run_loop"]


def _never() -> bool:
    return False


@dataclass
class Outputs:
    """Where one pass writes: the annotated video, a window, RTSP, the JSONL records, ``--stats``."""
    video: str | Path | None = None  # annotated MP4 (H.264); an image folder source: a folder of annotated copies
    jsonl: str | Path | None = None  # per-frame records + header + summary (edgepose.runrecord)
    stats: str | Path | None = None  # the summary record as JSON
    display: bool = False
    rtsp_port: int | None = None
    rtsp_mount: str = "/edgepose"
    draw: bool = True  # False: the video outputs get the frames without drawings
    async_encode: bool = False  # encode in a GStreamer thread, overlapping the next frame


@dataclass
class LoopOptions:
    """Everything one pass needs besides the source and the processor."""
    outputs: Outputs = field(default_factory=Outputs)
    platform: str | None = None  # desktop | jetson; None = detected
    max_frames: int | None = None
    max_reconnects: int = 5
    observers: Sequence[Callable] = ()  # frame observers: result -> status lines | None, optional close()
    header: dict | None = None  # extra fields of the JSONL header record
    should_stop: Callable[[], bool] = _never  # polled between frames (and while a source waits)
    progress: bool = True


def _progress(enabled: bool, total: int | None):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


class FrameLoop:
    """The state of one pass; :meth:`run` = :meth:`open`, :meth:`step` per frame, :meth:`finish`."""

    def __init__(self, spec: SourceSpec, processor, opts: LoopOptions):
        self.spec, self.processor, self.opts = spec, processor, opts
        self.out = opts.outputs
        self.platform = opts.platform or detect_platform()
        self.summary = RunSummary()
        self.stats = LatencyStats()
        self.writer: RunRecordWriter | None = None
        self.video = self.rtsp = self.bar = self.images = None
        self.src: VideoSource | None = None  # or an ImageFolderSource (the same attributes)
        self.t_start = 0.0
        self.fps_ema: float | None = None
        self.t_prev: float | None = None
        self.reconnects_seen = 0
        # ids are only comparable across frames of one scene: none for image folders
        self.ids = None if spec.independent_frames else IdSwitchCounter()

    def run(self) -> RunSummary:
        self.open()
        try:
            for frame in self.src:
                if self.step(frame):
                    break
            self.summary.interrupted = bool(self.opts.should_stop())
        except KeyboardInterrupt:
            self.summary.interrupted = True
        finally:
            self.finish()
        return self.summary

    # -- open ----------------------------------------------------------------------------------
    def open(self) -> None:
        o = self.opts
        if o.max_frames is not None and o.max_frames <= 0:
            raise UserError(f"--max-frames must be positive, got {o.max_frames}")
        if self.out.display:
            from .writer import check_display

            check_display(self.platform)
        # open the JSONL first: a bad path fails before any work is done
        self.writer = RunRecordWriter(self.out.jsonl) if self.out.jsonl else None
        self.bar = _progress(o.progress, o.max_frames)
        if self.spec.independent_frames:
            from .images import ImageFolderSource

            self.src = ImageFolderSource(self.spec, should_stop=o.should_stop)
        else:
            self.src = VideoSource(self.spec, self.platform, max_reconnects=o.max_reconnects,
                                   should_stop=o.should_stop)
        self.t_start = time.perf_counter()

    def _open_sinks(self) -> None:
        """On the first frame: the header record and the video / RTSP sinks at the source's size."""
        src, s, out = self.src, self.summary, self.out
        s.width, s.height, s.source_fps = src.width, src.height, src.fps
        if self.bar is not None and self.opts.max_frames is None and src.expected_frames:
            self.bar.total = src.expected_frames
        out_fps = src.fps or 30.0
        if self.writer:
            self._write({"type": "header", "schema": SCHEMA, "source": self.spec.name, "platform": self.platform,
                         "width": src.width, "height": src.height, "fps": src.fps, "format": self.spec.format,
                         **(self.opts.header or {})}, 0)
        video_file = out.video
        if self.spec.independent_frames and out.video:  # an image folder: annotated copies, not a video
            from .images import AnnotatedImages

            self.images, video_file = AnnotatedImages(out.video), None
        if video_file or out.display:
            from .writer import VideoOutput

            self.video = VideoOutput(src.width, src.height, out_fps, file=video_file, display=out.display,
                                     platform=self.platform, async_encode=out.async_encode)
        if out.rtsp_port:
            from .rtsp import RtspOutput

            self.rtsp = RtspOutput(out.rtsp_port, src.width, src.height, out_fps, mount=out.rtsp_mount,
                                   platform=self.platform)

    # -- per frame -----------------------------------------------------------------------------
    def step(self, frame: Frame) -> bool:
        """Process one frame through every sink; True when the pass should stop."""
        t0 = time.perf_counter()
        s = self.summary
        if s.frames == 0:
            self._open_sinks()
        self._reset_after_reconnect()
        if self.spec.independent_frames:
            self._new_scene()
        result = self.processor.process(frame.image, frame.pts_ns)
        timings = {"decode": frame.decode_ms}
        timings.update({k: float(v) for k, v in (getattr(result, "timings", None) or {}).items()})
        status = self._observe(result)
        faces = list(getattr(result, "faces", []) or [])
        s.faces_total += len(faces)
        s.frames_with_faces += bool(faces)
        if self.ids is not None:
            self.ids.add(frame.index, faces)
        if self.video or self.rtsp or self.images:
            self._render(frame, result, status, timings)
        t_end = time.perf_counter()
        # total = decode wait + everything this loop did with the frame
        timings["total"] = frame.decode_ms + (t_end - t0) * 1e3
        if frame.age_ms is not None:  # live: capture -> results written (what an alert waits)
            timings["capture_to_output"] = frame.age_ms + (t_end - t0) * 1e3
        self.stats.add(timings)
        if self.writer:
            extra = {} if frame.name is None else {  # an image folder: which image, at its own size
                "image": frame.name, "width": int(frame.image.shape[1]), "height": int(frame.image.shape[0])}
            self._write(frame_record(frame.index, frame.pts_ns, faces, timings, status, **extra), frame.index)
        s.frames += 1
        self._tick(t_end, len(faces))
        if self.opts.max_frames is not None and s.frames >= self.opts.max_frames:
            return True
        return bool(self.opts.should_stop())

    def _reset_after_reconnect(self) -> None:
        if self.src.reconnect_count != self.reconnects_seen:
            self.reconnects_seen = self.src.reconnect_count
            reset = getattr(self.processor, "reset", None)
            if callable(reset):
                reset()  # tracks and filters from before the outage are stale

    def _new_scene(self) -> None:
        """The next frame is unrelated to the last (an image of a folder): forget tracks, filters and the
        driver, and number the faces from 1 again (``new_scene``; a processor without it is reset)."""
        start = getattr(self.processor, "new_scene", None) or getattr(self.processor, "reset", None)
        if callable(start):
            start()

    def _observe(self, result) -> list[str]:
        status: list[str] = []
        for obs in self.opts.observers:
            lines = obs(result)
            if lines:
                status.extend(str(s) for s in lines)
        return status

    def _render(self, frame: Frame, result, status: list[str], timings: dict) -> None:
        """Overlay (or plain BGR) -> the video, RTSP and annotated-image sinks; a failed one stops only itself."""
        from ..overlay import draw_frame_result
        from ..preprocess import to_bgr

        s = self.summary
        t_ov = time.perf_counter()
        # the sinks take BGR: GRAY8 (IR) frames are converted even without the overlay
        img = draw_frame_result(frame.image, result, self.fps_ema, status) if self.out.draw else to_bgr(frame.image)
        shown = img
        if (self.video or self.rtsp) and img.shape[:2] != (s.height, s.width):
            # a reconnected camera (or the next image of a folder) may come at another size; the
            # video outputs keep theirs (annotated images keep their own)
            import cv2

            shown = cv2.resize(to_bgr(img), (s.width, s.height), interpolation=cv2.INTER_AREA)
        t_enc = time.perf_counter()
        timings["overlay"] = (t_enc - t_ov) * 1e3
        if self.images:
            try:
                self.images.write(img, frame.name)
            except UserError as exc:  # disk full: the copies stop, the records go on
                self._drop_images(exc, frame.index)
        if self.video:
            try:
                self.video.push(shown, frame.pts_ns)
            except UserError as exc:  # disk full, unmounted: the recording stops, monitoring goes on
                self._drop_video(exc, frame.index)
        if self.rtsp:
            self.rtsp.push(shown, frame.pts_ns)
        timings["encode"] = (time.perf_counter() - t_enc) * 1e3

    def _tick(self, t_end: float, faces: int) -> None:
        """The running FPS (for the overlay and the progress bar)."""
        if self.t_prev is not None:
            inst = 1.0 / max(t_end - self.t_prev, 1e-6)
            self.fps_ema = inst if self.fps_ema is None else 0.9 * self.fps_ema + 0.1 * inst
        self.t_prev = t_end
        if self.bar is not None:
            self.bar.update(1)
            if self.summary.frames % 10 == 0 and self.fps_ema:
                self.bar.set_postfix(fps=f"{self.fps_ema:.1f}", faces=faces, refresh=False)

    # -- side outputs that fail ----------------------------------------------------------------
    def _write(self, record: dict, frame: int | None) -> None:
        """Write one record; on a failed write (disk full) stop the JSONL sink."""
        try:
            self.writer.write(record)
        except OSError as exc:
            self.summary.sink_failures.append(sink_failure("jsonl", self.writer.path, exc, frame))
            try:
                self.writer.close()
            except OSError:
                pass  # the buffered tail cannot be written either
            self.writer = None

    def _drop_video(self, exc: BaseException, frame: int | None) -> None:
        """The recording failed: record it, keep what the file holds (fragmented MP4), free the pipeline."""
        video = self.video
        self.summary.sink_failures.append(sink_failure("video", video.file or "display", exc, frame))
        self.summary.frames_written = video.frames_written
        video.abort()
        self.video = None

    def _drop_images(self, exc: BaseException, frame: int | None) -> None:
        self.summary.sink_failures.append(sink_failure("images", self.images.folder, exc, frame))
        self.summary.frames_written = self.images.frames_written
        self.images = None

    # -- finish --------------------------------------------------------------------------------
    def finish(self) -> None:
        """Finish the outputs even when an error is on its way up: what was processed stays usable."""
        self.src.close()
        if self.bar is not None:
            self.bar.close()
        self._close_sinks()
        self._close_observers()
        self._fill_summary()
        self._write_summary()

    def _close_sinks(self) -> None:
        if self.video is not None:
            try:
                self.video.close()
            finally:
                self.summary.frames_written = self.video.frames_written
        if self.rtsp is not None:
            self.rtsp.close()
        if self.images is not None:
            self.summary.frames_written = self.images.frames_written

    def _close_observers(self) -> None:
        for obs in self.opts.observers:
            close = getattr(obs, "close", None)
            if callable(close):
                close()
            summary_of = getattr(obs, "summary", None)
            if callable(summary_of):
                self.summary.dms = summary_of()

    def _fill_summary(self) -> None:
        s, src = self.summary, self.src
        s.wall_s = round(time.perf_counter() - self.t_start, 3)
        s.fps = round(s.frames / s.wall_s, 2) if s.wall_s > 0 else 0.0
        s.reconnects = src.reconnect_count
        s.edit_list_skipped = src.edit_list_skipped
        s.dropped_frames, s.decode_warnings = src.dropped_frames, src.decode_warnings
        s.decode_errors = getattr(src, "decode_errors", 0)
        s.undecodable = list(getattr(src, "undecodable", []))
        s.ended_early_s = [round(v, 3) for v in src.ended_early_s] if src.ended_early_s else None
        s.latency_ms = self.stats.summary()
        s.table = self.stats.table()
        s.id_switches = self.ids.summary() if self.ids is not None else None

    def _write_summary(self) -> None:
        if self.writer is not None:
            self._write(self.summary.to_record(), None)
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as exc:
                self.summary.sink_failures.append(sink_failure("jsonl", self.writer.path, exc, None))
        if self.out.stats:
            atomic_write_text(self.out.stats, json.dumps(self.summary.to_record(), indent=2) + "\n")


def run_loop(spec: SourceSpec, processor, opts: LoopOptions) -> RunSummary:
    """One pass of ``spec`` through ``processor`` with the sinks and limits of ``opts``."""
    return FrameLoop(spec, processor, opts).run()
