"""``edgepose-bench methods``: the teacher-method results table (docs/results/teachers.md).

    edgepose-bench methods                       # every row, sequentially
    edgepose-bench methods --rows baseline ldl   # some rows
    edgepose-bench methods --eval-only           # re-evaluate the existing runs

Each row = ``configs/teachers/<row>.yaml`` trained with the training engine (same budget for every
row), then scored by :func:`edgepose.methods.table.evaluate_row` on synthetic test-split heads (as
is, rotated, mirrored) and the AFLW2000 fixtures.  Results go to ``RUNS/<row>/table.json`` and the
markdown table (``--table``) is rewritten after every row, so an interrupted sweep keeps its rows.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

HELP = "train and score every teacher-method config into the methods table (docs/results/teachers.md)"
DESCRIPTION = __doc__

log = logging.getLogger("edgepose.methods.table")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    from ..methods.table import ROWS

    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--rows", nargs="*", default=ROWS, choices=ROWS)
    ap.add_argument("--configs", default="configs/teachers")
    ap.add_argument("--runs", default="runs/teachers")
    ap.add_argument("--test-n", type=int, default=200)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--table", default="runs/teachers/table.md", help="markdown table written after every row")
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides for every row (smoke runs)")


def train_row(row: str, config_dir: Path, runs: Path, overrides: list[str]) -> dict:
    """Train ``config_dir/<row>.yaml`` into ``runs/<row>``; its wall time."""
    from ..train import Trainer, load_train_config

    cfg = load_train_config(config_dir / f"{row}.yaml", [f"output={runs / row}"] + overrides)
    t0 = time.perf_counter()
    Trainer(cfg).fit()
    return {"train_s": time.perf_counter() - t0}


def run(args: argparse.Namespace) -> int:
    from ..metadata import atomic_write_text
    from ..methods.table import ROWS, evaluate_row, markdown

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
