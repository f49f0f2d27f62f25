"""Per-stage latency of the runtime on a video file (no GStreamer; OpenCV decoding).

Run as ``edgepose-bench profile VIDEO --model pose.onnx`` (options in ``edgepose/cli/bench_profile.py``).
:func:`profile_video` gives median / p90 / mean milliseconds for detect, track, pose, smooth and their
sum over the processed frames (after ``warmup`` frames), the detector call alone, and the tracker's
id switches over all frames (:mod:`.idswitch`).
Figures depend on the machine and on its load: always publish them with the command line.
"""
from __future__ import annotations

import json
import time

import numpy as np

__all__ = ["profile_video", "format_profile"]


def _stats(values) -> dict:
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "mean": float(a.mean())}


def profile_video(video: str, model: str | None = None, detector: str = "yunet", detector_model: str | None = None,
                  detector_size: int | None = None, every: int = 1, frames: int = 200, warmup: int = 5,
                  threads: int | None = None, overrides: list[str] | None = None, json_out: str | None = None,
                  command: str = "") -> dict:
    """The statistics report of ``frames`` frames of ``video`` (written to ``json_out`` when given)."""
    import cv2

    from ..errors import SourceError
    from .frame import FrameProcessor
    from .idswitch import IdSwitchCounter

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SourceError(f"cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    per_stage: dict[str, list[float]] = {"detect": [], "track": [], "pose": [], "smooth": [], "total": []}
    detect_only, faces = [], []
    ids = IdSwitchCounter()  # over every frame, warm-up included: tracking starts at frame 0
    with FrameProcessor.from_options(model=model, detector=detector, detector_model=detector_model,
                                     detector_size=detector_size, detect_every=every, threads=threads,
                                     overrides=list(overrides or [])) as proc:
        i = 0
        while i < frames + warmup:
            ok, frame = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            r = proc.process(frame, int(i * 1e9 / fps))
            total = (time.perf_counter() - t0) * 1e3
            ids.add(i, r.faces)
            if i >= warmup:
                for k in ("detect", "track", "pose", "smooth"):
                    per_stage[k].append(r.timings[k])
                per_stage["total"].append(total)
                if r.detected:
                    detect_only.append(r.timings["detect"])
                faces.append(len(r.faces))
            i += 1
    cap.release()
    report = {"video": video, "model": model, "detector": detector, "every": every,
              "frames": len(per_stage["total"]), "mean_faces": float(np.mean(faces)) if faces else 0.0,
              "stages_ms": {k: _stats(v) for k, v in per_stage.items()},
              "detector_call_ms": _stats(detect_only), "id_switches": ids.summary(), "command": command}
    if json_out:
        from ..metadata import atomic_write_text

        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
    return report


def format_profile(report: dict) -> str:
    """The printed table: one row per stage with p50 / p90 / mean milliseconds."""
    lines = [f"{report['frames']} frames, {report['mean_faces']:.2f} faces/frame, detector every {report['every']}",
             f"{'stage':<16}{'p50 ms':>10}{'p90 ms':>10}{'mean ms':>10}"]
    rows = list(report["stages_ms"].items()) + [("detector call", report["detector_call_ms"])]
    for k, s in rows:
        if s.get("n"):
            lines.append(f"{k:<16}{s['p50']:>10.2f}{s['p90']:>10.2f}{s['mean']:>10.2f}")
    if report.get("id_switches"):
        from .idswitch import format_id_switches

        lines.append(format_id_switches(report["id_switches"]))
    return "\n".join(lines)
