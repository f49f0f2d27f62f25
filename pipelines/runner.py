"""The frame loop behind ``edgepose run``: source -> processor -> observers -> overlay -> sinks.

:func:`run_pipeline` runs one pass with keyword options; the steps live in :mod:`.loop`
(:class:`~edgepose.pipelines.loop.FrameLoop`), and a whole run (models, DMS, signals) is built from
options by :func:`edgepose.pipelines.builder.build_run`.  ``processor`` is anything with
``process(frame, pts_ns) -> FrameResult`` (normally :class:`edgepose.runtime.FrameProcessor`).
Frame observers (the DMS layer, custom logic) are callables ``observer(result) -> Sequence[str] |
None`` called once per frame after inference; the strings they return are drawn as status lines
and stored in the JSONL record under ``"status"``.  An observer may also define ``close()``,
called when the run ends.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence

from .loop import LoopOptions, Outputs, run_loop
from .sources import SourceSpec, parse_source
from .summary import RunSummary

__all__ = ["FrameObserver", "RunSummary", "run_pipeline"]


class FrameObserver(Protocol):
    def __call__(self, result) -> Sequence[str] | None: ...


def run_pipeline(source: str | SourceSpec, processor, *, output: str | Path | None = None,
                 jsonl: str | Path | None = None, display: bool = False, rtsp_port: int | None = None,
                 rtsp_mount: str = "/edgepose", platform: str | None = None, max_frames: int | None = None,
                 observers: Sequence[Callable] = (), header: dict | None = None, draw: bool = True,
                 should_stop: Callable[[], bool] = lambda: False, progress: bool = True,
                 max_reconnects: int = 5, stats_path: str | Path | None = None,
                 async_encode: bool = False) -> RunSummary:
    """One pass of ``source`` through ``processor`` (the keyword form of :func:`.loop.run_loop`)."""
    spec = parse_source(source) if isinstance(source, str) else source
    outputs = Outputs(video=output, jsonl=jsonl, stats=stats_path, display=display, rtsp_port=rtsp_port,
                      rtsp_mount=rtsp_mount, draw=draw, async_encode=async_encode)
    return run_loop(spec, processor, LoopOptions(
        outputs=outputs, platform=platform, max_frames=max_frames, max_reconnects=max_reconnects,
        observers=observers, header=header, should_stop=should_stop, progress=progress))
