"""How far does an INT8 file move the rotation, and does ONNX Runtime's CPU execution of it compute
what its Q/DQ graph says?

ONNX Runtime runs a Q/DQ model by fusing ``DequantizeLinear -> op -> QuantizeLinear`` chains into
integer kernels (``QLinearConv``, ``QLinearMul``, ``QLinearSigmoid``, ...; the graph transformer
``QDQSelectorActionTransformer``). Those kernels round and saturate differently from the Q/DQ
arithmetic the calibration assumed: usually by a quantization step, on some files by far more. A
WHENet U8S8 file calibrated on 17 faces moves the AFLW fixtures' Euler angles 5.7 deg from FP32
through its Q/DQ arithmetic and 24 deg once fused; other files go the other way. And the INT8
ranges themselves can be the problem (too few or unlike calibration faces: docs/quantization.md).

:func:`int8_drift` runs FP32, the INT8 file as ORT CPU runs it (fused) and its Q/DQ arithmetic (fusion
disabled) on a few calibration crops and reports both drifts, so a fragile file is flagged when it is
made rather than found in a benchmark later. It checks the calibration crops only: crops unlike them
(another detector's boxes) can drift further.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FUSION_TRANSFORMER = "QDQSelectorActionTransformer"
#: heuristics, not fitted to any model: flag INT8 that moves the rotation by more than this (deg) ...
LOSSY_DEG = 5.0
#: ... or fused kernels that add more than max(FUSED_EXTRA_DEG, FUSED_EXTRA_FRACTION x Q/DQ drift) to it
FUSED_EXTRA_DEG = 2.0
FUSED_EXTRA_FRACTION = 0.3


def _rotations(path: Path, x: np.ndarray, disabled: tuple = ()) -> np.ndarray | None:
    from edgepose.export.checks import ort_session, run_onnx

    # one thread: deterministic, and the check stays cheap on a shared machine
    out = run_onnx(ort_session(path, threads=1, disabled_optimizers=disabled), x)
    return np.asarray(out["rotation"], np.float64) if "rotation" in out else None


def int8_drift(fp32_path: str | Path, int8_path: str | Path, crops: np.ndarray, max_crops: int = 16) -> dict | None:
    """Mean geodesic angles (deg) on up to ``max_crops`` crops between FP32 and the INT8 file as ORT CPU
    runs it (fused), FP32 and the Q/DQ arithmetic (fusion disabled), and the two INT8 executions;
    ``None`` for a model without a ``rotation`` output."""
    from edgepose.metrics import geodesic_errors

    x = np.ascontiguousarray(crops[:max_crops], np.float32)
    ref = _rotations(Path(fp32_path), x)
    if ref is None:
        return None
    fused = _rotations(Path(int8_path), x)
    qdq = _rotations(Path(int8_path), x, (FUSION_TRANSFORMER,))
    mean = lambda a, b: round(float(geodesic_errors(a, b).mean()), 3)  # noqa: E731
    return {"crops": int(len(x)), "fused_vs_fp32_deg": mean(fused, ref), "qdq_vs_fp32_deg": mean(qdq, ref),
            "fused_vs_qdq_deg": mean(fused, qdq),
            "note": f"ONNX Runtime CPU; 'qdq' = {FUSION_TRANSFORMER} disabled (the file's own Q/DQ arithmetic)"}


def drift_problems(drift: dict | None) -> list[str]:
    """What is wrong with an INT8 file, from :func:`int8_drift` (empty: nothing flagged)."""
    if drift is None:
        return []
    out = []
    fused, qdq = drift["fused_vs_fp32_deg"], drift["qdq_vs_fp32_deg"]
    if fused > qdq + max(FUSED_EXTRA_DEG, FUSED_EXTRA_FRACTION * qdq):
        out.append(f"ONNX Runtime's fused INT8 CPU kernels move the rotation {fused:.1f} deg from FP32 where the "
                   f"file's own Q/DQ arithmetic moves it {qdq:.1f} deg")
    if qdq > LOSSY_DEG:
        out.append(f"the INT8 arithmetic itself moves the rotation {qdq:.1f} deg from FP32")
    return out


def warn_drift(drift: dict | None, name: str, profile: str) -> bool:
    """Log one warning naming the problems and what to do; True when something was flagged."""
    problems = drift_problems(drift)
    if not problems:
        return False
    lossy = drift["qdq_vs_fp32_deg"] > LOSSY_DEG
    if profile == "cpu":
        use = "On ORT CPU use the FP32 file" + ("" if lossy else " or the tensorrt-profile file")
    else:
        use = "On TensorRT prefer an FP16 engine from the FP32 file" if lossy else "On ORT CPU use the FP32 file"
    log.warning("%s: %s (mean over %d calibration crops). %s; more calibration faces, --method percentile "
                "or keeping sensitive layers in float (`edgepose-bench quantize-sweep`) may help",
                name, "; ".join(problems), drift["crops"], use)
    return True
