"""``edgepose-bench soak``: does ``edgepose run`` keep its memory flat over a long run? (docs/results/soak.md)

    edgepose-bench soak --frames 100000 --out soak.json
    edgepose-bench soak --frames 20000 --warmup 2000 -- --every 5 --detector haar

Loops a short clip with ffmpeg (stream copy), runs ``edgepose run`` on it in a child process,
samples the child's RSS and frame count every ``--every-s`` seconds and fits RSS(frame) after
``--warmup`` frames; the slope in KB per frame is the figure.  Arguments after ``--`` replace the
default ``edgepose run`` options (``--every 10 --dms euro-ncap-2023 --dms-events none``).
Ctrl-C stops the run early and still fits the slope over the samples taken.
"""
from __future__ import annotations

import argparse

HELP = "memory soak: RSS slope of a long `edgepose run` (KB per frame)"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--frames", type=int, default=100_000, help="frames to run (default 100000)")
    p.add_argument("--clip", default=None,
                   help="clip to loop (default: $EDGEPOSE_TEST_DATA/videos/head-pose-face-detection-male.mp4)")
    p.add_argument("--warmup", type=int, default=10_000, help="frames before the slope is fitted (default 10000)")
    p.add_argument("--every-s", type=float, default=2.0, help="sampling period in seconds (default 2)")
    p.add_argument("--out", default=None, help="write the samples and the slope as JSON here")
    p.add_argument("--workdir", default=None, help="where the long clip and the JSONL go (default: a temp dir)")
    p.add_argument("run_args", nargs="*", metavar="-- RUN_ARG",
                   help="after --: options for `edgepose run` instead of the defaults")


def run(args: argparse.Namespace) -> int:
    from ..benchmarks.soak import soak

    return soak(frames=args.frames, clip=args.clip, warmup=args.warmup, every_s=args.every_s, out=args.out,
                workdir=args.workdir, run_args=list(args.run_args))
