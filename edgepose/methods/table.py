"""The teacher results table (docs/results/teachers.md): train each row's config, evaluate, write.

    edgepose-bench methods                       # every row, sequentially
    edgepose-bench methods --rows baseline ldl   # some rows
    edgepose-bench methods --eval-only           # re-evaluate the existing runs

Each row = ``configs/teachers/<row>.yaml`` trained with ``edgepose-train`` (same budget for every
row: see the configs), then evaluated with :func:`edgepose.evaluation.evaluate_reader` on

* ``synth-test``: ``--test-n`` synthetic full-range images of TEST-split identities (disjoint from
  the training identities), as is, rotated CCW by 30/90/180 deg (pooled) and mirrored;
* ``aflw2000``: the real AFLW2000 fixtures ($EDGEPOSE_TEST_DATA/aflw2000-sample), when present.

Results go to ``runs/teachers/<row>/table.json`` (atomically) and the markdown table is
re-written after every row, so an interrupted sweep keeps the rows it finished.  This module scores
and tabulates; the training of a row and the sweep live in ``edgepose/cli/bench_methods.py``
(methods sit below the training engine).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROWS = ["baseline", "ldl", "clerf", "pcl", "hmtl", "hmtl-ldl", "clerf-ldl", "clerf-rolllast", "clerf-mlp"]
ROT_ANGLES = (30.0, 90.0, 180.0)


def data_root() -> Path:
    return Path(os.environ.get("EDGEPOSE_TEST_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def _pooled(results: dict, names: list[str]) -> dict:
    """Sample-weighted mean of metrics over several variants (the pooled rotated set)."""
    ms = [results[n]["metrics"] for n in names]
    w = np.array([m["n"] for m in ms], float)
    return {k: float(np.dot(w, [m[k] for m in ms]) / w.sum()) for k in ("ge", "mae", "maev")}


def evaluate_row(run_dir: Path, test_n: int) -> dict:
    from ..evaluation import Variant, evaluate_reader
    from ..evaluation import TorchPredictor
    from .data import MemoSynthReader

    ckpt = run_dir / "last.pt"
    variants = [Variant("original")] + [Variant(f"rot{a:+g}", a) for a in ROT_ANGLES] + [Variant("flip", 0.0, True)]
    out: dict = {}
    with TorchPredictor(ckpt) as pred:
        test = MemoSynthReader(test_n, seed=3, split="test", n_identities=200, pose_range="full", size=96, ssaa=1)
        res = evaluate_reader(pred, test, variants, progress=False)
        out["synth"] = {k: {m: res[k]["metrics"][m] for m in ("ge", "mae", "maev", "n")} for k in res}
        out["synth"]["rotated"] = _pooled(res, [f"rot{a:+g}" for a in ROT_ANGLES])
        aflw = data_root() / "aflw2000-sample"
        if aflw.is_dir():
            from ..data import build_reader

            r = evaluate_reader(pred, build_reader({"format": "aflw2000", "root": str(aflw), "crop": "test"}),
                                [Variant("original")], progress=False)["original"]["metrics"]
            out["aflw2000"] = {"mae": r["mae"], "ge": r["ge"], "n": r["n"]}
    return out


def markdown(results: dict[str, dict]) -> str:
    head = ("| row | synth GE | synth MAE | synth MAEV | rotated GE | rotated MAE | rotated MAEV | flipped GE | "
            "flipped MAE | flipped MAEV | AFLW2000 (6) MAE | train min |\n|" + "---|" * 12)
    lines = [head]
    f = lambda v: f"{v:.1f}"  # noqa: E731
    for row in ROWS:
        if row not in results:
            continue
        r = results[row]
        s, ro, fl = r["synth"]["original"], r["synth"]["rotated"], r["synth"]["flip"]
        a = r.get("aflw2000", {})
        lines.append(f"| {row} | {f(s['ge'])} | {f(s['mae'])} | {f(s['maev'])} | {f(ro['ge'])} | {f(ro['mae'])} | "
                     f"{f(ro['maev'])} | {f(fl['ge'])} | {f(fl['mae'])} | {f(fl['maev'])} | "
                     f"{f(a['mae']) if a else 'n/a'} | {r.get('train_s', float('nan')) / 60:.1f} |")
    return "\n".join(lines) + "\n"
