"""Pipeline rows: the real ``edgepose run`` machinery end to end on a video file.

Per configuration (peer x backend x precision): build the FrameProcessor once, run
``warmup_frames`` through the pipeline, reset the tracker, then run the whole file through
:func:`edgepose.pipelines.build_run`, the builder ``edgepose run`` uses (GStreamer decode -> detect / track / pose /
smooth -> overlay -> H.264 encode into an MP4, + JSON Lines).  Per-stage and frame-to-output
statistics are computed from the per-frame JSONL records, so they cover every frame.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..runrecord import frame_records
from .artifacts import ArtifactBuilder
from .backends import FORMAT_OF, availability, runtime_device
from .model_bench import error_text
from .schema import STAGES
from .schema import Row
from .stats import latency_stats
from .suite import Suite, expand_path
from .tegrastats import TegrastatsSampler, summarize_power

__all__ = ["run_pipeline_grid", "frame_records", "pipeline_block", "container_frame_count"]

log = logging.getLogger(__name__)


def container_frame_count(video: Path) -> int | None:
    """Frames the container announces (OpenCV), to count frames the pipeline did not deliver."""
    try:
        import cv2

        cap = cv2.VideoCapture(str(video))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        return n if n > 0 else None
    except Exception:
        return None




def pipeline_block(records: list[dict], summary, expected_frames: int | None) -> dict:
    """Stage / end-to-end statistics, FPS and dropped / late frame counts of one run."""
    stages = {}
    for s in (*STAGES, "total"):
        vals = [r["latency_ms"][s] for r in records if s in (r.get("latency_ms") or {})]
        if vals:
            stages[s] = latency_stats(vals)
    e2e = stages.pop("total", {"n": 0})
    fps_src = summary.source_fps or 0.0
    budget_ms = 1000.0 / fps_src if fps_src > 0 else None
    late = sum(1 for r in records if budget_ms and r["latency_ms"].get("total", 0.0) > budget_ms)
    faces = [len(r.get("faces") or []) for r in records]
    return {"frames": summary.frames, "fps": summary.fps, "wall_s": summary.wall_s, "source_fps": summary.source_fps,
            "width": summary.width, "height": summary.height, "stages_ms": stages, "e2e_ms": e2e,
            "expected_frames": expected_frames,
            "dropped_frames": (max(0, expected_frames - summary.frames) if expected_frames else None),
            "edit_list_skipped": summary.edit_list_skipped, "late_frames": late if budget_ms else None,
            "frame_budget_ms": budget_ms, "frames_with_faces": summary.frames_with_faces,
            "mean_faces": (sum(faces) / len(faces)) if faces else 0.0, "frames_written": summary.frames_written}


def _run_one(row: Row, model: Path, suite: Suite, video: Path, sampler: TegrastatsSampler | None) -> Row:
    from edgepose.pipelines import Outputs, RunOptions, build_run

    p = suite.pipeline
    options = RunOptions(source=str(video), model=model, detector=p.detector,
                         detector_model=str(expand_path(p.detector_model)) if p.detector_model else None,
                         detector_size=p.detector_size, every=p.every, device=runtime_device(row.backend, suite.device),
                         threads=suite.threads, max_frames=p.max_frames, progress=False,
                         header={"model": str(model), "bench": row.label()})
    with build_run(options) as run:
        if p.warmup_frames:
            run.execute(Outputs(), max_frames=p.warmup_frames)
        run.reset()
        with tempfile.TemporaryDirectory(prefix="edgepose-bench-run-") as tmp:
            jsonl = Path(tmp) / "run.jsonl"
            t0 = time.monotonic()
            summary = run.execute(Outputs(video=Path(tmp) / "run.mp4" if p.encode else None, jsonl=jsonl))
            t1 = time.monotonic()
            records = frame_records(jsonl)
    expected = None if p.max_frames else container_frame_count(video)
    row.pipeline = pipeline_block(records, summary, expected)
    row.pipeline.update(detector=p.detector, detect_every=p.every, encode=p.encode)
    row.latency_ms = row.pipeline["e2e_ms"]
    row.fps = summary.fps
    if sampler is not None:
        row.power = summarize_power(sampler.window(t0, t1), t1 - t0, summary.frames)
    return row


def run_pipeline_grid(suite: Suite, builder: ArtifactBuilder, sampler: TegrastatsSampler | None = None,
                      on_row: Callable[[Row], None] = lambda r: None, peers: list[str] | None = None) -> list[Row]:
    p = suite.pipeline
    rows: list[Row] = []
    if not p.enabled:
        return rows

    def emit(row: Row) -> None:
        rows.append(row)
        on_row(row)
        e2e = row.latency_ms.get("p50")
        log.info("pipeline %-36s %-7s %s", row.label(), row.status,
                 f"{row.fps:.1f} FPS, e2e p50 {e2e:.2f} ms" if e2e is not None else row.reason[:100])

    video = expand_path(p.video)
    names = p.peers or [peer.name for peer in suite.peers]
    for peer in suite.peers:
        if peer.name not in names or (peers and peer.name not in peers):
            continue
        base = builder.checkpoint(peer, peer.source.input_size)
        size = base.input_size
        for backend in p.backends:
            for precision in p.precisions:
                row = Row("pipeline", peer.name, peer.role, backend=backend, precision=precision, device=suite.device,
                          input_size=size, model=base.model)
                if not base.ok:
                    row.status, row.reason = base.status, base.reason
                elif video is None or not video.is_file():
                    row.status, row.reason = "skipped", (f"pipeline video {video} not found; set pipeline.video "
                                                         f"or EDGEPOSE_TEST_DATA")
                elif reason := availability(backend, precision, suite.device):
                    row.status, row.reason = "skipped", reason
                else:
                    art = builder.get(peer, FORMAT_OF[backend], precision, size)
                    row.artifact, row.size_mb = (str(art.path) if art.path else None), art.size_mb
                    if not art.ok:
                        row.status, row.reason = art.status, art.reason
                    else:
                        if not art.trained:
                            row.notes.append("untrained weights: latency only")
                        try:
                            _run_one(row, art.path, suite, video, sampler)
                        except KeyboardInterrupt:
                            raise
                        except Exception as exc:
                            log.debug("pipeline row %s failed", row.label(), exc_info=True)
                            row.status, row.reason = "failed", error_text(exc)
                emit(row)
    return rows
