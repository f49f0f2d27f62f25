"""Cost per extra face: per-frame detect + crop + pose time against the number of faces, per crop variant.

Run as ``edgepose-bench profile VIDEO --model pose.onnx --face-sweep`` (options in
``edgepose/cli/bench_profile.py``).  For each frame (OpenCV decoding) the detector runs once
(timed); its boxes, largest first (the order :class:`.frame.FrameProcessor` poses them in), are
cut to the first k = 1 .. ``max_faces``, and for each k every crop variant prepares the
(k, C, S, S) batch (timed), then the pose model runs once on it (timed; the batches are
identical whatever the variant, tests/test_preprocess_batch.py).  The variants run interleaved,
in an order rotated every (frame, k), so a load change on a shared machine hits them alike.

With ``inner_repeats`` R > 1 each (frame, k) is timed R times (variants interleaved every time)
and its minimum kept: on a shared machine that filters out the moments the process was preempted.

Per k: the median of each stage.  The detector runs once per frame whatever k, so the per-frame
total is the detector's median plus the median of crop + pose (a median of per-frame sums would
follow the detector's load spikes, not k).  ``ms per extra face`` is the least-squares slope over
k of the crop + pose medians (= the slope of the total), and of the crop medians alone; only k
reached by at least ``min_frames`` frames enter the fit.  The slope of the 10th percentiles of
crop + pose is reported too: on a shared machine it is the cost when the process ran undisturbed.
"""
from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np

from ..preprocess import preprocess, preprocess_batch

__all__ = ["CROP_VARIANTS", "face_cost_sweep", "format_face_cost", "fit_slope"]

#: name -> (frame, boxes, spec) -> (N, C, S, S); all give identical arrays
CROP_VARIANTS: dict[str, Callable] = {
    # what preprocess_batch did before: crop + normalise one face at a time, then stack
    "face_by_face": lambda frame, boxes, spec: np.stack([preprocess(frame, b, spec) for b in boxes]),
    "warp_per_face": lambda frame, boxes, spec: preprocess_batch(frame, boxes, spec, method="per_face"),
    "remap": lambda frame, boxes, spec: preprocess_batch(frame, boxes, spec, method="remap"),
    "auto": lambda frame, boxes, spec: preprocess_batch(frame, boxes, spec, method="auto"),
}
#: run by default (``auto`` is one of the other two, by preprocess.REMAP_MIN_FACES)
DEFAULT_VARIANTS = ["face_by_face", "warp_per_face", "remap"]


def fit_slope(ks, values) -> float:
    """Least-squares slope of values over ks (NaN with fewer than two distinct ks)."""
    k = np.asarray(ks, np.float64)
    v = np.asarray(values, np.float64)
    if k.size < 2 or np.unique(k).size < 2:
        return float("nan")
    return float(np.polyfit(k, v, 1)[0])


def face_cost_sweep(video: str, model: str, detector: str = "yunet", detector_model: str | None = None,
                    detector_size: int | None = None, frames: int = 200, warmup: int = 5,
                    threads: int | None = None, max_faces: int = 8, variants: list[str] | None = None,
                    min_frames: int = 20, inner_repeats: int = 1,
                    overrides: list[str] | None = None, json_out: str | None = None, command: str = "") -> dict:
    """The report of the sweep over ``frames`` frames of ``video`` (written to ``json_out`` when given)."""
    import cv2

    from ..errors import SourceError, UserError
    from .detection import merge_overlaps
    from .frame import DEDUP_IOU, FrameProcessor

    names = list(variants or DEFAULT_VARIANTS)
    unknown = [v for v in names if v not in CROP_VARIANTS]
    if unknown:
        raise UserError(f"unknown crop variant {unknown[0]!r}; choose from {', '.join(CROP_VARIANTS)}")
    if not model:
        raise UserError("--face-sweep needs a pose model (--model)")
    if max_faces < 1:
        raise UserError(f"--max-faces {max_faces}: at least one face")
    if inner_repeats < 1:
        raise UserError(f"--inner-repeats {inner_repeats}: at least one")
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SourceError(f"cannot open video {video}")
    detect_ms: list[float] = []
    rows: list[dict] = []  # one per (frame, k): k, detect, pose, crop per variant
    with FrameProcessor.from_options(model=model, detector=detector, detector_model=detector_model,
                                     detector_size=detector_size, threads=threads,
                                     overrides=list(overrides or [])) as proc:
        spec, backend = proc.backend.spec, proc.backend
        i = 0
        while i < frames + warmup:
            ok, frame = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            dets = merge_overlaps(proc.detector.detect(frame), DEDUP_IOU)
            det = (time.perf_counter() - t0) * 1e3
            boxes = [tuple(float(v) for v in d.box) for d in
                     sorted(dets, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
                     if d.box[2] > d.box[0] and d.box[3] > d.box[1]][:max_faces]
            for k in range(1, len(boxes) + 1):
                crop = {name: float("inf") for name in names}
                pose = float("inf")
                batch = None
                for rep in range(inner_repeats):  # the minimum of the repeats: preemption filtered out
                    shift = (i + k + rep) % len(names)
                    for name in names[shift:] + names[:shift]:
                        t0 = time.perf_counter()
                        batch = CROP_VARIANTS[name](frame, boxes[:k], spec)
                        crop[name] = min(crop[name], (time.perf_counter() - t0) * 1e3)
                    t0 = time.perf_counter()
                    backend.infer(batch)
                    pose = min(pose, (time.perf_counter() - t0) * 1e3)
                if i >= warmup:
                    rows.append({"k": k, "detect": det, "pose": pose, "crop": crop})
            if i >= warmup:
                detect_ms.append(det)
            i += 1
    cap.release()
    report = {"video": video, "model": model, "detector": detector, "frames": len(detect_ms),
              "max_faces": max_faces, "variants": names, "threads": threads, "inner_repeats": inner_repeats,
              "detect_ms_p50": float(np.median(detect_ms)) if detect_ms else float("nan"),
              "per_k": [], "ms_per_extra_face": {}, "crop_ms_per_extra_face": {}, "command": command}
    ks = sorted({r["k"] for r in rows})
    det50 = report["detect_ms_p50"]
    for k in ks:
        sel = [r for r in rows if r["k"] == k]
        entry = {"k": k, "n": len(sel), "pose": float(np.median([r["pose"] for r in sel])), "crop": {},
                 "crop_pose": {}, "total": {}}
        entry["crop_pose_p10"] = {}
        for name in names:
            entry["crop"][name] = float(np.median([r["crop"][name] for r in sel]))
            both = [r["crop"][name] + r["pose"] for r in sel]
            entry["crop_pose"][name] = float(np.median(both))
            entry["crop_pose_p10"][name] = float(np.percentile(both, 10))
            entry["total"][name] = det50 + entry["crop_pose"][name]
        report["per_k"].append(entry)
    fit = [e for e in report["per_k"] if e["n"] >= min_frames]
    report["fit_k"] = [e["k"] for e in fit]
    for name in names:
        report["ms_per_extra_face"][name] = fit_slope(report["fit_k"], [e["crop_pose"][name] for e in fit])
        report["crop_ms_per_extra_face"][name] = fit_slope(report["fit_k"], [e["crop"][name] for e in fit])
    # the 10th percentile: the cost when the process was not preempted (shared machines)
    report["ms_per_extra_face_p10"] = {n: fit_slope(report["fit_k"], [e["crop_pose_p10"][n] for e in fit])
                                       for n in names}
    report["pose_ms_per_extra_face"] = fit_slope(report["fit_k"], [e["pose"] for e in fit])
    if json_out:
        from ..metadata import atomic_write_text

        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
    return report


def format_face_cost(report: dict) -> str:
    """The printed tables: per k the median crop time per variant, pose, and detect + crop + pose."""
    names = report["variants"]
    lines = [f"{report['frames']} frames, detector p50 {report['detect_ms_p50']:.2f} ms, "
             f"faces 1..{report['max_faces']} (largest first); medians in ms; total = detector p50 + crop + pose",
             f"{'faces':>5}{'frames':>7}{'pose':>8}" + "".join(f"{'crop ' + n:>20}" for n in names)
             + "".join(f"{'total ' + n:>20}" for n in names)]
    for e in report["per_k"]:
        lines.append(f"{e['k']:>5}{e['n']:>7}{e['pose']:>8.3f}" + "".join(f"{e['crop'][n]:>20.3f}" for n in names)
                     + "".join(f"{e['total'][n]:>20.3f}" for n in names))
    lines.append(f"fit over faces {report['fit_k']} (>= min_frames frames each)")
    lines.append(f"ms per extra face (slope of the medians): pose {report['pose_ms_per_extra_face']:.3f}; "
                 + "; ".join(f"{n}: total {report['ms_per_extra_face'][n]:.3f}, crop "
                             f"{report['crop_ms_per_extra_face'][n]:.3f}" for n in names))
    lines.append("ms per extra face (slope of the 10th percentiles of crop + pose): "
                 + "; ".join(f"{n}: {report['ms_per_extra_face_p10'][n]:.3f}" for n in names))
    return "\n".join(lines)
