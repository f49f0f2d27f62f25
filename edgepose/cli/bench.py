"""``edgepose-bench`` / ``edgepose bench``: latency, accuracy, size and power in one report.

Runs a suite (``benchmarks/suites/default.yaml`` unless ``--suite`` names another packaged
suite or a YAML file): every peer x backend x precision x batch x input size of the pose
model, plus the whole ``edgepose run`` pipeline on a video; writes ``bench.json``
(schema ``edgepose.bench/1``), ``bench.csv``, ``bench.md`` and two PNG plots into ``--out``.

``--compare baseline.json`` prints current/baseline latency ratios per matching row and exits
with status 1 when one exceeds ``--max-regression`` (default 1.2); ``--floor-mae DEG`` exits 1
when an ok row's MAE on the accuracy set exceeds DEG (CI).
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from ..errors import UserError

HELP = "benchmark latency, accuracy, size and power (same as edgepose-bench)"
DESCRIPTION = __doc__

log = logging.getLogger("edgepose.bench")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .main import BENCH_COMMANDS, command_help

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "other measurements (`edgepose-bench NAME --help` for their options):\n" + "\n".join(
        f"  {name:<17} {command_help(module)}" for name, module in BENCH_COMMANDS.items())
    p.add_argument("--suite", "-s", default="default", help="packaged suite name or a suite YAML file (default: default)")
    p.add_argument("--out", "-o", default="bench-out", help="folder for the reports (default: bench-out)")
    p.add_argument("--work-dir", default=None, help="folder for derived artifacts (default: OUT/artifacts)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="suite override, repeatable (iters=200, batch_sizes=[1,8], device=cuda)")
    p.add_argument("--peers", default=None, help="comma-separated peer names to run (default: all)")
    p.add_argument("--only", choices=("model", "pipeline"), default=None, help="run only the model grid or the pipeline")
    p.add_argument("--compare", default=None, metavar="BASELINE.json", help="compare latencies with a previous report")
    p.add_argument("--max-regression", type=float, default=1.2,
                   help="largest accepted current/baseline ratio with --compare (default 1.2)")
    p.add_argument("--compare-metric", choices=("p50", "p90", "p99", "mean"), default="p50",
                   help="latency statistic compared (default p50)")
    p.add_argument("--floor-mae", type=float, default=None, metavar="DEG",
                   help="fail (exit 1) when an ok row with accuracy has MAE above DEG")
    p.add_argument("--strict", action="store_true", help="exit 1 when any row failed")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--list-suites", action="store_true", help="list the packaged suites and exit")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def _gate(report: dict, args) -> int:
    status = 0
    if args.compare:
        from ..benchmarks.compare import compare_reports, format_comparison
        from ..benchmarks.report import load_report

        baseline = load_report(args.compare)
        if args.max_regression <= 0:
            raise UserError(f"--max-regression must be positive (e.g. 1.2), got {args.max_regression}")
        comps = compare_reports(report, baseline, args.max_regression, args.compare_metric)
        print(format_comparison(comps, args.max_regression, args.compare_metric))
        if any(c.regression for c in comps):
            status = 1
    if args.floor_mae is not None:
        bad = [r for r in report["rows"] if r["status"] == "ok" and (r.get("accuracy") or {}).get("mae") is not None
               and r["accuracy"]["mae"] > args.floor_mae]
        for r in bad:
            print(f"floor: {r['name']} {r['backend']} {r['precision']} b{r['batch']} MAE {r['accuracy']['mae']:.2f} "
                  f"> {args.floor_mae:g} deg")
        status = 1 if bad else status
    if args.strict and any(r["status"] == "failed" for r in report["rows"]):
        print("strict: some rows failed (see the report)")
        status = 1
    return status


def run(args) -> int:
    from ..benchmarks.suite import list_suites, load_suite

    if args.list_suites:
        for name in list_suites():
            print(name)
        return 0
    from ..io_safety import check_outputs

    out = Path(args.out)  # e.g. --compare OUT/bench.json with --out OUT would overwrite the baseline
    check_outputs([("--suite", args.suite if args.suite and Path(args.suite).is_file() else None),
                   ("--compare", args.compare)],
                  [(f"--out {name}", out / name) for name in ("bench.json", "bench.csv", "bench.md")],
                  dir_outputs=[("--out", out)])
    if args.compare:  # a bad baseline fails before minutes of measuring
        from ..benchmarks.report import load_report

        load_report(args.compare)
    suite, path = load_suite(args.suite, args.overrides)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()] if args.peers else None
    if peers:
        unknown = set(peers) - {p.name for p in suite.peers}
        if unknown:
            raise UserError(f"--peers names unknown peer(s) {', '.join(sorted(unknown))}; "
                            f"suite peers: {', '.join(p.name for p in suite.peers)}")
    if args.quiet:
        logging.getLogger("edgepose").setLevel(logging.WARNING)
    from ..benchmarks.runner import run_suite

    from .main import invoked_command

    command = invoked_command(args) or ("edgepose-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    report, paths = run_suite(suite, path, args.out, work_dir=args.work_dir, command=command.strip(),
                              progress=not args.quiet, plots=not args.no_plots, only=args.only, peers=peers)
    n = {s: sum(r["status"] == s for r in report["rows"]) for s in ("ok", "skipped", "failed")}
    print(f"{len(report['rows'])} rows ({n['ok']} ok, {n['skipped']} skipped, {n['failed']} failed) in "
          f"{report['duration_s']:.0f} s" + (" - interrupted" if report.get("interrupted") else ""))
    for fmt, p in paths.items():
        print(f"{fmt}: {p}")
    if report.get("interrupted"):
        return 130
    return _gate(report, args)
