"""One run, built from options: source -> detector + pose model -> FrameProcessor -> observers
(DMS, custom) -> sinks.  The one place that wires a run; ``edgepose run``, ``edgepose demo``,
``edgepose-bench pipeline`` and the pipeline rows of ``edgepose bench`` all come here.

    from edgepose.pipelines import Outputs, RunOptions, build_run

    with build_run(RunOptions("clip.mp4", outputs=Outputs(jsonl="run.jsonl"))) as run:
        summary = run.execute()

:func:`build_run` checks the source, the DMS files and the outputs (edgepose.io_safety) before it
opens anything, builds the DMS observer, then the processor; a :class:`Run` owns them until
:meth:`Run.close`.  :meth:`Run.execute` runs one pass (edgepose.pipelines.loop); a benchmark runs
several passes on one run (warm-up, repeats) with :meth:`Run.reset` in between.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from .loop import LoopOptions, Outputs, run_loop
from .options import DmsOptions, RunOptions
from .sources import (STILL_SUFFIXES, SourceSpec, check_device_source, check_file_source, check_image_source,
                      parse_source)
from .summary import RunSummary

__all__ = ["Run", "build_run", "open_source", "default_events_path", "STILL_SUFFIXES"]

log = logging.getLogger(__name__)


class Run:
    """A built run: the source, the processor and the observers, ready for :meth:`execute`."""

    def __init__(self, options: RunOptions, spec: SourceSpec, processor, observers: list, header: dict | None):
        self.options, self.spec, self.processor = options, spec, processor
        self.observers, self.header = observers, header

    def execute(self, outputs: Outputs | None = None, max_frames: int | None = None) -> RunSummary:
        """One pass through the source; ``outputs`` / ``max_frames`` replace the options' for this pass
        (a benchmark's warm-up and repeats)."""
        o = self.options
        loop = LoopOptions(outputs=outputs if outputs is not None else o.outputs, platform=o.platform,
                           max_frames=max_frames if max_frames is not None else o.max_frames,
                           max_reconnects=o.reconnects, observers=self.observers, header=self.header,
                           progress=o.progress)
        if not o.handle_signals:
            return run_loop(self.spec, self.processor, loop)
        from .stop import StopFlag

        with StopFlag() as stop:  # only around the frames: loading models stays interruptible at once
            return run_loop(self.spec, self.processor, replace(loop, should_stop=stop))

    def reset(self) -> None:
        """Forget tracks and filters (between two passes over a file)."""
        reset = getattr(self.processor, "reset", None)
        if callable(reset):
            reset()

    def dms_summaries(self) -> list:
        """The summary of each observer that has one (the DMS layer's events, MQTT link, events file)."""
        return [obs.summary() for obs in self.observers if callable(getattr(obs, "summary", None))]

    def close(self) -> None:
        try:
            close = getattr(self.processor, "close", None)
            if callable(close):
                close()
        finally:
            # the loop closes them too; this also covers a pass that never started, so the events
            # file and the MQTT link (last will: offline) never dangle
            _close_all(self.observers)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_run(options: RunOptions) -> Run:
    """Check everything that can be checked before loading, then build the observers and the processor."""
    if options.every is not None and options.every < 1:
        raise UserError(f"--every must be at least 1, got {options.every}")
    spec = open_source(options.source)  # bad URIs and paths fail before models load
    overrides = list(options.overrides)
    if spec.is_still or spec.independent_frames:
        # one frame per scene (a still, each image of a folder): the tracker's hysteresis (a face must
        # be seen twice) would hide every face
        overrides = ["tracker.min_hits=1", *overrides]
    model = options.model
    if model is None:  # the default model that ships inside the package (docs/models.md)
        from ..defaults import default_pose_model

        model = default_pose_model()
    options = replace(options, model=str(model), overrides=overrides)
    observers = list(options.observers)
    try:
        observers = _dms_observers(options, spec) + observers
        processor = _build_processor(options)
    except BaseException:
        _close_all(observers)
        raise
    header = options.header if options.header is not None else describe_run(options, processor)
    return Run(options, spec, processor, observers, header)


def open_source(source: str) -> SourceSpec:
    """Parse a source URI and check that its file or device is there (before anything loads)."""
    spec = parse_source(source)
    if spec.is_file:
        check_file_source(spec)
    elif spec.kind == "images":
        check_image_source(spec)
    elif spec.kind == "v4l2":
        check_device_source(spec)
    return spec


def default_events_path(jsonl: str | Path | None) -> str:
    """Where DMS events go when neither the options nor the preset say: next to the run's metadata
    (``run.jsonl`` -> ``run.dms-events.jsonl``), so a recorded run keeps its events; with no JSONL on
    stdout, which ``edgepose run`` leaves free for them."""
    if not jsonl:
        return "-"
    path = Path(jsonl)
    return str(path.with_name(path.name.removesuffix(".jsonl") + ".dms-events.jsonl"))


def check_paths(options: RunOptions, spec: SourceSpec, events: str | None) -> None:
    """Before anything is opened for writing: no output is an input or another output, and each is
    writable (edgepose.io_safety); labels are ``edgepose run``'s flags."""
    from ..io_safety import check_outputs, with_sidecars

    d = options.dms or DmsOptions(preset="")
    preset = Path(d.preset) if d.preset and Path(d.preset).is_file() else None
    out = options.outputs
    inputs = [("source", spec.location if spec.is_file else None), *with_sidecars([("--model", options.model)]),
              ("--detector-model", options.detector_model), ("--config", options.config),
              ("--signals", d.signals), ("--mount", d.mount), ("--dms preset", preset)]
    files = [("--jsonl", out.jsonl), ("--stats", out.stats), ("--dms-events", events)]
    if spec.kind != "images":
        check_outputs(inputs, [("--output", out.video), *files])
        return
    # an image folder: --output is a folder of annotated copies, never inside the input folder (the
    # copies would overwrite the images or join them on the next run); no output is one of the images
    from .images import VIDEO_SUFFIXES

    if out.video and Path(out.video).suffix.lower() in VIDEO_SUFFIXES:
        raise UserError(f"--output {out.video}: an image folder source writes annotated copies of its images "
                        f"into a folder, not a video; give a folder, e.g. --output {Path(spec.location).resolve().name}-annotated")
    images = [("source image", p) for p in check_image_source(spec)]
    check_outputs([*inputs, *images], files, dir_outputs=[("--output", out.video)],
                  input_dirs=[("source folder", spec.location)])


def _dms_observers(options: RunOptions, spec: SourceSpec) -> list:
    """The DMS layer's frame observer (``edgepose.dms.create_frame_observer``), after the output checks;
    cameras and streams also get its stall watchdog on the wall clock (docs/dms.md)."""
    d = options.dms
    if d is None:
        check_paths(options, spec, None)
        return []
    for flag, path in (("--signals", d.signals), ("--mount", d.mount)):
        if path and not Path(path).expanduser().is_file():
            raise UserError(f"{flag} file not found: {path}; check the path")
    try:
        from .. import dms
    except ImportError as exc:
        raise UserError(f"--dms needs the edgepose.dms package ({exc})") from None
    factory = getattr(dms, "create_frame_observer", None)
    if factory is None:
        raise UserError("--dms is not available in this edgepose version (edgepose.dms.create_frame_observer "
                        "is missing); run without --dms")
    cfg = dms.load_preset(d.preset, list(d.overrides))
    events = str(d.events) if d.events else cfg.outputs.events
    default = not events
    if default:
        events = default_events_path(options.outputs.jsonl)
    check_paths(options, spec, events)
    if default and events != "-":  # the JSONL creates its folder; the events file beside it must not fail there
        Path(events).parent.mkdir(parents=True, exist_ok=True)
    obs = factory(cfg, events_out=None if events.lower() == "none" else events, mqtt=d.mqtt,
                  signals=d.signals, mount=d.mount, write_states=d.write_states, live_watchdog=spec.live)
    if events.lower() != "none":
        log.info("DMS events -> %s", "stdout" if events == "-" else events)
    return [obs]


def _build_processor(options: RunOptions):
    """Detector + pose backend + FrameProcessor (edgepose.runtime)."""
    from ..runtime.frame import FrameProcessor

    return FrameProcessor.from_options(
        model=options.model, detector=options.detector, detector_model=options.detector_model,
        detector_size=options.detector_size, detect_every=options.every, device=options.device,
        threads=options.threads, overrides=options.overrides, config=options.config)


def describe_run(options: RunOptions, processor) -> dict:
    """The JSONL header's description of the run: what was asked for and what actually runs."""
    header = {"model": str(options.model), "detector": options.detector, "detect_every": options.every}
    det = getattr(processor, "detector", None)
    ran = getattr(det, "name", None)
    if ran:  # what actually runs: YuNet/UltraFace fall back to Haar when their model is missing
        header["detector"] = ran
        path = getattr(det, "model_path", None)
        header["detector_model"] = str(path) if path else None
        if ran != str(options.detector).lower():
            header["detector_requested"] = options.detector
    cfg = getattr(processor, "cfg", None)
    if cfg is not None:  # the resolved runtime options, so a run can be reproduced from its JSONL
        from ..config import to_dict

        header["runtime"] = to_dict(cfg)
    return header


def _close_all(observers: list) -> None:
    """Close every observer (events file, MQTT link) even when one of them fails to."""
    for obs in observers:
        close = getattr(obs, "close", None)
        if not callable(close):
            continue
        try:
            close()
        except Exception as exc:  # the first error on its way up matters more
            log.warning("closing %s failed: %s", type(obs).__name__, exc)
