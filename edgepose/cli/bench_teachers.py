"""``edgepose-bench teachers``: the imported teachers side by side on the AFLW2000 fixtures (docs/importers.md).

    edgepose-bench teachers --data-root ../shared/data --out /tmp/teachers.json

Every teacher spec is imported, exported to ONNX and scored on the ``aflw2000-sample`` faces found
by YuNet (Euler MAE per axis, geodesic error), then timed on ONNX Runtime CPU (batch 1, one thread,
interleaved).  ``--scales`` also scores the 3DDFA_V2 / FSA-Net crops at other detector-box scales.
Six faces only: a sign and sanity check, not a benchmark of accuracy.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "the imported teachers' accuracy and CPU latency on the AFLW2000 fixtures"
DESCRIPTION = __doc__


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--data-root", help="shared data folder (default: $EDGEPOSE_TEST_DATA or ../shared/data)")
    ap.add_argument("--teachers", nargs="+", default=["whenet", "3ddfa-v2", "fsanet"], help="teacher specs")
    ap.add_argument("--detector-model", default="detectors/yunet/yunet_s_640_640.onnx")
    ap.add_argument("--scales", nargs="*", type=float, default=[1.0, 1.2, 1.4, 1.6],
                    help="detector-box crop scales to compare for 3ddfa-v2 / fsanet ([] to skip)")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", help="write the JSON report here")


def run(args: argparse.Namespace) -> int:
    from ..benchmarks.teachers import markdown, teacher_report
    from .main import invoked_command

    report = teacher_report(args.data_root, args.teachers, args.detector_model, args.scales, args.iters,
                            command=invoked_command(args) or "edgepose-bench teachers")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    return 0
