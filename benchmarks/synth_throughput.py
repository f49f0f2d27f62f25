#!/usr/bin/env python
"""Throughput of the synthetic head engine (images per second), standalone.

    .venv/bin/python benchmarks/synth_throughput.py --size 128 --workers 1 2 --seconds 10

For each worker count, every worker process renders ``SynthHeadDataset`` samples (random
identity from a pool, random pose, random scene incl. background, NIR and sensor noise: the full
on-the-fly training path) for ``--seconds`` after a warm-up that builds the pool's meshes; the
result is the total number of images over the wall time of the timed window.  Mesh building
(once per identity per process) is reported separately.  Prints a Markdown table; ``--json``
writes the numbers too.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time


def _worker(args) -> dict:
    size, ssaa, seconds, pool, wid, barrier_t = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from edgepose.synth.dataset import SynthHeadDataset
    from edgepose.synth.identity import HeadIdentity
    from edgepose.synth.mesh import build_head

    ds = SynthHeadDataset(10 ** 9, seed=wid, n_identities=pool, size=size, ssaa=ssaa)
    t0 = time.perf_counter()
    for s in ds.identity_pool[:3]:
        build_head(HeadIdentity.from_seed(int(s)))
    mesh_ms = (time.perf_counter() - t0) / 3 * 1000
    i = 0
    while i < pool * 3:  # warm-up: every pool identity gets uploaded once
        ds.render(i)
        i += 1
    while time.time() < barrier_t:  # start all workers together
        time.sleep(0.001)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        ds.render(i + n)
        n += 1
    return {"n": n, "elapsed": time.perf_counter() - t0, "mesh_ms": mesh_ms}


def run(size: int, ssaa: int, workers: int, seconds: float, pool: int) -> dict:
    start = time.time() + 3.0 + pool * 0.15
    jobs = [(size, ssaa, seconds, pool, w, start) for w in range(workers)]
    if workers == 1:
        res = [_worker(jobs[0])]
    else:
        with mp.get_context("spawn").Pool(workers) as p:
            res = p.map(_worker, jobs)
    wall = max(r["elapsed"] for r in res)
    n = sum(r["n"] for r in res)
    return {"size": size, "ssaa": ssaa, "workers": workers, "images": n, "seconds": round(wall, 3),
            "images_per_s": round(n / wall, 1), "mesh_build_ms": round(sum(r["mesh_ms"] for r in res) / len(res), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs="+", default=[128])
    ap.add_argument("--ssaa", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=10.0, help="timed window per configuration")
    ap.add_argument("--pool", type=int, default=20, help="identities per worker (meshes stay cached)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    from edgepose.synth.renderer import get_renderer

    info = get_renderer(64, 1).ctx.info
    rows = [run(s, q, w, a.seconds, a.pool) for s in a.size for q in a.ssaa for w in a.workers]
    print(f"GL renderer: {info.get('GL_RENDERER')}; CPU cores: {os.cpu_count()}; {platform.platform()}; "
          f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("| size | ssaa | workers | images/s | images | seconds | mesh build ms/identity |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['ssaa']} | {r['workers']} | {r['images_per_s']} | {r['images']} | "
              f"{r['seconds']} | {r['mesh_build_ms']} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"renderer": info.get("GL_RENDERER"), "cpus": os.cpu_count(), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
