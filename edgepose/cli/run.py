"""``edgepose run SOURCE --model M``: face detection + head pose on a video source.

Sources are URIs (file path, file://, v4l2://, csi://, rtsp://, test://); outputs an annotated
MP4 (``--output``), a window (``--display``), an RTSP stream (``--rtsp-port``) and JSON Lines
metadata (``--jsonl``).  Ctrl-C (SIGINT) or SIGTERM stops cleanly: the MP4 gets its index
through EOS and the JSONL ends with its summary record.

``--dms PRESET`` adds the driver-monitoring layer (docs/dms.md): its state on the overlay and in the
JSONL, its events as JSON Lines (``--dms-events``; by default next to ``--jsonl`` as
``<name>.dms-events.jsonl``, else on stdout) and over MQTT (``--mqtt``), with vehicle signals
(``--signals``) and the camera mount (``--mount``).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ..errors import UserError
from .argtypes import int_at_least, int_in_range

HELP = "run face detection + head pose on a video source (GStreamer pipeline)"
DESCRIPTION = __doc__

log = logging.getLogger("edgepose.run")

#: single-image sources (one frame): faces are reported on that frame
STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="video file, file://, v4l2:///dev/video0, csi://0, rtsp://..., "
                                  "test://ball?width=640&height=360&fps=30&num=90 (format=GRAY8 for IR)")
    p.add_argument("--model", "-m", default=None,
                   help="pose model (.onnx, .pt, .engine) with its metadata (default: the shipped FP32 model, "
                        "edgepose.defaults.default_pose_model())")
    p.add_argument("--detector", default="yunet", help="face detector: yunet | ultraface | haar (default yunet)")
    p.add_argument("--detector-model", default=None, help="detector model file (default: from the model cache)")
    p.add_argument("--detector-size", type=int_at_least(32), default=None,
                   help="detector input size (longest side), e.g. 320 for YuNet-320")
    p.add_argument("--every", type=int_at_least(1), default=1, metavar="N",
                   help="run the detector every N frames; the tracker carries boxes in between (default 1)")
    p.add_argument("--output", "-o", default=None, help="annotated video file (.mp4, H.264)")
    p.add_argument("--jsonl", default=None, help="per-frame metadata as JSON Lines (+ summary record)")
    p.add_argument("--stats", default=None, help="also write the run summary + latency table as JSON here")
    p.add_argument("--display", action="store_true", help="show the annotated video in a window")
    p.add_argument("--rtsp-port", type=int_in_range(1, 65535), default=None, metavar="N",
                   help="serve the annotated video at rtsp://<host>:N/edgepose")
    p.add_argument("--rtsp-mount", default="/edgepose", help="RTSP mount point (default /edgepose)")
    p.add_argument("--platform", choices=("desktop", "jetson"), default=None,
                   help="pipeline templates (default: detected, jetson when /etc/nv_tegra_release exists)")
    p.add_argument("--max-frames", type=int_at_least(1), default=None, metavar="N", help="stop after N frames")
    p.add_argument("--reconnects", type=int_at_least(0), default=5, metavar="N",
                   help="reconnect attempts for rtsp:// and v4l2:// sources (backoff 0.5 s doubling to 8 s)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (ONNX Runtime / TensorRT providers)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="intra-op threads for the models (default on the CPU: half the cores, at least 1, so "
                        "GStreamer's decode/encode threads keep the rest; docs/results/pipeline.md)")
    p.add_argument("--async-encode", action="store_true",
                   help="encode the MP4 in a GStreamer thread, overlapping the next frame's inference "
                        "(more FPS on multi-core CPUs; the 'encode' row then shows only the hand-off)")
    p.add_argument("--no-overlay", action="store_true", help="write the video without drawings")
    add_dms_arguments(p)
    p.add_argument("--config", default=None, help="runtime YAML (tracker, driver, camera, smoothing, ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="runtime option override (see edgepose.runtime.RuntimeConfig), repeatable")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def add_dms_set_argument(p: argparse.ArgumentParser, default_note: str = "") -> None:
    """``--dms-set KEY=VALUE`` (repeatable), shared by ``edgepose run`` and ``edgepose demo``."""
    p.add_argument("--dms-set", dest="dms_set", action="append", default=[], metavar="KEY=VALUE",
                   help="DMS preset override, repeatable, e.g. --dms-set long_distraction.threshold_s=2.5"
                        + (f" ({default_note})" if default_note else ""))


def add_dms_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("driver monitoring (docs/dms.md)")
    g.add_argument("--dms", default=None, metavar="PRESET",
                   help="driver-monitoring preset: a shipped name (euro-ncap-2023, eu-addw) or a YAML path; "
                        "adds DMS status lines and events (edgepose.dms)")
    g.add_argument("--dms-events", default=None, metavar="PATH",
                   help="DMS events as JSON Lines; '-' = stdout, 'none' = only the log (default: the preset's "
                        "outputs.events, else next to --jsonl as NAME.dms-events.jsonl, else stdout)")
    g.add_argument("--dms-states", action="store_true",
                   help="also write the periodic DMS state records to the events output")
    add_dms_set_argument(g)
    g.add_argument("--signals", default=None, metavar="PATH",
                   help="vehicle signals for the DMS: .csv/.jsonl with t or pts_ns, speed_kmh, indicator")
    g.add_argument("--mount", default=None, metavar="PATH",
                   help="camera mount YAML for the DMS: road_pose_deg [pitch, yaw, roll] or R_vehicle_cam "
                        "(example: edgepose/dms/presets/mount-example.yaml)")
    g.add_argument("--mqtt", default=None, metavar="URL",
                   help="also publish DMS events and the retained status to mqtt://HOST:PORT/topic/prefix "
                        "(needs `pip install 'edgepose[mqtt]'`)")


class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop polls; a second Ctrl-C aborts at once."""

    def __init__(self):
        self.event = threading.Event()
        self._old = {}

    def __call__(self) -> bool:
        return self.event.is_set()

    def _handler(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print(f"\n{signal.Signals(signum).name}: finishing the outputs (press Ctrl-C again to abort)",
              file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def default_events_path(jsonl: str | None) -> str:
    """Where DMS events go when neither ``--dms-events`` nor the preset says: next to the run's
    metadata (``run.jsonl`` -> ``run.dms-events.jsonl``), so a recorded run keeps its events; with no
    ``--jsonl`` on stdout, which ``edgepose run`` leaves free for them."""
    if not jsonl:
        return "-"
    path = Path(jsonl)
    return str(path.with_name(path.name.removesuffix(".jsonl") + ".dms-events.jsonl"))


def _check_dms_flags(args) -> None:
    given = [f"--{k.replace('_', '-')}" for k in ("dms_events", "dms_states", "dms_set", "signals", "mount", "mqtt")
             if getattr(args, k, None)]
    if given and not args.dms:
        raise UserError(f"{', '.join(given)} only apply to the driver-monitoring layer; add --dms PRESET "
                        "(e.g. --dms euro-ncap-2023) or drop them")
    for flag, path in (("--signals", args.signals), ("--mount", args.mount)):
        if path and not Path(path).expanduser().is_file():
            raise UserError(f"{flag} file not found: {path}; check the path")


def check_run_paths(args, spec, events: str | None) -> None:
    """Before anything is opened for writing: no output of ``edgepose run`` is an input or another
    output, and each is writable (edgepose.io_safety)."""
    from ..io_safety import check_outputs, with_sidecars

    preset = Path(args.dms) if args.dms and Path(args.dms).is_file() else None
    inputs = [("source", spec.location if spec.is_file else None), *with_sidecars([("--model", args.model)]),
              ("--detector-model", args.detector_model), ("--config", args.config), ("--signals", args.signals),
              ("--mount", args.mount), ("--dms preset", preset)]
    check_outputs(inputs, [("--output", args.output), ("--jsonl", args.jsonl), ("--stats", args.stats),
                           ("--dms-events", events)])


def dms_observers(args, live: bool = False, before_open=None) -> list:
    """Frame observers of the DMS layer (``edgepose.dms.create_frame_observer``) from the ``--dms*``,
    ``--signals``, ``--mount`` and ``--mqtt`` options.  ``before_open(events_path or None)`` runs
    once the events path is known and before any output is opened (the output checks)."""
    _check_dms_flags(args)
    if not args.dms:
        if before_open is not None:
            before_open(None)
        return []
    try:
        from .. import dms
    except ImportError as exc:
        raise UserError(f"--dms needs the edgepose.dms package ({exc})") from None
    factory = getattr(dms, "create_frame_observer", None)
    if factory is None:
        raise UserError("--dms is not available in this edgepose version (edgepose.dms.create_frame_observer "
                        "is missing); run without --dms")
    cfg = dms.load_preset(args.dms, args.dms_set)
    events = args.dms_events or cfg.outputs.events
    default = not events
    if default:
        events = default_events_path(args.jsonl)
    if before_open is not None:
        before_open(events)
    if default and events != "-":  # --jsonl creates its folder; the events file beside it must not fail there
        Path(events).parent.mkdir(parents=True, exist_ok=True)
    obs = factory(cfg, events_out=None if events.lower() == "none" else events, mqtt=args.mqtt,
                  signals=args.signals, mount=args.mount, write_states=args.dms_states,
                  live_watchdog=live)
    if events.lower() != "none":
        log.info("DMS events -> %s", "stdout" if events == "-" else events)
    return [obs]


def _close_all(observers: list) -> None:
    """Close every observer (events file, MQTT link) even when one of them fails to."""
    for obs in observers:
        try:
            obs.close()
        except Exception as exc:  # the first error on its way up matters more
            log.warning("closing %s failed: %s", type(obs).__name__, exc)


def build_processor(args):
    """Detector + pose backend + FrameProcessor from the command line."""
    from ..runtime import frame as rt_frame

    return rt_frame.FrameProcessor.from_options(
        model=args.model, detector=args.detector, detector_model=args.detector_model,
        detector_size=args.detector_size, detect_every=args.every, device=args.device,
        threads=args.threads, overrides=args.overrides, config=args.config)


def run(args) -> int:
    from ..pipelines.sources import parse_source

    if args.every < 1:
        raise UserError(f"--every must be at least 1, got {args.every}")
    spec = parse_source(args.source)  # bad URIs fail before models load
    from ..pipelines.sources import check_device_source, check_file_source

    if spec.is_file:  # fail on a bad path before the models load
        check_file_source(spec)
    elif spec.kind == "v4l2":
        check_device_source(spec)
    if spec.is_file and Path(spec.location).suffix.lower() in STILL_SUFFIXES:
        # one frame: the tracker's hysteresis (a face must be seen twice) would hide every face
        args.overrides = ["tracker.min_hits=1", *args.overrides]
    if args.model is None:  # the default model that ships inside the package (docs/models.md)
        from ..defaults import default_pose_model

        args.model = str(default_pose_model())
    # cameras and streams: the DMS also watches for stalls on the wall clock (docs/dms.md)
    observers = dms_observers(args, live=spec.live, before_open=lambda events: check_run_paths(args, spec, events))
    try:
        summary = _run_with_observers(args, spec, observers)
    finally:
        # run_pipeline closes them too; this also covers a model, detector or output that fails to
        # open first, so the events file and the MQTT link (last will: offline) never dangle
        _close_all(observers)
    print(f"\n{summary.frames} frames in {summary.wall_s:.2f} s ({summary.fps:.1f} FPS end to end), "
          f"faces in {summary.frames_with_faces} frames" + (" - stopped by signal" if summary.interrupted else ""),
          file=sys.stderr)
    print(summary.table, file=sys.stderr)
    for what, path in (("video", args.output), ("metadata", args.jsonl), ("stats", args.stats)):
        if path:
            print(f"{what}: {path}", file=sys.stderr)
    for obs in observers:
        summary_of = getattr(obs, "summary", None)
        if callable(summary_of):
            print(f"DMS: {summary_of()}", file=sys.stderr)
    if summary.dropped_frames:
        print(f"warning: {summary.dropped_frames} frames of the source are missing (corrupt data or decode errors); "
              f"check it with `ffmpeg -v error -i {args.source} -f null -`", file=sys.stderr)
    for f in summary.sink_failures:  # side outputs that stopped while monitoring went on
        where = f"at frame {f['frame']}" if f["frame"] is not None else "at the end"
        print(f"warning: the {f['sink']} output {f['target']} stopped {where} ({f['at']}): {f['error']}",
              file=sys.stderr)
    return 0


def _run_with_observers(args, spec, observers: list):
    from ..pipelines.runner import run_pipeline

    processor = build_processor(args)
    header = {"model": str(args.model), "detector": args.detector, "detect_every": args.every}
    det = getattr(processor, "detector", None)
    ran = getattr(det, "name", None)
    if ran:  # what actually runs: YuNet/UltraFace fall back to Haar when their model is missing
        header["detector"] = ran
        path = getattr(det, "model_path", None)
        header["detector_model"] = str(path) if path else None
        if ran != str(args.detector).lower():
            header["detector_requested"] = args.detector
    cfg = getattr(processor, "cfg", None)
    if cfg is not None:  # the resolved runtime options, so a run can be reproduced from its JSONL
        from ..config import to_dict

        header["runtime"] = to_dict(cfg)
    try:
        with _StopFlag() as stop:
            return run_pipeline(
                spec, processor, output=args.output, jsonl=args.jsonl, display=args.display,
                rtsp_port=args.rtsp_port, rtsp_mount=args.rtsp_mount, platform=args.platform,
                max_frames=args.max_frames, observers=observers, header=header, draw=not args.no_overlay,
                should_stop=stop, progress=not args.quiet, max_reconnects=args.reconnects, stats_path=args.stats,
                async_encode=args.async_encode)
    finally:
        close = getattr(processor, "close", None)
        if callable(close):
            close()
