"""Teacher vs distilled student (FP32 checkpoints) on a labelled set and the synthetic test set.

    python -m edgepose.quantize.compare_teacher runs/f3-distill/best.pt --teacher whenet \\
        --eval aflw2000:../shared/data/aflw2000-sample --synth-test 300 --synth-range wide

Each model is scored with its own preprocessing (crop policy, size); the synthetic test set uses the
``test`` identity split (disjoint from the ``train`` / ``val`` identities distillation may use).
Prints one line per (set, model) with per-axis MAE, mean MAE and geodesic error in degrees.
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("student", help="student checkpoint (.pt)")
    p.add_argument("--teacher", default="whenet", help="teacher spec as in the distill config (default whenet)")
    p.add_argument("--eval", dest="eval_set", help="labelled set FORMAT:PATH")
    p.add_argument("--synth-test", type=int, default=300)
    p.add_argument("--synth-range", default="wide")
    p.add_argument("--seed", type=int, default=2024)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    from edgepose.distill.teacher import load_teacher
    from edgepose.metrics import pose_metrics
    from edgepose.models.pose_model import PoseModel

    from .report import eval_batch

    models = {"teacher": load_teacher([a.teacher]).members[0], "student": PoseModel.from_checkpoint(a.student).eval()}
    sets = {}
    if a.eval_set:
        from edgepose.data.options import build_eval_reader, parse_data_arg

        sets[a.eval_set] = build_eval_reader(parse_data_arg(a.eval_set), where="--eval")
    if a.synth_test:
        from edgepose.synth import SynthHeadDataset

        sets[f"synth-test-{a.synth_range}"] = SynthHeadDataset(a.synth_test, seed=a.seed, split="test",
                                                               pose_range=a.synth_range, size=160)
    for name, reader in sets.items():
        for tag, m in models.items():
            x, R = eval_batch(reader, m.preprocess)
            with torch.no_grad():
                P = torch.cat([m(torch.from_numpy(x[i:i + 32]))["R"] for i in range(0, len(x), 32)])
            k = pose_metrics(P.double().numpy(), R.astype(np.float64), aligned=False)
            print(f"{name} {tag}: P/Y/R {k['mae_pitch']:.2f}/{k['mae_yaw']:.2f}/{k['mae_roll']:.2f} "
                  f"MAE {k['mae']:.2f} GE {k['ge']:.2f} (n={int(k['n'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
