"""Teacher vs distilled student (FP32 checkpoints) on a labelled set and the synthetic test set.

    edgepose-bench compare-teacher runs/f3-distill/best.pt --teacher whenet \\
        --eval aflw2000:../shared/data/aflw2000-sample --synth-test 300 --synth-range wide

Each model is scored with its own preprocessing (crop policy, size); the synthetic test set uses the
``test`` identity split (disjoint from the ``train`` / ``val`` identities distillation may use).
:func:`compare_models` gives one line per (set, model) with per-axis MAE, mean MAE and geodesic
error in degrees.  The models are built by the caller (``edgepose/cli/bench_compare_teacher.py``):
quantize does not import distill, where teachers are loaded.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["compare_models"]


def compare_models(models: dict, eval_set: str | None = None, synth_test: int = 300, synth_range: str = "wide",
                   seed: int = 2024) -> Iterator[str]:
    """One line (yielded as soon as it is measured) per (set, model) for ``models`` ({tag: PoseModel}) on ``eval_set`` (FORMAT:PATH) and
    ``synth_test`` synthetic test-split heads of ``synth_range``."""
    import torch

    from edgepose.metrics import pose_metrics

    from .report import eval_batch

    sets = {}
    if eval_set:
        from edgepose.data.options import build_eval_reader, parse_data_arg

        sets[eval_set] = build_eval_reader(parse_data_arg(eval_set), where="--eval")
    if synth_test:
        from edgepose.synth import SynthHeadDataset

        sets[f"synth-test-{synth_range}"] = SynthHeadDataset(synth_test, seed=seed, split="test",
                                                             pose_range=synth_range, size=160)
    for name, reader in sets.items():
        for tag, m in models.items():
            x, R = eval_batch(reader, m.preprocess)
            with torch.no_grad():
                P = torch.cat([m(torch.from_numpy(x[i:i + 32]))["R"] for i in range(0, len(x), 32)])
            k = pose_metrics(P.double().numpy(), R.astype(np.float64), aligned=False)
            yield (f"{name} {tag}: P/Y/R {k['mae_pitch']:.2f}/{k['mae_yaw']:.2f}/{k['mae_roll']:.2f} "
                   f"MAE {k['mae']:.2f} GE {k['ge']:.2f} (n={int(k['n'])})")
