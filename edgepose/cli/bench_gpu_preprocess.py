"""``edgepose-bench gpu-preprocess``: latency of the GPU face-crop kernel against the CPU path.

    edgepose-bench gpu-preprocess --frame 1920x1080 --faces 1 4 8 16 --sizes 112 128 160

For each (input size, face count): upload + kernel and kernel alone (CUDA events), and the CPU path
(:func:`edgepose.preprocess.preprocess_batch`); every configuration is first checked against the
kernel's NumPy reference (exit 1 on a mismatch).  Prints a Markdown table; ``--json`` writes the
numbers.  Needs pycuda and a CUDA device (desktop GPU or Jetson); details in
:mod:`edgepose.benchmarks.gpu_preprocess`.
"""
from __future__ import annotations

import argparse

HELP = "GPU face-crop kernel (crop + resize + normalise) latency vs the CPU path (needs CUDA)"
DESCRIPTION = __doc__


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--frame", default="1920x1080", help="frame WxH (default 1920x1080)")
    ap.add_argument("--image", help="a photo to use as the frame content (resized to --frame)")
    ap.add_argument("--gray", action="store_true", help="GRAY8 frames (IR cameras) instead of BGR")
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 128, 160])
    ap.add_argument("--color-order", default="RGB", choices=["RGB", "BGR", "GRAY"])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--cpu-iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json", help="write the results here")


def run(args: argparse.Namespace) -> int:
    from ..benchmarks.gpu_preprocess import run_gpu_preprocess

    return run_gpu_preprocess(args.frame, image=args.image, gray=args.gray, faces=args.faces, sizes=args.sizes,
                              color_order=args.color_order, iters=args.iters, cpu_iters=args.cpu_iters,
                              warmup=args.warmup, json_out=args.json)
