"""``edgepose-bench side-by-side``: edgepose's detect + track + pose beside MediaPipe Face Mesh (video mode).

    OMP_NUM_THREADS=1 edgepose-bench side-by-side ../shared/data/videos/single_face.mp4 \\
        ../shared/data/videos/head-pose-face-detection-female.mp4 --every 3,5 --rounds 5 --json sbs.json

Each clip is decoded once into memory (decode is not timed); then, in one process and in interleaved
rounds, MediaPipe's face-mesh graph (an optional peer: skipped with the reason when its runtime does
not import) and the processor ``edgepose run`` builds from the same flags (``--model``, ``--detector``,
``--detector-model``, ``--set``) run over the frames.  Rows: ``edgepose`` (``edgepose run``'s defaults),
``edgepose every=N`` per ``--every``, and ``--variant NAME KEY=VALUE ...`` (runtime overrides, e.g.
``--variant roi tracker.roi=true detector.every=10`` for an option added later).  Details in
:mod:`edgepose.benchmarks.side_by_side`; results in docs/results/pipeline.md.
"""
from __future__ import annotations

import argparse

from .argtypes import int_at_least

HELP = "edgepose's per-frame stages vs MediaPipe Face Mesh (video mode) on the same frames, side by side"
DESCRIPTION = __doc__


def _every_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 3,5, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every N must be at least 1, got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("clips", nargs="+", help="video files (decoded once each, up to --frames frames)")
    p.add_argument("--model", "-m", default=None, help="pose model (default: the shipped one, as edgepose run)")
    p.add_argument("--detector", default="yunet", help="face detector, as edgepose run (default yunet)")
    p.add_argument("--detector-model", default=None, help="detector model file (default: from the model cache)")
    p.add_argument("--detector-size", type=int_at_least(32), default=None)
    p.add_argument("--threads", type=int_at_least(1), default=1,
                   help="ONNX Runtime intra-op threads for edgepose (default 1; MediaPipe's XNNPACK uses 1 on Linux)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="runtime override for every edgepose row (edgepose run --set), repeatable")
    p.add_argument("--every", type=_every_list, default=[3, 5], metavar="N[,N...]",
                   help="also measure edgepose with detector.every=N (default 3,5; every=1 is always measured)")
    p.add_argument("--variant", action="append", nargs="+", default=[], metavar="NAME KEY=VALUE",
                   help="another edgepose row: a name, then runtime overrides, e.g. --variant roi tracker.roi=true")
    p.add_argument("--frames", type=int_at_least(1), default=300, help="at most this many frames per clip (default 300)")
    p.add_argument("--rounds", type=int_at_least(1), default=5, help="interleaved passes over each clip (default 5)")
    p.add_argument("--warmup", type=int_at_least(0), default=10, help="untimed frames per row first (default 10)")
    p.add_argument("--mp-max-faces", type=int_at_least(1), default=1,
                   help="MediaPipe's max_num_faces (default 1, FaceMesh's default)")
    p.add_argument("--no-mediapipe", action="store_true", help="leave the MediaPipe row out")
    p.add_argument("--json", default=None, help="write the whole report here")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..benchmarks.side_by_side import edgepose_variants, markdown, run_side_by_side
    from ..errors import UserError
    from ..io_safety import check_outputs

    for spec in args.variant:
        bad = [kv for kv in spec[1:] if "=" not in kv]
        if "=" in spec[0] or bad:
            raise UserError(f"--variant {' '.join(spec)}: give a name first, then KEY=VALUE overrides "
                            f"(e.g. --variant roi tracker.roi=true)")
    check_outputs([*(("clip", c) for c in args.clips), ("--model", args.model),
                   ("--detector-model", args.detector_model)], [("--json", args.json)])
    variants = edgepose_variants(args.every, args.variant, with_mediapipe=not args.no_mediapipe)
    report = run_side_by_side(args.clips, variants, rounds=args.rounds, warmup=args.warmup, frames=args.frames,
                              model=args.model, detector=args.detector, detector_model=args.detector_model,
                              detector_size=args.detector_size, threads=args.threads, overrides=args.overrides,
                              mp_max_faces=args.mp_max_faces)
    from .main import invoked_command

    report["command"] = invoked_command(args)
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"json: {args.json}")
    return 0
