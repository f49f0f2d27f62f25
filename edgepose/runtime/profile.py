"""Per-stage latency of the runtime on a video file (no GStreamer; OpenCV decoding).

    python -m edgepose.runtime.profile VIDEO --model pose.onnx [--detector yunet --detector-model F]
        [--every N] [--frames N] [--warmup N] [--threads N] [--set key=value ...] [--json out.json]

Prints median / p90 / mean milliseconds for detect, track, pose, smooth and their sum over the
processed frames (after ``--warmup`` frames), and the detector / pose model latencies alone.
Figures depend on the machine and on its load: always publish them with the command line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _stats(values) -> dict:
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "mean": float(a.mean())}


def main(argv: list[str] | None = None) -> int:
    import cv2

    from ..errors import guarded
    from ..errors import SourceError
    from .frame import FrameProcessor

    p = argparse.ArgumentParser(prog="python -m edgepose.runtime.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video")
    p.add_argument("--model", default=None, help="pose model (omit for detection only)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--detector-model", default=None)
    p.add_argument("--detector-size", type=int, default=None)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", default=None, help="also write the statistics here")
    args = p.parse_args(argv)

    def run() -> int:
        cap = cv2.VideoCapture(args.video)
        if not cap.isOpened():
            raise SourceError(f"cannot open video {args.video}")
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        per_stage: dict[str, list[float]] = {"detect": [], "track": [], "pose": [], "smooth": [], "total": []}
        detect_only, faces = [], []
        with FrameProcessor.from_options(model=args.model, detector=args.detector,
                                         detector_model=args.detector_model, detector_size=args.detector_size,
                                         detect_every=args.every, threads=args.threads,
                                         overrides=args.overrides) as proc:
            i = 0
            while i < args.frames + args.warmup:
                ok, frame = cap.read()
                if not ok:
                    break
                t0 = time.perf_counter()
                r = proc.process(frame, int(i * 1e9 / fps))
                total = (time.perf_counter() - t0) * 1e3
                if i >= args.warmup:
                    for k in ("detect", "track", "pose", "smooth"):
                        per_stage[k].append(r.timings[k])
                    per_stage["total"].append(total)
                    if r.detected:
                        detect_only.append(r.timings["detect"])
                    faces.append(len(r.faces))
                i += 1
        cap.release()
        report = {"video": args.video, "model": args.model, "detector": args.detector, "every": args.every,
                  "frames": len(per_stage["total"]), "mean_faces": float(np.mean(faces)) if faces else 0.0,
                  "stages_ms": {k: _stats(v) for k, v in per_stage.items()},
                  "detector_call_ms": _stats(detect_only), "command": " ".join(sys.argv)}
        print(f"{report['frames']} frames, {report['mean_faces']:.2f} faces/frame, detector every {args.every}")
        print(f"{'stage':<16}{'p50 ms':>10}{'p90 ms':>10}{'mean ms':>10}")
        rows = list(report["stages_ms"].items()) + [("detector call", report["detector_call_ms"])]
        for k, s in rows:
            if s.get("n"):
                print(f"{k:<16}{s['p50']:>10.2f}{s['p90']:>10.2f}{s['mean']:>10.2f}")
        if args.json:
            from ..metadata import atomic_write_text

            atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        return 0

    return guarded(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
