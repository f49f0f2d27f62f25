"""``edgepose-bench pipeline``: end-to-end FPS and per-stage latency of the ``edgepose run`` pipeline on a file.

    edgepose-bench pipeline ../shared/data/videos/single_face.mp4 \
        --model student_int8.onnx --detector yunet --detector-model yunet_s_320_320.onnx --repeat 5

The run is built once and warmed up; each repeat runs the whole pipeline (decode -> detect/track/pose/smooth
-> overlay -> H.264 encode -> MP4 + JSONL) from a fresh tracker state.  Details in
:mod:`edgepose.pipelines.bench`.
"""
from __future__ import annotations

import argparse

HELP = "end-to-end FPS and per-stage latency of the run pipeline on one file (repeats, median table)"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("source")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="pose model file")
    g.add_argument("--arch", help="registry model exported with random weights (latency only)")
    p.add_argument("--input-size", type=int, default=128, help="input size for --arch (default 128)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--detector-model", default=None)
    p.add_argument("--detector-size", type=int, default=None)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-output", action="store_true", help="skip the MP4 encode (inference + JSONL only)")
    p.add_argument("--async-encode", action="store_true", help="encode in a GStreamer thread (see edgepose run)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="runtime option, as `edgepose run --set` (e.g. tracker.roi=true); repeatable")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..pipelines.bench import bench_pipeline

    if args.repeat < 1:
        raise UserError(f"--repeat {args.repeat}: run the pipeline at least once")
    bench_pipeline(args.source, args.model, args.arch, args.input_size, args.detector, args.detector_model,
                   args.detector_size, args.every, args.threads, args.repeat, args.no_output, args.async_encode,
                   args.json, overrides=args.overrides)
    return 0
