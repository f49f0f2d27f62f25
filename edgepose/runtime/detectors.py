"""Face-detector factory: ``create_detector("yunet" | "centerface" | "blazeface" | "ultraface" | "haar", ...)``.

Every detector offers ``detect(frame) -> list[Detection]`` (BGR or GRAY8 frames, boxes in frame
pixels, best score first), ``close()`` and the context-manager protocol.  ONNX detectors run
through :mod:`edgepose.runtime.runners`, so a TensorRT engine of the same model plugs in by
passing its ``.engine`` path.
"""
from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from ..errors import ModelError
from .detection import Detection
from .fetch import resolve_detector_model

__all__ = ["FaceDetector", "create_detector", "list_detectors", "DEFAULTS"]

#: per-family defaults (score threshold, NMS IoU, input size); YuNet's match OpenCV's zoo demo
DEFAULTS: dict[str, dict] = {
    "yunet": {"score_threshold": 0.6, "nms_threshold": 0.3, "input_size": 640},
    "centerface": {"score_threshold": 0.5, "nms_threshold": 0.3, "input_size": 320},
    "blazeface": {"score_threshold": 0.5, "nms_threshold": 0.3, "input_size": None},
    "ultraface": {"score_threshold": 0.7, "nms_threshold": 0.3, "input_size": None},
    # OpenCV groups Haar's windows, yet one head can still give two boxes (a mouth or eye window
    # nested in the face): merged as for the CNN detectors (detection.merge_overlaps)
    "haar": {"score_threshold": 0.0, "nms_threshold": 0.3, "input_size": 640},
}


class FaceDetector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Detection]: ...

    def close(self) -> None: ...


def list_detectors() -> list[str]:
    return list(DEFAULTS)


def create_detector(name: str = "yunet", model_path: str | os.PathLike | None = None,
                    score_threshold: float | None = None, nms_threshold: float | None = None,
                    input_size: int | None | str = "default", device: str = "cpu", providers=None,
                    intra_op_threads: int | None = None, **kw) -> FaceDetector:
    """Build a detector.  Without ``model_path`` the model comes from the cache
    (``edgepose models fetch``); when it is not there, YuNet/UltraFace fall back to Haar with a
    logged warning.  ``input_size``: longest side of the network input for the dynamic YuNet
    (default 640, 0 = the frame's native size); fixed-size files only accept their own size."""
    family, path = resolve_detector_model(name.lower(), model_path)
    if family not in DEFAULTS:
        raise ModelError(f"unknown face detector {name!r}; choose one of {', '.join(DEFAULTS)}")
    opts = dict(DEFAULTS[family])
    if score_threshold is not None:
        opts["score_threshold"] = score_threshold
    if nms_threshold is not None:
        opts["nms_threshold"] = nms_threshold
    if input_size != "default":
        opts["input_size"] = input_size
    if family == "haar":
        from .haar import HaarDetector

        return HaarDetector(path, **opts, **kw)
    rt = {"device": device, "providers": providers, "intra_op_threads": intra_op_threads}
    if family == "yunet":
        from .yunet import YuNetDetector

        if input_size == "default":
            opts["input_size"] = None  # fixed files use their own size, the dynamic one 640
        return YuNetDetector(path, **opts, **rt, **kw)
    if family == "centerface":
        from .centerface import CenterFaceDetector

        return CenterFaceDetector(path, **opts, **rt, **kw)
    if family == "blazeface":
        from .blazeface import BlazeFaceDetector

        return BlazeFaceDetector(path, **opts, **rt, **kw)
    from .ultraface import UltraFaceDetector

    return UltraFaceDetector(path, **opts, **rt, **kw)
