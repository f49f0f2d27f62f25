"""edgepose.benchmarks.stats: percentiles equal numpy's, the timing loop honours its limits."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepose.benchmarks.stats import latency_stats, throughput, time_callable


def test_known_array_matches_numpy():
    a = np.arange(1, 101, dtype=float)  # 1..100
    s = latency_stats(a)
    assert s["n"] == 100
    for q in (50, 90, 99):
        assert s[f"p{q}"] == pytest.approx(np.percentile(a, q))
    assert s["p50"] == pytest.approx(50.5)
    assert s["mean"] == pytest.approx(50.5)
    assert s["std"] == pytest.approx(np.std(a, ddof=1))
    assert (s["min"], s["max"]) == (1.0, 100.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e4, allow_nan=False), min_size=1, max_size=300))
def test_percentiles_match_numpy_and_are_ordered(values):
    s = latency_stats(values)
    ref = np.percentile(np.asarray(values), [50, 90, 99])
    assert [s["p50"], s["p90"], s["p99"]] == pytest.approx(list(ref))
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert s["std"] >= 0.0


def test_edge_cases():
    assert latency_stats([]) == {"n": 0}
    one = latency_stats([3.0])
    assert one["std"] == 0.0 and one["p99"] == 3.0
    with pytest.raises(ValueError):
        latency_stats([1.0, float("nan")])
    assert throughput(4, 2.0) == pytest.approx(2000.0)  # 4 faces every 2 ms
    assert throughput(1, 0.0) is None and throughput(1, None) is None


def test_time_callable_counts_and_sync():
    calls, syncs = [], []
    samples = time_callable(lambda: calls.append(1), warmup=3, iters=7, sync=lambda: syncs.append(1))
    assert len(samples) == 7 and len(calls) == 10
    assert len(syncs) == 1 + 7  # once before the clock starts, then once per timed call
    assert all(s >= 0 for s in samples)


def test_time_callable_max_seconds_caps_slow_rows():
    samples = time_callable(lambda: time.sleep(0.02), warmup=0, iters=1000, max_seconds=0.1, min_iters=3)
    assert 3 <= len(samples) < 50
    assert np.median(samples) >= 15.0  # the sleep is inside the measured interval
    with pytest.raises(ValueError):
        time_callable(lambda: None, iters=0)


def test_peak_memory_sees_an_allocation_after_a_freed_one():
    from edgepose.benchmarks.memory import PeakMemory

    big = np.ones(60 * 2**20 // 8)  # 60 MB, freed before the measured block
    del big
    with PeakMemory() as pm:
        a = np.ones(40 * 2**20 // 8)  # 40 MB touched inside the block
        a.sum()
        del a
    if pm.kind is None:
        pytest.skip("/proc/self/clear_refs is not writable here: peak RSS cannot be reset")
    assert pm.kind == "rss-delta" and 35 <= pm.mb < 200
