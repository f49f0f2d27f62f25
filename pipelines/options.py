"""The options of one run (:class:`RunOptions`), what :func:`edgepose.pipelines.builder.build_run` builds from.

Plain data, no I/O: the CLIs (``edgepose run``, ``edgepose demo``) and the benchmarks fill these from
their own arguments; defaults are those of the library (no signal handlers, the shipped model).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .loop import Outputs

__all__ = ["DmsOptions", "Outputs", "RunOptions"]


@dataclass
class DmsOptions:
    """The driver-monitoring layer (docs/dms.md): ``edgepose.dms.create_frame_observer`` as an observer."""
    preset: str | Path  # a shipped name (euro-ncap-2023, eu-addw) or a YAML path
    overrides: Sequence[str] = ()  # KEY=VALUE preset overrides
    # events as JSON Lines: a path, '-' = stdout, 'none' = only the log; None = the preset's
    # outputs.events, else next to the JSONL as NAME.dms-events.jsonl, else stdout
    events: str | Path | None = None
    write_states: bool = False  # also the periodic state records
    signals: str | Path | None = None  # vehicle signals (.csv / .jsonl)
    mount: str | Path | None = None  # camera mount YAML
    mqtt: str | None = None  # mqtt://HOST:PORT/topic/prefix


@dataclass
class RunOptions:
    """Everything one run needs: source, models, per-frame settings, observers, outputs, limits."""
    source: str  # file path or URI (file://, v4l2://, csi://, rtsp://, test://)
    # -- models and per-frame processing (FrameProcessor.from_options) --
    model: str | Path | None = None  # None = the shipped default model (edgepose.defaults)
    detector: str = "yunet"
    detector_model: str | Path | None = None
    detector_size: int | None = None
    every: int | None = None  # detect every N frames; None = the runtime config's value
    device: str | None = None
    threads: int | None = None
    config: str | Path | None = None  # runtime YAML
    overrides: Sequence[str] = ()  # runtime KEY=VALUE overrides
    # -- observers and outputs --
    dms: DmsOptions | None = None
    observers: Sequence[Callable] = ()  # more frame observers; the run closes them
    outputs: Outputs = field(default_factory=Outputs)
    # JSONL header fields; None = describe the run (model, detector requested and run, detect_every,
    # the resolved runtime options) so it can be reproduced from its JSONL
    header: dict | None = None
    # -- limits and control --
    platform: str | None = None  # desktop | jetson; None = detected
    max_frames: int | None = None
    reconnects: int = 5  # for rtsp:// and v4l2:// sources
    progress: bool = True
    handle_signals: bool = False  # Ctrl-C / SIGTERM finish the outputs (pipelines.stop.StopFlag)
