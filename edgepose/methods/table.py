"""The teacher results table (docs/results/teachers.md): train each row's config, evaluate, write.

    python -m edgepose.methods.table                       # every row, sequentially
    python -m edgepose.methods.table --rows baseline ldl   # some rows
    python -m edgepose.methods.table --eval-only           # re-evaluate the existing runs

Each row = ``configs/teachers/<row>.yaml`` trained with ``edgepose-train`` (same budget for every
row: see the configs), then evaluated with :func:`edgepose.evaluation.evaluate_reader` on

* ``synth-test``: ``--test-n`` synthetic full-range images of TEST-split identities (disjoint from
  the training identities), as is, rotated CCW by 30/90/180 deg (pooled) and mirrored;
* ``aflw2000``: the real AFLW2000 fixtures ($EDGEPOSE_TEST_DATA/aflw2000-sample), when present.

Results go to ``runs/teachers/<row>/table.json`` (atomically) and the markdown table is
re-written after every row, so an interrupted sweep keeps the rows it finished.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..metadata import atomic_write_text

log = logging.getLogger(__name__)

ROWS = ["baseline", "ldl", "clerf", "pcl", "hmtl", "hmtl-ldl", "clerf-ldl", "clerf-rolllast", "clerf-mlp"]
ROT_ANGLES = (30.0, 90.0, 180.0)


def data_root() -> Path:
    return Path(os.environ.get("EDGEPOSE_TEST_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def train_row(row: str, config_dir: Path, runs: Path, overrides: list[str]) -> dict:
    from ..train import Trainer, load_train_config

    cfg = load_train_config(config_dir / f"{row}.yaml", [f"output={runs / row}"] + overrides)
    t0 = time.perf_counter()
    Trainer(cfg).fit()
    return {"train_s": time.perf_counter() - t0}


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgepose.methods.table", description=__doc__.split("\n")[0])
    ap.add_argument("--rows", nargs="*", default=ROWS, choices=ROWS)
    ap.add_argument("--configs", default="configs/teachers")
    ap.add_argument("--runs", default="runs/teachers")
    ap.add_argument("--test-n", type=int, default=200)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--table", default="runs/teachers/table.md", help="markdown table written after every row")
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides for every row (smoke runs)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("EDGEPOSE_LOG", "INFO"))
    runs = Path(args.runs)
    results: dict[str, dict] = {}
    for row in ROWS:  # rows finished earlier stay in the table
        p = runs / row / "table.json"
        if p.is_file():
            results[row] = json.loads(p.read_text())
    for row in args.rows:
        info = {} if args.eval_only else train_row(row, Path(args.configs), runs, args.set)
        if args.eval_only and row in results:
            info = {"train_s": results[row].get("train_s")}
        res = {**info, **evaluate_row(runs / row, args.test_n)}
        atomic_write_text(runs / row / "table.json", json.dumps(res, indent=2))
        results[row] = res
        atomic_write_text(Path(args.table), markdown(results))
        log.info("row %s done:\n%s", row, markdown({row: res}))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
