"""pipelines.stats: bounded-memory latency statistics (issue 16, item 5)."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edgepose.pipelines.stats import EXACT_LIMIT, LatencyStats, StreamingQuantiles


def test_short_runs_are_exact():
    rng = np.random.default_rng(0)
    v = rng.lognormal(2.0, 0.5, 1000)
    q = StreamingQuantiles()
    for x in v:
        q.add(x)
    assert q.exact and q.n == 1000
    for p in (0.5, 0.9, 0.99):
        assert q.quantile(p) == pytest.approx(np.percentile(v, p * 100), rel=1e-12)
    assert q.mean == pytest.approx(v.mean()) and q.min == v.min() and q.max == v.max()


def test_long_runs_stay_within_half_a_percent():
    # bimodal, as detector frames vs tracker-only frames, plus a zero stage value and rare spikes
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.lognormal(1.0, 0.2, 30000), rng.lognormal(3.5, 0.3, 8000),
                        rng.uniform(200, 900, 300), np.zeros(50)])
    rng.shuffle(v)
    q = StreamingQuantiles()
    for x in v:
        q.add(x)
    assert not q.exact and q.n == v.size
    for p in (0.01, 0.5, 0.9, 0.99, 0.999):
        ref = np.percentile(v, p * 100, method="inverted_cdf")
        assert q.quantile(p) == pytest.approx(ref, rel=0.006), p
    assert q.mean == pytest.approx(v.mean(), rel=1e-9)


def test_memory_does_not_grow_with_frames():
    s = LatencyStats()
    frame = {"decode": 1.0, "detect": 5.0, "pose": 2.0, "total": 9.0}
    for _ in range(EXACT_LIMIT + 10):  # past the switch to the histogram
        s.add(frame)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    rng = np.random.default_rng(2)
    for x in rng.lognormal(1.0, 1.0, 30000):
        s.add({"decode": x, "detect": 2 * x, "pose": x / 2, "total": 4 * x})
    grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grown < 16 * 1024, f"LatencyStats grew {grown} bytes over 30000 frames"
    out = s.summary()
    assert out["total"]["n"] == EXACT_LIMIT + 10 + 30000
    assert out["detect"]["p50"] <= out["detect"]["p90"] <= out["detect"]["p99"]
