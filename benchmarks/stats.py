"""Latency statistics (trtexec-style percentiles) and the timing loop.

Percentiles use numpy's default (linear interpolation between order statistics), so a
report's p50/p90/p99 equal ``np.percentile(samples, q)`` exactly -- the tests check that.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

__all__ = ["PERCENTILES", "latency_stats", "throughput", "time_callable"]

PERCENTILES = (50, 90, 99)


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """``{n, mean, std, min, max, p50, p90, p99}`` in milliseconds; empty input -> ``{"n": 0}``.

    ``std`` is the sample standard deviation (ddof=1; 0 for a single sample).  Non-finite
    samples are a bug in the caller (a timer cannot produce them) and raise ValueError.
    """
    a = np.asarray(list(samples_ms), dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    if not np.isfinite(a).all():
        raise ValueError("latency samples contain NaN/Inf")
    out = {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
           "min": float(a.min()), "max": float(a.max())}
    for q, v in zip(PERCENTILES, np.percentile(a, PERCENTILES)):
        out[f"p{q}"] = float(v)
    return out


def throughput(batch: int, mean_ms: float | None) -> float | None:
    """Items per second at a mean latency per call of ``mean_ms`` for ``batch`` items per call."""
    if mean_ms is None or not math.isfinite(mean_ms) or mean_ms <= 0:
        return None
    return batch * 1000.0 / mean_ms


def time_callable(fn: Callable[[], object], *, warmup: int = 10, iters: int = 100,
                  max_seconds: float | None = None, sync: Callable[[], None] | None = None,
                  min_iters: int = 5) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then up to ``iters`` timed calls; milliseconds per call.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before the clock starts and before it stops,
    so asynchronous GPU work is inside the measured interval.  ``max_seconds`` caps the timed
    phase (after at least ``min_iters`` calls) so a slow row cannot stall a whole suite.
    """
    if iters < 1:
        raise ValueError("iters must be >= 1")
    for _ in range(max(0, warmup)):
        fn()
    if sync:
        sync()
    samples: list[float] = []
    start = time.perf_counter()
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - t0) * 1e3)
        if max_seconds is not None and i + 1 >= min_iters and time.perf_counter() - start > max_seconds:
            break
    return samples
