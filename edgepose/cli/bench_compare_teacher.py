"""``edgepose-bench compare-teacher``: teacher vs distilled student (FP32 checkpoints), side by side.

    edgepose-bench compare-teacher runs/f3-distill/best.pt --teacher whenet \\
        --eval aflw2000:../shared/data/aflw2000-sample --synth-test 300 --synth-range wide

Each model is scored with its own preprocessing on the labelled set and on synthetic test-split
heads; one line per (set, model): per-axis MAE, mean MAE and geodesic error in degrees.
"""
from __future__ import annotations

import argparse
import logging

HELP = "teacher vs distilled student (FP32) on a labelled set and synthetic test heads"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("student", help="student checkpoint (.pt)")
    p.add_argument("--teacher", default="whenet", help="teacher spec as in the distill config (default whenet)")
    p.add_argument("--eval", dest="eval_set", help="labelled set FORMAT:PATH")
    p.add_argument("--synth-test", type=int, default=300)
    p.add_argument("--synth-range", default="wide")
    p.add_argument("--seed", type=int, default=2024)


def run(a: argparse.Namespace) -> int:
    from ..distill.teacher import load_teacher
    from ..models.pose_model import PoseModel
    from ..quantize.compare_teacher import compare_models

    logging.getLogger("edgepose").setLevel(logging.WARNING)  # the lines are the output
    models = {"teacher": load_teacher([a.teacher]).members[0], "student": PoseModel.from_checkpoint(a.student).eval()}
    for line in compare_models(models, a.eval_set, a.synth_test, a.synth_range, a.seed):
        print(line)
    return 0
