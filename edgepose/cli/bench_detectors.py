"""``edgepose-bench detectors``: face detectors measured against exact ground truth (docs/results/detectors.md).

    edgepose-bench detectors --drive DIR [--drive DIR2] --no-face VIDEO \\
        --detector centerface=~/.cache/edgepose/models/centerface.onnx --detector haar \\
        --detector yunet=../shared/data/detectors/yunet/yunet_s_640_640.onnx --json out.json

Frame sets: a synthetic pose sweep (colour and NIR), synthetic drives (``--drive``: a folder with
``driver.mp4`` + ``driver.poses.jsonl``) scored per glance zone, and a video without faces (every
box is a false positive).  Details in :mod:`edgepose.runtime.detector_eval`.
"""
from __future__ import annotations

import argparse

HELP = "face detectors' recall, false boxes and ms/frame against synthetic ground truth"
DESCRIPTION = __doc__


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--detector", action="append", required=True,
                    help="NAME[=MODEL[@INPUT_SIZE]], e.g. centerface=centerface.onnx@320; repeat; a label "
                         "like yunet:n320=FILE keeps runs of one family apart")
    ap.add_argument("--drive", action="append", default=[], help="synthetic drive folder (driver.mp4 + poses)")
    ap.add_argument("--no-face", default=None, help="a video without faces")
    ap.add_argument("--no-face-frames", type=int, default=150)
    ap.add_argument("--identities", type=int, default=2, help="sweep identities (alternately colour / NIR)")
    ap.add_argument("--cache", default=None, help="folder for the rendered sweep (reused by later runs)")
    ap.add_argument("--timing-only", type=int, default=0, metavar="STEP",
                    help="only time the detectors, taking turns, on every STEP-th frame of the --drive folders")
    ap.add_argument("--json", default=None)


def run(args: argparse.Namespace) -> int:
    from ..runtime.detector_eval import drive_timing, markdown, run_eval

    if args.timing_only:
        for k, v in drive_timing(args.detector, args.drive, args.timing_only).items():
            print(f"| {k} | {v['ms_p50']:.1f} | {v['ms_p90']:.1f} |")
        return 0
    results = run_eval(args.detector, args.drive, no_face=args.no_face, no_face_frames=args.no_face_frames,
                       identities=args.identities, cache=args.cache, json_out=args.json)
    print(markdown(results))
    return 0
