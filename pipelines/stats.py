"""Per-stage latency statistics and the end-of-run table, in bounded memory.

A live run lasts days: keeping every per-frame latency (the former list per stage) grew the process by
~0.4 KB per frame.  Each stage now keeps the first :data:`EXACT_LIMIT` values as they are (short runs
and benchmarks report exact percentiles, as ``numpy.percentile``) and from then on a fixed log-spaced
histogram: 1 % wide bins from 1 us to 1000 s, so every percentile is within 0.5 % of the true value
(relative), at the tails too, with the same ~20 KB per stage after a minute or after a week.  Why not
a reservoir sample: its p99 rests on ~1 % of the sample (a few dozen values), so it wanders from
run to run, and it needs a random generator; why not P^2: one estimator per quantile, and its error
has no bound on multi-modal latencies (detector frames vs tracker frames).  The mean, min and max
are exact (running sums).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["STAGES", "LatencyStats", "StreamingQuantiles", "EXACT_LIMIT"]

#: Stages in pipeline order.  decode = wait for the decoded frame + stride-aware copy; detect /
#: track / pose / smooth come from the runtime's FrameProcessor; overlay = drawing; encode = the
#: synchronous push through colour conversion, encoder and muxer (+ RTSP push); total = wall time
#: per frame through the loop (observers included); capture_to_output (live sources only) = age of
#: the frame when its results were written, from the pipeline clock (capture, transport, decode,
#: queueing and processing).
STAGES = ("decode", "detect", "track", "pose", "smooth", "overlay", "encode", "total", "capture_to_output")

#: values kept exactly per stage before the histogram takes over
EXACT_LIMIT = 4096
_LO_MS, _HI_MS, _STEP = 1e-3, 1e6, 0.01  # histogram range (ms) and relative bin width
_LOG_STEP = math.log1p(_STEP)
_NBINS = int(math.ceil(math.log(_HI_MS / _LO_MS) / _LOG_STEP)) + 2  # + underflow and overflow bins


class StreamingQuantiles:
    """Count, mean, min, max and quantiles of a stream of non-negative values in O(1) memory."""

    def __init__(self, exact_limit: int = EXACT_LIMIT):
        self._exact = np.empty(exact_limit, np.float64)
        self._n_exact = 0
        self._hist: np.ndarray | None = None  # allocated when the exact buffer first overflows
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, v: float) -> None:
        v = float(v)
        self.n += 1
        self.total += v
        self.min = min(self.min, v)
        self.max = max(self.max, v)
        if self._hist is None and self._n_exact < self._exact.size:
            self._exact[self._n_exact] = v
            self._n_exact += 1
            return
        if self._hist is None:  # switch: the exact values move into the histogram once
            self._hist = np.zeros(_NBINS, np.int64)
            np.add.at(self._hist, _bins(self._exact[: self._n_exact]), 1)
            self._n_exact = 0
        self._hist[_bin(v)] += 1

    @property
    def exact(self) -> bool:
        return self._hist is None

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def quantile(self, q: float) -> float:
        """``q`` in [0, 1]; exact (linear interpolation, as numpy) while every value is kept, else the
        geometric centre of the histogram bin holding the rank (clamped to the exact min/max)."""
        if self.n == 0:
            return math.nan
        if self._hist is None:
            return float(np.percentile(self._exact[: self._n_exact], q * 100))
        rank = q * (self.n - 1)  # 0-based rank, as numpy's linear method
        i = int(np.searchsorted(np.cumsum(self._hist), math.floor(rank) + 1))
        return min(max(_centre(i), self.min), self.max)


def _bin(v: float) -> int:
    if v < _LO_MS:
        return 0
    return min(int(math.log(v / _LO_MS) / _LOG_STEP) + 1, _NBINS - 1)


def _bins(a: np.ndarray) -> np.ndarray:
    out = np.zeros(a.shape, np.int64)
    pos = a >= _LO_MS
    out[pos] = np.minimum((np.log(a[pos] / _LO_MS) / _LOG_STEP).astype(np.int64) + 1, _NBINS - 1)
    return out


def _centre(i: int) -> float:
    if i == 0:
        return 0.0
    return _LO_MS * math.exp((i - 0.5) * _LOG_STEP)


class LatencyStats:
    def __init__(self):
        self._values: dict[str, StreamingQuantiles] = {}

    def add(self, timings_ms: dict[str, float]) -> None:
        for k, v in timings_ms.items():
            if v is not None:
                q = self._values.get(k)
                if q is None:
                    q = self._values[k] = StreamingQuantiles()
                q.add(v)

    def count(self, stage: str = "total") -> int:
        q = self._values.get(stage)
        return q.n if q is not None else 0

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        order = list(STAGES) + sorted(set(self._values) - set(STAGES))
        for k in order:
            q = self._values.get(k)
            if q is None or not q.n:
                continue
            out[k] = {"mean": round(q.mean, 3), "p50": round(q.quantile(0.5), 3),
                      "p90": round(q.quantile(0.9), 3), "p99": round(q.quantile(0.99), 3), "n": int(q.n)}
        return out

    def table(self) -> str:
        rows = self.summary()
        lines = [f"{'stage':<17} {'mean':>8} {'p50':>8} {'p90':>8} {'p99':>8}   (ms per frame, n frames)"]
        for k, s in rows.items():
            lines.append(f"{k:<17} {s['mean']:>8.2f} {s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f}   n={s['n']}")
        return "\n".join(lines)
