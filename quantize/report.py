"""The quantize report: FP32 vs each INT8 profile on size, ORT CPU latency and accuracy.

Latency: ONNX Runtime CPU provider, batch 1, ``intra_op_num_threads`` (default 2), a warm-up,
then median / p90 over ``runs`` timed calls on one real preprocessed crop.  Accuracy: the
evaluation set is cropped with the model's own preprocessing (:func:`edgepose.evaluation.variant_batch`)
and scored with :func:`edgepose.metrics.pose_metrics` (per-axis MAE, mean MAE, geodesic error), with
the delta to FP32.  Saved as JSON + Markdown (atomic writes).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from edgepose.errors import DataError
from edgepose.metadata import atomic_write_text, load_metadata

__all__ = ["measure_latency", "evaluate_onnx", "build_report", "format_markdown", "write_report"]

_ACC_KEYS = ("mae_pitch", "mae_yaw", "mae_roll", "mae", "ge")
#: settings copied from each INT8 file's sidecar (``extra.quantization``) into its report row
_QUANT_KEYS = ("profile", "method", "per_channel", "reduce_range", "reduce_range_reason", "int8_drift")


def _session(path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def measure_latency(path, x1: np.ndarray, runs: int = 100, warmup: int = 10, threads: int = 2) -> dict:
    """Median / p90 / mean milliseconds of ``session.run`` on a (1, C, S, S) batch."""
    if runs < 1:
        raise DataError(f"latency runs must be >= 1 (got {runs})")
    sess = _session(path, threads)
    name = sess.get_inputs()[0].name
    feed = {name: np.ascontiguousarray(x1[:1], np.float32)}
    for _ in range(warmup):
        sess.run(None, feed)
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        t[i] = (time.perf_counter() - t0) * 1e3
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "mean_ms": float(t.mean()),
            "runs": runs, "threads": threads, "batch": 1}


def eval_batch(reader, spec) -> tuple[np.ndarray, np.ndarray]:
    """Labelled samples of ``reader`` -> (inputs with ``spec``, R labels)."""
    from edgepose.evaluation import Variant, variant_batch

    samples = [s for s in reader if s.R is not None]
    if not samples:
        raise DataError("the evaluation set has no labelled samples; pass a labelled set to --eval")
    return variant_batch(samples, spec, Variant("original"))


def predict_onnx(path, x: np.ndarray, threads: int = 2, batch: int = 32) -> np.ndarray:
    """(N, 3, 3) float64 rotations of an ONNX pose file for preprocessed crops ``x``."""
    sess = _session(path, threads)
    name = sess.get_inputs()[0].name
    outs = [sess.run(["rotation"], {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs).astype(np.float64)


def evaluate_onnx(path, x: np.ndarray, R_gt: np.ndarray, threads: int = 2, batch: int = 32) -> tuple[dict, np.ndarray]:
    from edgepose.metrics import pose_metrics

    R = predict_onnx(path, x, threads, batch)
    m = pose_metrics(R, R_gt, aligned=False)
    return {k: float(m[k]) for k in (*_ACC_KEYS, "n")}, R


def build_report(models: dict[str, Path], eval_x: np.ndarray | None, eval_R: np.ndarray | None,
                 latency_x: np.ndarray, runs: int = 100, threads: int = 2, eval_name: str = "") -> dict:
    """``models``: label -> ONNX path, FP32 first (``"fp32"``); returns the JSON-able report."""
    rows: dict[str, dict] = {}
    ref = None
    for label, path in models.items():
        meta = load_metadata(path)
        row = {"path": str(path), "precision": meta.precision, "size_mb": os.path.getsize(path) / 1e6,
               "latency": measure_latency(path, latency_x, runs=runs, threads=threads)}
        quant = (meta.extra or {}).get("quantization")
        if quant:  # the reader of the report sees how each INT8 file was made (e.g. 7-bit weights)
            row["quantization"] = {k: quant.get(k) for k in _QUANT_KEYS}
            eq = quant.get("equalization")  # its per-tensor list stays in the sidecar; the strength is enough here
            row["quantization"]["equalize"] = eq.get("alpha") if eq else None
        if eval_x is not None:
            acc, R = evaluate_onnx(path, eval_x, eval_R, threads=threads)
            row["accuracy"] = acc
            if ref is None:
                ref = (acc, R)
            else:
                from edgepose.geometry import geodesic_distance

                row["delta_vs_fp32"] = {k: acc[k] - ref[0][k] for k in _ACC_KEYS}
                row["geodesic_to_fp32_deg"] = float(geodesic_distance(R, ref[1]).mean())
        if label != "fp32" and "fp32" in rows:
            base = rows["fp32"]
            row["speedup_vs_fp32"] = base["latency"]["median_ms"] / row["latency"]["median_ms"]
            row["size_ratio_vs_fp32"] = row["size_mb"] / base["size_mb"]
        rows[label] = row
    import onnxruntime

    return {"eval_set": eval_name, "n_eval": None if eval_x is None else int(len(eval_x)),
            "ort_version": onnxruntime.__version__, "cpu_count": os.cpu_count(), "models": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def format_markdown(report: dict) -> str:
    lines = [f"INT8 report ({report['eval_set'] or 'no eval set'}, n={report['n_eval']}; ORT "
             f"{report['ort_version']} CPU, batch 1)", "",
             "| model | precision | size MB | median ms | p90 ms | speed-up | MAE P/Y/R | MAE | GE | dMAE vs FP32 | dGE |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for label, r in report["models"].items():
        lat = r["latency"]
        acc = r.get("accuracy")
        d = r.get("delta_vs_fp32")
        sp = f"{r['speedup_vs_fp32']:.2f}x" if "speedup_vs_fp32" in r else "1.00x"
        per = f"{acc['mae_pitch']:.2f}/{acc['mae_yaw']:.2f}/{acc['mae_roll']:.2f}" if acc else "-"
        lines.append(f"| {label} | {r['precision']} | {r['size_mb']:.2f} | {lat['median_ms']:.2f} | {lat['p90_ms']:.2f} "
                     f"| {sp} | {per} | {acc['mae']:.2f} | {acc['ge']:.2f} | "
                     f"{'%+.2f' % d['mae'] if d else '-'} | {'%+.2f' % d['ge'] if d else '-'} |" if acc else
                     f"| {label} | {r['precision']} | {r['size_mb']:.2f} | {lat['median_ms']:.2f} | {lat['p90_ms']:.2f} "
                     f"| {sp} | - | - | - | - | - |")
    lines += _quantization_lines(report)
    return "\n".join(lines) + "\n"


def _quantization_lines(report: dict) -> list[str]:
    """One line per INT8 model: profile, calibration, reduce_range (with why) and the INT8 drift check."""
    out = []
    for label, r in report["models"].items():
        q = r.get("quantization")
        if not q:
            continue
        rr = "on (7-bit weights)" if q.get("reduce_range") else "off"
        why = f" - {q['reduce_range_reason']}" if q.get("reduce_range_reason") else ""
        d = q.get("int8_drift")
        drift = (f"; drift from FP32 on the calibration crops {d['fused_vs_fp32_deg']:.2f} deg as ORT CPU runs it, "
                 f"{d['qdq_vs_fp32_deg']:.2f} deg by its Q/DQ arithmetic" if d else "")
        eq = "" if q.get("equalize") is None else f", activations equalized (alpha {q['equalize']:g})"
        out.append(f"- {label}: {q.get('profile')} profile, {q.get('method')} calibration{eq}, "
                   f"reduce_range {rr}{why}{drift}")
    return [""] + out if out else []


def write_report(report: dict, stem: str | Path) -> tuple[Path, Path]:
    stem = Path(stem)
    js, md = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    atomic_write_text(js, json.dumps(report, indent=2) + "\n")
    atomic_write_text(md, format_markdown(report))
    return js, md
