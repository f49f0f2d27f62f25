"""``edgepose models evaluate``: the default model and every free peer in one table (docs/models.md).

    edgepose models evaluate --data-root ../shared/data \\
        --teacher 3ddfa-v2:teachers/3ddfa_v2/mb05_120x120.pth --teacher whenet --teacher fsanet:teachers/fsanet-onnx \\
        --real-val runs/default-model/real-val.npz --compare old=OLD_FP32.onnx --out docs/results/default-model.json

Rows: the three default files (or ``--models-dir``), each ``--compare NAME=FILE``, each ``--teacher``
and, with two or more teachers, their ensemble.  Columns: AFLW2000 fixtures, agreement with the
ensemble on a build's held-out people (``--real-val``), synthetic test sets, frame-to-frame stability
on ``--clips``, and cost (ms per face, MACs, size).  Details: :mod:`edgepose.assets.evaluate`.
"""
from __future__ import annotations

import argparse

HELP = "measure the default model (or --models-dir) beside its teachers and earlier students"
DESCRIPTION = __doc__


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--data-root", help="shared data folder (default: $EDGEPOSE_TEST_DATA or ../shared/data)")
    ap.add_argument("--detector-model", default="detectors/yunet/yunet_s_640_640.onnx",
                    help="YuNet file (relative to --data-root or absolute); = `edgepose models fetch yunet`")
    ap.add_argument("--models-dir", default=None, help="evaluate the three files of this folder instead of the shipped ones")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=FILE",
                    help="another ONNX pose model as a row (e.g. the previous default file); repeatable")
    ap.add_argument("--teacher", action="append", default=None,
                    help="teacher spec (whenet, 3ddfa-v2[:path], fsanet[:path], a .pt); repeatable; paths relative to "
                         "--data-root work; two or more add the ensemble row. Default: whenet; --teacher '' for none")
    ap.add_argument("--real-val", default=None, help="a build's real-val.npz: agreement with the ensemble on held-out people")
    ap.add_argument("--profiled-val", default=None,
                    help="a build's profiled-val.npz: held-out people rendered at large poses (exact relative labels)")
    ap.add_argument("--clips", nargs="*", default=["videos/single_face.mp4", "videos/WolfgangLanger_Pexels.mp4"],
                    help="talking-head videos for the stability column (relative to --data-root); none to skip")
    ap.add_argument("--synth-n", type=int, default=300, help="images per synthetic test set (default 300)")
    ap.add_argument("--no-timing", action="store_true", help="skip the ms/face, MACs and size columns")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None, help="write the JSON report here")


def run(args: argparse.Namespace) -> int:
    from ..assets.evaluate import evaluate_models, markdown
    from .main import invoked_command

    report = evaluate_models(args.data_root, detector_model=args.detector_model, models_dir=args.models_dir,
                             compare=args.compare, teachers=args.teacher, real_val=args.real_val,
                             profiled_val=args.profiled_val, clips=args.clips, synth_n=args.synth_n, no_timing=args.no_timing, seed=args.seed, out=args.out,
                             command=invoked_command(args) or "edgepose models evaluate")
    print(markdown(report))
    return 0
