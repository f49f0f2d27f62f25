"""``edgepose-bench profile``: per-stage latency of the runtime on a video file (no GStreamer; OpenCV decoding).

    edgepose-bench profile VIDEO --model pose.onnx [--detector yunet --detector-model F]
        [--every N] [--frames N] [--warmup N] [--threads N] [--set key=value ...] [--json out.json]

Prints median / p90 / mean milliseconds for detect, track, pose, smooth and their sum over the
processed frames (after ``--warmup`` frames), and the detector / pose model latencies alone.
With ``--face-sweep`` it measures the cost per extra face instead: per-frame detect + crop + pose
time for the first 1 .. ``--max-faces`` detected faces, with each crop variant (``--crops``,
interleaved), and the least-squares ms per extra face (:mod:`edgepose.runtime.face_cost`).

    edgepose-bench profile VIDEO --model pose.onnx --face-sweep [--max-faces 8]
        [--crops face_by_face,warp_per_face,remap]

Figures depend on the machine and on its load: always publish them with the command line.
"""
from __future__ import annotations

import argparse

HELP = "per-stage latency of the runtime (detect, track, pose, smooth) on a video file"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("video")
    p.add_argument("--model", default=None, help="pose model (omit for detection only)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--detector-model", default=None)
    p.add_argument("--detector-size", type=int, default=None)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", default=None, help="also write the statistics here")
    p.add_argument("--face-sweep", action="store_true",
                   help="time detect + crop + pose for 1..--max-faces faces per frame, per crop variant")
    p.add_argument("--max-faces", type=int, default=8, help="largest number of faces in --face-sweep (default 8)")
    p.add_argument("--inner-repeats", type=int, default=1,
                   help="--face-sweep times each frame and face count this often and keeps the minimum")
    p.add_argument("--min-frames", type=int, default=20,
                   help="--face-sweep fits ms per extra face over face counts seen in at least this many frames")
    p.add_argument("--crops", default=None,
                   help="comma-separated crop variants for --face-sweep: face_by_face, warp_per_face, remap, "
                        "auto (default: the first three)")


def run(args: argparse.Namespace) -> int:
    from ..runtime.profile import format_profile, profile_video
    from .main import invoked_command

    if args.face_sweep:
        from ..runtime.face_cost import face_cost_sweep, format_face_cost

        report = face_cost_sweep(args.video, model=args.model, detector=args.detector,
                                 detector_model=args.detector_model, detector_size=args.detector_size,
                                 frames=args.frames, warmup=args.warmup, threads=args.threads,
                                 max_faces=args.max_faces, min_frames=args.min_frames,
                                 inner_repeats=args.inner_repeats,
                                 variants=args.crops.split(",") if args.crops else None,
                                 overrides=args.overrides, json_out=args.json,
                                 command=invoked_command(args) or "edgepose-bench profile --face-sweep")
        print(format_face_cost(report))
        return 0

    report = profile_video(args.video, model=args.model, detector=args.detector, detector_model=args.detector_model,
                           detector_size=args.detector_size, every=args.every, frames=args.frames,
                           warmup=args.warmup, threads=args.threads, overrides=args.overrides, json_out=args.json,
                           command=invoked_command(args) or "edgepose-bench profile")
    print(format_profile(report))
    return 0
