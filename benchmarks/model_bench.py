"""The model grid: peer x input size x backend x precision x batch -> one Row each.

Every row is isolated: an unavailable backend is a ``skipped`` row with the reason, an error
while building, loading or running is a ``failed`` row with the message, and the suite goes
on.  Only Ctrl-C stops the grid (the runner then writes what was measured).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np

from edgepose.errors import UserError

from .accuracy import EvalSet, accuracy_block, predict
from .artifacts import Artifact, ArtifactBuilder
from .backends import FORMAT_OF, VALID_PRECISIONS, availability, open_backend, sync_fn
from .memory import PeakMemory
from .schema import Row
from .stats import latency_stats, throughput
from .suite import Suite
from .tegrastats import TegrastatsSampler, summarize_power

__all__ = ["grid_combos", "bench_row", "run_model_grid", "error_text"]

log = logging.getLogger(__name__)


def error_text(exc: BaseException) -> str:
    msg = str(exc).strip()
    first = msg.splitlines()[0] if msg else ""
    return first if isinstance(exc, UserError) else f"{type(exc).__name__}: {first}"


def grid_combos(suite: Suite) -> list[tuple[str, str]]:
    """(backend, precision) pairs in suite order; fp32 first per backend (the references)."""
    out = []
    for b in suite.backends:
        precs = [p for p in suite.precisions if p in VALID_PRECISIONS[b]]
        precs.sort(key=lambda p: p != "fp32")
        out += [(b, p) for p in precs]
    return out


def _input_batch(backend, eval_set: EvalSet | None, batch: int) -> np.ndarray:
    """Real face crops when an eval set exists (tiled to ``batch``), else a fixed random tensor."""
    if eval_set is not None:
        x, _ = eval_set.inputs(backend.spec)
        reps = -(-batch // len(x))
        return np.ascontiguousarray(np.concatenate([x] * reps)[:batch], np.float32)
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, *backend.input_shape)).astype(np.float32)


def bench_row(row: Row, art: Artifact, suite: Suite, eval_set: EvalSet | None,
              sampler: TegrastatsSampler | None, trt_cache_dir=None) -> Row:
    """Time one (artifact, backend, batch) and fill the row's latency / memory / power."""
    cuda = row.backend == "torch" and suite.device.startswith("cuda")
    sync = sync_fn(row.backend, suite.device)
    with PeakMemory(cuda=cuda) as pm:
        with open_backend(row.backend, art.path, device=suite.device, threads=suite.threads,
                          trt_cache_dir=trt_cache_dir) as be:
            x = _input_batch(be, eval_set, row.batch)
            for _ in range(suite.warmup):
                be.infer(x)
            if sync:
                sync()
            samples: list[float] = []
            t_start = time.monotonic()
            for i in range(suite.iters):
                t0 = time.perf_counter()
                be.infer(x)
                if sync:
                    sync()
                samples.append((time.perf_counter() - t0) * 1e3)
                if i + 1 >= 5 and time.monotonic() - t_start > suite.max_seconds:
                    break
            t_end = time.monotonic()
    row.latency_ms = latency_stats(samples)
    row.fps = throughput(row.batch, row.latency_ms.get("mean"))
    row.peak_mem_mb, row.mem_kind = pm.mb, pm.kind
    if len(samples) < suite.iters:
        row.notes.append(f"{len(samples)} of {suite.iters} iterations (max_seconds={suite.max_seconds:g} reached)")
    if sampler is not None:
        row.power = summarize_power(sampler.window(t_start, t_end), t_end - t_start, len(samples) * row.batch)
    return row


class _Accuracy:
    """Predictions per artifact, the peer's FP32 reference per set, and the metrics block per row.

    The first eval set feeds the row's accuracy columns; the others go to ``accuracy["other_sets"]``.
    """

    def __init__(self, eval_sets: list[EvalSet], unavailable: str | None, trt_cache_dir=None):
        self.trt_cache_dir = trt_cache_dir
        self.eval_sets = eval_sets
        self.unavailable = unavailable
        self.refs: dict[str, tuple[dict, np.ndarray]] = {}

    def reset(self) -> None:
        self.refs = {}

    def _one(self, be, backend: str, precision: str, eval_set: EvalSet) -> dict:
        P = predict(be, eval_set)
        ref = self.refs.get(eval_set.name)
        if ref is None and precision == "fp32":
            blk = accuracy_block(P, eval_set, be.spec)
            blk["reference"] = f"{backend} fp32"
            self.refs[eval_set.name] = (blk, P)
            return blk
        ref_blk, P_ref = ref if ref else (None, None)
        blk = accuracy_block(P, eval_set, be.spec, ref_blk,
                             P_ref if P_ref is not None and len(P_ref) == len(P) else None)
        if ref_blk:
            blk["reference"] = ref_blk["reference"]
        return blk

    def block(self, art: Artifact, backend: str, suite: Suite) -> dict:
        if not self.eval_sets:
            return {"skipped": self.unavailable} if self.unavailable else {}
        if not art.trained:
            return {"skipped": "untrained weights (architecture peer): latency only, accuracy is meaningless"}
        try:
            with open_backend(backend, art.path, device=suite.device, threads=suite.threads,
                              trt_cache_dir=self.trt_cache_dir) as be:
                blocks = [self._one(be, backend, art.precision, es) for es in self.eval_sets]
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            return {"error": error_text(exc)}
        main = blocks[0]
        if len(blocks) > 1:
            main["other_sets"] = {b["dataset"]: b for b in blocks[1:]}
        return main


def run_model_grid(suite: Suite, builder: ArtifactBuilder, eval_sets: list[EvalSet], eval_unavailable: str | None,
                   sampler: TegrastatsSampler | None = None, on_row: Callable[[Row], None] = lambda r: None,
                   peers: list[str] | None = None) -> list[Row]:
    rows: list[Row] = []

    def emit(row: Row) -> None:
        rows.append(row)
        on_row(row)
        lat = row.latency_ms.get("p50")
        log.info("%-44s %-7s %s", row.label(), row.status,
                 f"p50 {lat:.2f} ms" if lat is not None else row.reason[:100])

    trt_cache = builder.work / "ort-trt-cache"
    acc = _Accuracy(eval_sets, eval_unavailable, trt_cache)
    eval_set = eval_sets[0] if eval_sets else None  # real face crops as timing inputs
    first_batch = suite.batch_sizes[0]
    for peer in suite.peers:
        if peers and peer.name not in peers:
            continue
        base = builder.checkpoint(peer, peer.source.input_size)
        if not base.ok:
            emit(Row("model", peer.name, peer.role, backend="-", precision="-", status=base.status,
                     reason=base.reason, artifact=str(base.path) if base.path else None))
            continue
        for size in builder.sizes(peer):
            acc.reset()
            for backend, precision in grid_combos(suite):
                row_kw = dict(role=peer.role, backend=backend, precision=precision, device=suite.device,
                              input_size=size, model=base.model)
                reason = availability(backend, precision, suite.device)
                if reason:
                    emit(Row("model", peer.name, batch=first_batch, status="skipped", reason=reason, **row_kw))
                    continue
                art = builder.get(peer, FORMAT_OF[backend], precision, size)
                if not art.ok:
                    emit(Row("model", peer.name, batch=first_batch, status=art.status, reason=art.reason,
                             artifact=str(art.path) if art.path else None, **row_kw))
                    continue
                accuracy = acc.block(art, backend, suite)
                for batch in suite.batch_sizes:
                    row = Row("model", peer.name, batch=batch, artifact=str(art.path), size_mb=art.size_mb,
                              build_s=art.build_s, accuracy=accuracy, **row_kw)
                    if peer.note:
                        row.notes.append(peer.note)
                    try:
                        bench_row(row, art, suite, eval_set, sampler, trt_cache)
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:
                        log.debug("row %s failed", row.label(), exc_info=True)
                        row.status, row.reason = "failed", error_text(exc)
                    emit(row)
    return rows
