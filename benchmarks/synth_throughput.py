"""Throughput of the synthetic head engine (images per second), standalone.

    edgepose-bench synth-throughput --size 128 --workers 1 2 --seconds 10

For each worker count, every worker process (spawned) renders ``SynthHeadDataset`` samples
(random identity from a pool, random pose, random scene incl. background, NIR and sensor noise:
the full on-the-fly training path) for ``--seconds`` after a warm-up that uploads the pool's
meshes.  Reported: images/s = all images over the wall time of the timed window, and the CPU
time per image (process CPU time of the workers, llvmpipe's threads included), which does not
depend on what else runs on the machine: ``cores / cpu_ms_per_image`` bounds the throughput of
a quiet machine.  Mesh building (once per identity per process) is reported separately.
Prints a Markdown table; ``--json`` writes the numbers too.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time


def _worker(args) -> dict:
    size, ssaa, seconds, pool, wid, barrier_t, lp_threads = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if lp_threads is not None:  # before the GL context exists
        os.environ["LP_NUM_THREADS"] = str(lp_threads)
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
    from edgepose.synth.renderer import get_renderer

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    while time.perf_counter() - t0 < seconds:
        ds.render(i + n)
        n += 1
    return {"n": n, "elapsed": time.perf_counter() - t0, "cpu": time.process_time() - c0, "mesh_ms": mesh_ms,
            "gl": get_renderer(size, ssaa).ctx.info.get("GL_RENDERER")}


def run(size: int, ssaa: int, workers: int, seconds: float, pool: int, lp_threads) -> dict:
    start = time.time() + 5.0 + pool * 0.3
    jobs = [(size, ssaa, seconds, pool, w, start, lp_threads) for w in range(workers)]
    with mp.get_context("spawn").Pool(workers) as p:
        res = p.map(_worker, jobs)
    wall = max(r["elapsed"] for r in res)
    n = sum(r["n"] for r in res)
    return {"size": size, "ssaa": ssaa, "workers": workers, "lp_threads": lp_threads, "images": n,
            "seconds": round(wall, 3), "images_per_s": round(n / wall, 1),
            "cpu_ms_per_image": round(sum(r["cpu"] for r in res) / n * 1000, 2),
            "mesh_build_ms": round(sum(r["mesh_ms"] for r in res) / len(res), 1), "gl": res[0]["gl"]}


def run_table(sizes: list[int] = (128,), ssaa: list[int] = (1, 2), workers: list[int] = (1, 2),
              seconds: float = 10.0, pool: int = 20, lp_threads: int | None = None, json_out: str | None = None) -> list:
    """:func:`run` for every (size, ssaa, workers); prints the Markdown table and returns its rows."""
    load0 = os.getloadavg()[0]
    rows = [run(s, q, w, seconds, pool, lp_threads) for s in sizes for q in ssaa for w in workers]
    print(f"GL renderer: {rows[0]['gl']}; CPU cores: {os.cpu_count()}; {platform.platform()}; "
          f"1-min load average before / after: {load0:.2f} / {os.getloadavg()[0]:.2f}")
    print("| size | ssaa | workers | images/s (wall) | CPU ms / image | images | seconds | mesh build ms/identity |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['ssaa']} | {r['workers']} | {r['images_per_s']} | {r['cpu_ms_per_image']} | "
              f"{r['images']} | {r['seconds']} | {r['mesh_build_ms']} |")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump({"cpus": os.cpu_count(), "rows": rows}, fh, indent=2)
    return rows
