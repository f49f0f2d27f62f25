"""edgepose.quantize: INT8 post-training quantization for TensorRT (Q/DQ, S8S8) and ONNX Runtime CPU (U8S8).

Public API (heavy imports happen inside the functions)::

    from edgepose.quantize import build_calibration_set, quantize_onnx, lint_qdq, check_tensorrt_qdq
    calib = build_calibration_set(["incar.mp4", "faces/"], meta.preprocess)     # detector + crop policy
    quantize_onnx("student.onnx", "student-int8-trt.onnx", calib.crops, "tensorrt", manifest=calib.manifest)
    check_tensorrt_qdq("student-int8-trt.onnx")                                  # raises QDQLintError

See docs/quantization.md.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "QuantProfile": "profiles", "PROFILES": "profiles", "get_profile": "profiles", "parse_profiles": "profiles",
    "CALIBRATION_METHODS": "profiles",
    "CalibrationSet": "calibration", "build_calibration_set": "calibration",
    "CropCalibrationReader": "calibration", "write_manifest": "calibration",
    "quantize_onnx": "ptq", "QuantResult": "ptq",
    "equalize_activations": "equalize", "find_equalizable": "equalize", "EqualizeResult": "equalize",
    "lint_qdq": "lint", "check_tensorrt_qdq": "lint", "QDQLintError": "lint", "Violation": "lint",
    "int8_drift": "kernel_check", "drift_problems": "kernel_check",
    "head_node_names": "graph", "find_feature_pool": "graph", "find_feature_pools": "graph", "head_nodes": "graph",
    "build_report": "report", "measure_latency": "report", "write_report": "report",
    "qat_finetune": "qat", "prepare_qat": "qat", "convert_back": "qat",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'edgepose.quantize' has no attribute {name!r}")
