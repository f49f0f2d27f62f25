"""The frame loop behind ``edgepose run``: source -> processor -> observers -> overlay -> sinks.

:func:`run_pipeline` is the library entry point; the CLI only parses flags and builds the
processor.  ``processor`` is anything with ``process(frame, pts_ns) -> FrameResult`` (normally
:class:`edgepose.runtime.FrameProcessor`).  Frame observers (the DMS layer, custom logic) are
callables ``observer(result) -> Sequence[str] | None`` called once per frame after inference;
the strings they return are drawn as status lines and stored in the JSONL record under
``"status"``.  An observer may also define ``close()``, called when the run ends.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

from ..errors import UserError
from ..metadata import atomic_write_text
from ..runrecord import SCHEMA, RunRecordWriter, frame_record
from ..sinks import sink_failure
from .reader import VideoSource
from .sources import SourceSpec, parse_source
from .stats import LatencyStats
from .templates import detect_platform

log = logging.getLogger(__name__)

__all__ = ["FrameObserver", "RunSummary", "run_pipeline"]


class FrameObserver(Protocol):
    def __call__(self, result) -> Sequence[str] | None: ...


@dataclass
class RunSummary:
    frames: int = 0
    wall_s: float = 0.0
    fps: float = 0.0
    interrupted: bool = False
    faces_total: int = 0
    frames_with_faces: int = 0
    width: int | None = None
    height: int | None = None
    source_fps: float | None = None
    reconnects: int = 0
    edit_list_skipped: int = 0
    dropped_frames: int = 0  # files: frames lost to corrupt data / decode errors (gaps in the timeline)
    decode_warnings: int = 0  # warnings the decoder or demuxer posted
    ended_early_s: list | None = None  # files: [last frame end, declared duration] when cut off
    frames_written: int = 0
    # side outputs that failed during the run (disk full, ...): sink, target, frame, at, error
    sink_failures: list = field(default_factory=list)
    dms: dict | None = None  # the DMS observer's summary (events, MQTT link, events file)
    latency_ms: dict = field(default_factory=dict)
    table: str = ""

    def to_record(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "table"}
        return {"type": "summary", "schema": SCHEMA, **d}


def _progress(enabled: bool, total: int | None):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


def _write_jsonl(writer, record: dict, summary: RunSummary, frame: int | None):
    """Write one record; on a failed write (disk full) stop the JSONL sink and return None."""
    try:
        writer.write(record)
        return writer
    except OSError as exc:
        summary.sink_failures.append(sink_failure("jsonl", writer.path, exc, frame))
        try:
            writer.close()
        except OSError:
            pass  # the buffered tail cannot be written either
        return None


def _drop_video(video, summary: RunSummary, exc: BaseException, frame: int | None) -> None:
    """The recording failed: record it, keep what the file holds (fragmented MP4), free the pipeline."""
    summary.sink_failures.append(sink_failure("video", video.file or "display", exc, frame))
    summary.frames_written = video.frames_written
    video.abort()


def run_pipeline(source: str | SourceSpec, processor, *, output: str | Path | None = None,
                 jsonl: str | Path | None = None, display: bool = False, rtsp_port: int | None = None,
                 rtsp_mount: str = "/edgepose", platform: str | None = None, max_frames: int | None = None,
                 observers: Sequence[Callable] = (), header: dict | None = None, draw: bool = True,
                 should_stop: Callable[[], bool] = lambda: False, progress: bool = True,
                 max_reconnects: int = 5, stats_path: str | Path | None = None,
                 async_encode: bool = False) -> RunSummary:
    spec = parse_source(source) if isinstance(source, str) else source
    platform = platform or detect_platform()
    if max_frames is not None and max_frames <= 0:
        raise UserError(f"--max-frames must be positive, got {max_frames}")
    if display:
        from .writer import check_display

        check_display(platform)
    # open the JSONL first: a bad path fails before any work is done
    writer = RunRecordWriter(jsonl) if jsonl else None
    stats = LatencyStats()
    summary = RunSummary()
    video = rtsp = None
    bar = _progress(progress, max_frames)
    src = VideoSource(spec, platform, max_reconnects=max_reconnects, should_stop=should_stop)
    t_start = time.perf_counter()
    fps_ema = None
    t_prev = None
    reconnects_seen = 0
    try:
        for frame in src:
            t0 = time.perf_counter()
            if summary.frames == 0:
                summary.width, summary.height, summary.source_fps = src.width, src.height, src.fps
                if bar is not None and max_frames is None and src.expected_frames:
                    bar.total = src.expected_frames
                out_fps = src.fps or 30.0
                if writer:
                    writer = _write_jsonl(writer, {"type": "header", "schema": SCHEMA, "source": spec.name, "platform": platform,
                                  "width": src.width, "height": src.height, "fps": src.fps,
                                  "format": spec.format, **(header or {})}, summary, 0)
                if output or display:
                    from .writer import VideoOutput

                    video = VideoOutput(src.width, src.height, out_fps, file=output, display=display,
                                        platform=platform, async_encode=async_encode)
                if rtsp_port:
                    from .rtsp import RtspOutput

                    rtsp = RtspOutput(rtsp_port, src.width, src.height, out_fps, mount=rtsp_mount, platform=platform)
            if src.reconnect_count != reconnects_seen:
                reconnects_seen = src.reconnect_count
                reset = getattr(processor, "reset", None)
                if callable(reset):
                    reset()  # tracks and filters from before the outage are stale
            result = processor.process(frame.image, frame.pts_ns)
            timings = {"decode": frame.decode_ms}
            timings.update({k: float(v) for k, v in (getattr(result, "timings", None) or {}).items()})
            status: list[str] = []
            for obs in observers:
                lines = obs(result)
                if lines:
                    status.extend(str(s) for s in lines)
            faces = list(getattr(result, "faces", []) or [])
            summary.faces_total += len(faces)
            summary.frames_with_faces += bool(faces)
            if video or rtsp:
                t_ov = time.perf_counter()
                from ..overlay import draw_frame_result
                from ..preprocess import to_bgr

                # the sinks take BGR: GRAY8 (IR) frames are converted even without the overlay
                img = draw_frame_result(frame.image, result, fps_ema, status) if draw else to_bgr(frame.image)
                if img.shape[:2] != (summary.height, summary.width):
                    # a reconnected camera may come back at another size; the outputs keep theirs
                    import cv2

                    img = cv2.resize(to_bgr(img), (summary.width, summary.height), interpolation=cv2.INTER_AREA)
                t_enc = time.perf_counter()
                timings["overlay"] = (t_enc - t_ov) * 1e3
                if video:
                    try:
                        video.push(img, frame.pts_ns)
                    except UserError as exc:  # disk full, unmounted: the recording stops, monitoring goes on
                        _drop_video(video, summary, exc, frame.index)
                        video = None
                if rtsp:
                    rtsp.push(img, frame.pts_ns)
                timings["encode"] = (time.perf_counter() - t_enc) * 1e3
            t_end = time.perf_counter()
            # total = decode wait + everything this loop did with the frame
            timings["total"] = frame.decode_ms + (t_end - t0) * 1e3
            if frame.age_ms is not None:  # live: capture -> results written (what an alert waits)
                timings["capture_to_output"] = frame.age_ms + (t_end - t0) * 1e3
            stats.add(timings)
            if writer:
                writer = _write_jsonl(writer, frame_record(frame.index, frame.pts_ns, faces, timings, status),
                                      summary, frame.index)
            summary.frames += 1
            if t_prev is not None:
                inst = 1.0 / max(t_end - t_prev, 1e-6)
                fps_ema = inst if fps_ema is None else 0.9 * fps_ema + 0.1 * inst
            t_prev = t_end
            if bar is not None:
                bar.update(1)
                if summary.frames % 10 == 0 and fps_ema:
                    bar.set_postfix(fps=f"{fps_ema:.1f}", faces=len(faces), refresh=False)
            if max_frames is not None and summary.frames >= max_frames:
                break
            if should_stop():
                break
        summary.interrupted = bool(should_stop())
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        src.close()
        if bar is not None:
            bar.close()
        # finish the outputs even when an error is on its way up: what was processed stays usable
        if video is not None:
            try:
                video.close()
            finally:
                summary.frames_written = video.frames_written
        if rtsp is not None:
            rtsp.close()
        for obs in observers:
            close = getattr(obs, "close", None)
            if callable(close):
                close()
            summary_of = getattr(obs, "summary", None)
            if callable(summary_of):
                summary.dms = summary_of()
        summary.wall_s = round(time.perf_counter() - t_start, 3)
        summary.fps = round(summary.frames / summary.wall_s, 2) if summary.wall_s > 0 else 0.0
        summary.reconnects = src.reconnect_count
        summary.edit_list_skipped = src.edit_list_skipped
        summary.dropped_frames, summary.decode_warnings = src.dropped_frames, src.decode_warnings
        summary.ended_early_s = [round(v, 3) for v in src.ended_early_s] if src.ended_early_s else None
        summary.latency_ms = stats.summary()
        summary.table = stats.table()
        if writer is not None:
            writer = _write_jsonl(writer, summary.to_record(), summary, None)
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:
                summary.sink_failures.append(sink_failure("jsonl", writer.path, exc, None))
        if stats_path:
            atomic_write_text(stats_path, json.dumps(summary.to_record(), indent=2) + "\n")
    return summary
