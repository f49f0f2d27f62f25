"""Per-stage latency statistics and the end-of-run table."""
from __future__ import annotations

import numpy as np

__all__ = ["STAGES", "LatencyStats"]

#: Stages in pipeline order.  decode = wait for the decoded frame + stride-aware copy; detect /
#: track / pose / smooth come from the runtime's FrameProcessor; overlay = drawing; encode = the
#: synchronous push through colour conversion, encoder and muxer (+ RTSP push); total = wall time
#: per frame through the loop (observers included); capture_to_output (live sources only) = age of
#: the frame when its results were written, from the pipeline clock (capture, transport, decode,
#: queueing and processing).
STAGES = ("decode", "detect", "track", "pose", "smooth", "overlay", "encode", "total", "capture_to_output")


class LatencyStats:
    def __init__(self):
        self._values: dict[str, list[float]] = {}

    def add(self, timings_ms: dict[str, float]) -> None:
        for k, v in timings_ms.items():
            if v is not None:
                self._values.setdefault(k, []).append(float(v))

    def count(self, stage: str = "total") -> int:
        return len(self._values.get(stage, []))

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        order = list(STAGES) + sorted(set(self._values) - set(STAGES))
        for k in order:
            v = self._values.get(k)
            if not v:
                continue
            a = np.asarray(v)
            out[k] = {"mean": round(float(a.mean()), 3), "p50": round(float(np.percentile(a, 50)), 3),
                      "p90": round(float(np.percentile(a, 90)), 3), "p99": round(float(np.percentile(a, 99)), 3),
                      "n": int(a.size)}
        return out

    def table(self) -> str:
        rows = self.summary()
        lines = [f"{'stage':<17} {'mean':>8} {'p50':>8} {'p90':>8} {'p99':>8}   (ms per frame, n frames)"]
        for k, s in rows.items():
            lines.append(f"{k:<17} {s['mean']:>8.2f} {s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f}   n={s['n']}")
        return "\n".join(lines)
