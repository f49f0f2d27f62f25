"""Face-detector factory: ``create_detector("yunet" | "centerface" | "blazeface" | "ultraface" | "haar", ...)``.

Every detector offers ``detect(frame) -> list[Detection]`` (BGR or GRAY8 frames, boxes in frame
pixels, best score first), ``close()`` and the context-manager protocol.  ONNX detectors run
through :mod:`edgepose.runtime.runners`, so a TensorRT engine of the same model plugs in by
passing its ``.engine`` path.
"""
from __future__ import annotations

import os
from typing import Callable, Protocol

import numpy as np

from ..errors import ModelError
from ..registry import Registry
from .detection import Detection
from .fetch import resolve_detector_model

__all__ = ["FaceDetector", "create_detector", "list_detectors", "DEFAULTS", "DETECTORS"]


class FaceDetector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Detection]: ...

    def close(self) -> None: ...


#: detector family -> ``build(path, **opts) -> FaceDetector``; info["defaults"] = its score threshold,
#: NMS IoU and input size.  Registration order is the order of preference (listings keep it).
DETECTORS: Registry[Callable[..., FaceDetector]] = Registry("face detector", error=ModelError, sort=False)


# Each builder imports its module on use: a detector's dependencies (OpenCV, onnxruntime) load
# only for the detector that runs.  ``rt`` options (device, providers, threads) go to the network ones.
@DETECTORS.register("yunet", defaults={"score_threshold": 0.6, "nms_threshold": 0.3, "input_size": 640})
def _yunet(path, **opts) -> FaceDetector:  # defaults match OpenCV's zoo demo
    from .yunet import YuNetDetector

    return YuNetDetector(path, **opts)


@DETECTORS.register("centerface", defaults={"score_threshold": 0.5, "nms_threshold": 0.3, "input_size": 320})
def _centerface(path, **opts) -> FaceDetector:
    from .centerface import CenterFaceDetector

    return CenterFaceDetector(path, **opts)


@DETECTORS.register("blazeface", defaults={"score_threshold": 0.5, "nms_threshold": 0.3, "input_size": None})
def _blazeface(path, **opts) -> FaceDetector:
    from .blazeface import BlazeFaceDetector

    return BlazeFaceDetector(path, **opts)


@DETECTORS.register("ultraface", defaults={"score_threshold": 0.7, "nms_threshold": 0.3, "input_size": None})
def _ultraface(path, **opts) -> FaceDetector:
    from .ultraface import UltraFaceDetector

    return UltraFaceDetector(path, **opts)


# OpenCV groups Haar's windows, yet one head can still give two boxes (a mouth or eye window
# nested in the face): merged as for the CNN detectors (detection.merge_overlaps)
@DETECTORS.register("haar", defaults={"score_threshold": 0.0, "nms_threshold": 0.3, "input_size": 640},
                    network=False)
def _haar(path, **opts) -> FaceDetector:
    from .haar import HaarDetector

    return HaarDetector(path, **opts)


#: per-family defaults (score threshold, NMS IoU, input size), read from the registry
DEFAULTS: dict[str, dict] = {name: DETECTORS.info(name)["defaults"] for name in DETECTORS.names()}


def list_detectors() -> list[str]:
    return DETECTORS.names()


def create_detector(name: str = "yunet", model_path: str | os.PathLike | None = None,
                    score_threshold: float | None = None, nms_threshold: float | None = None,
                    input_size: int | None | str = "default", device: str = "cpu", providers=None,
                    intra_op_threads: int | None = None, **kw) -> FaceDetector:
    """Build a detector.  Without ``model_path`` the model comes from the cache
    (``edgepose models fetch``); when it is not there, YuNet/UltraFace fall back to Haar with a
    logged warning.  ``input_size``: longest side of the network input for the dynamic YuNet
    (default 640, 0 = the frame's native size); fixed-size files only accept their own size."""
    family, path = resolve_detector_model(name.lower(), model_path)
    build = DETECTORS.get(family)
    info = DETECTORS.info(family)
    opts = dict(info["defaults"])
    if score_threshold is not None:
        opts["score_threshold"] = score_threshold
    if nms_threshold is not None:
        opts["nms_threshold"] = nms_threshold
    if input_size != "default":
        opts["input_size"] = input_size
    elif family == "yunet":
        opts["input_size"] = None  # fixed files use their own size, the dynamic one 640
    if info.get("network", True):
        opts.update(device=device, providers=providers, intra_op_threads=intra_op_threads)
    return build(path, **opts, **kw)
