"""Runtime: backends (runner per file suffix), face detectors, model fetch, tracking, smoothing
and the per-frame processor used by the GStreamer pipelines.

Public names are imported lazily so ``import edgepose.runtime`` stays cheap (no onnxruntime,
torch or OpenCV DNN until something is used).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_backend": "backend", "PoseBackend": "backend", "decode_pose_outputs": "backend",
    "OnnxRunner": "runners", "TorchRunner": "runners", "open_runner": "runners", "select_providers": "runners",
    "Detection": "detection", "nms": "detection",
    "create_detector": "detectors", "list_detectors": "detectors",
    "resolve_detector_model": "fetch", "fetch_model": "fetch", "cache_dir": "fetch", "KNOWN_MODELS": "fetch",
    "IoUTracker": "tracking", "Track": "tracking",
    "OneEuroFilter": "smoothing", "QuaternionOneEuroFilter": "smoothing", "PoseSmoother": "smoothing",
    "DriverSelector": "driver",
    "intrinsics_from_hfov": "camera", "VehicleFrame": "camera",
    "FrameProcessor": "frame", "FrameResult": "frame", "FaceResult": "frame",
    "RuntimeConfig": "settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'edgepose.runtime' has no attribute {name!r}")
