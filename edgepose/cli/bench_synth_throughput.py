"""``edgepose-bench synth-throughput``: images per second of the synthetic head engine.

    edgepose-bench synth-throughput --size 128 --workers 1 2 --seconds 10

For each (size, ssaa, worker count) every spawned worker renders ``SynthHeadDataset`` samples (the
full on-the-fly training path) for ``--seconds``; reported are images/s over the wall time and the
CPU time per image (workers' process time, llvmpipe's threads included).  Prints a Markdown table;
``--json`` writes the numbers too.  Details in :mod:`edgepose.benchmarks.synth_throughput`.
"""
from __future__ import annotations

import argparse

HELP = "synthetic head engine throughput (images/s, CPU ms per image) per size / ssaa / workers"
DESCRIPTION = __doc__


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--size", type=int, nargs="+", default=[128])
    ap.add_argument("--ssaa", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=10.0, help="timed window per configuration")
    ap.add_argument("--pool", type=int, default=20, help="identities per worker (meshes stay cached)")
    ap.add_argument("--lp-threads", type=int, default=None,
                    help="LP_NUM_THREADS for llvmpipe in the workers (default: Mesa's choice = all cores)")
    ap.add_argument("--json", help="also write the results here")


def run(args: argparse.Namespace) -> int:
    from ..benchmarks.synth_throughput import run_table

    run_table(args.size, args.ssaa, args.workers, args.seconds, args.pool, args.lp_threads, args.json)
    return 0
