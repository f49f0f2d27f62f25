"""``edgepose run SOURCE --model M``: face detection + head pose on a video source.

Sources are URIs (file path, file://, v4l2://, csi://, rtsp://, test://), a still image, or a folder
of images (each image one independent frame); outputs an annotated MP4 (``--output``; for an image
folder a folder of annotated copies), a window (``--display``), an RTSP stream (``--rtsp-port``) and
JSON Lines metadata (``--jsonl``).  Ctrl-C (SIGINT) or SIGTERM stops cleanly: the MP4 gets its index
through EOS and the JSONL ends with its summary record.

``--dms PRESET`` adds the driver-monitoring layer (docs/dms.md): its state on the overlay and in the
JSONL, its events as JSON Lines (``--dms-events``; by default next to ``--jsonl`` as
``<name>.dms-events.jsonl``, else on stdout) and over MQTT (``--mqtt``), with vehicle signals
(``--signals``) and the camera mount (``--mount``).

This module only turns the flags into :class:`edgepose.pipelines.RunOptions` and prints the summary;
the run is built and executed by :func:`edgepose.pipelines.build_run` (docs/architecture.md).
"""
from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from .argtypes import int_at_least, int_in_range

HELP = "run face detection + head pose on a video source (GStreamer pipeline)"
DESCRIPTION = __doc__



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="video file, image, folder of images (or \"photos/*.png\"), file://, "
                                  "v4l2:///dev/video0, csi://0, rtsp://..., "
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
    p.add_argument("--output", "-o", default=None, help="annotated video file (.mp4, H.264); for a folder of "
                                                        "images: a folder receiving annotated copies (same names)")
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


def _check_dms_flags(args) -> None:
    given = [f"--{k.replace('_', '-')}" for k in ("dms_events", "dms_states", "dms_set", "signals", "mount", "mqtt")
             if getattr(args, k, None)]
    if given and not args.dms:
        raise UserError(f"{', '.join(given)} only apply to the driver-monitoring layer; add --dms PRESET "
                        "(e.g. --dms euro-ncap-2023) or drop them")


def run_options(args):
    """The command line as :class:`edgepose.pipelines.RunOptions`: the library builds and runs it
    (edgepose.pipelines.builder), this command only parses and prints."""
    from ..pipelines import DmsOptions, Outputs, RunOptions

    _check_dms_flags(args)
    dms = None
    if args.dms:
        dms = DmsOptions(preset=args.dms, overrides=list(args.dms_set), events=args.dms_events,
                         write_states=args.dms_states, signals=args.signals, mount=args.mount, mqtt=args.mqtt)
    outputs = Outputs(video=args.output, jsonl=args.jsonl, stats=args.stats, display=args.display,
                      rtsp_port=args.rtsp_port, rtsp_mount=args.rtsp_mount, draw=not args.no_overlay,
                      async_encode=args.async_encode)
    return RunOptions(source=args.source, model=args.model, detector=args.detector,
                      detector_model=args.detector_model, detector_size=args.detector_size, every=args.every,
                      device=args.device, threads=args.threads, config=args.config, overrides=list(args.overrides),
                      dms=dms, outputs=outputs, platform=args.platform, max_frames=args.max_frames,
                      reconnects=args.reconnects, progress=not args.quiet, handle_signals=True)


def run(args) -> int:
    from ..pipelines.builder import build_run, open_source
    from ..runtime.idswitch import format_id_switches

    open_source(args.source)  # a bad URI, path or device is reported before a misplaced flag
    with build_run(run_options(args)) as built:
        summary = built.execute()
    options = built.options
    print(f"\n{summary.frames} frames in {summary.wall_s:.2f} s ({summary.fps:.1f} FPS end to end), "
          f"faces in {summary.frames_with_faces} frames" + (" - stopped by signal" if summary.interrupted else ""),
          file=sys.stderr)
    print(summary.table, file=sys.stderr)
    if summary.id_switches:
        print(format_id_switches(summary.id_switches), file=sys.stderr)
    video = "annotated images" if built.spec.independent_frames else "video"
    for what, path in ((video, options.outputs.video), ("metadata", options.outputs.jsonl),
                       ("stats", options.outputs.stats)):
        if path:
            print(f"{what}: {path}", file=sys.stderr)
    for dms_summary in built.dms_summaries():
        print(f"DMS: {dms_summary}", file=sys.stderr)
    if summary.dropped_frames:
        print(f"warning: {summary.dropped_frames} frames of the source are missing (corrupt data or decode errors); "
              f"check it with `ffmpeg -v error -i {args.source} -f null -`", file=sys.stderr)
    if summary.decode_errors:
        names = ", ".join(summary.undecodable[:5]) + (", ..." if len(summary.undecodable) > 5 else "")
        print(f"warning: {summary.decode_errors} images could not be decoded and were skipped ({names}); "
              f"check or replace them", file=sys.stderr)
    for f in summary.sink_failures:  # side outputs that stopped while monitoring went on
        where = f"at frame {f['frame']}" if f["frame"] is not None else "at the end"
        print(f"warning: the {f['sink']} output {f['target']} stopped {where} ({f['at']}): {f['error']}",
              file=sys.stderr)
    return 0
