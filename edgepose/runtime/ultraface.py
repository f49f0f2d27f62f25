"""UltraFace (Ultra-Light-Fast-Generic-Face-Detector-1MB) RFB-320 / slim-320.

The published ``version-*-320.onnx`` graphs end in the box decoding: ``scores`` (1,K,2)
softmax (column 1 = face) and ``boxes`` (1,K,4) normalised x1,y1,x2,y2.  Input: the frame
resized to 320x240 (no letterbox, as upstream), **RGB**, (x - 127) / 128, NCHW.  NMS here.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError
from ..preprocess import to_bgr
from .detection import Detection, RunnerDetector, nms
from .runners import open_runner

__all__ = ["UltraFaceDetector"]


class UltraFaceDetector(RunnerDetector):
    name = "ultraface"

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 input_size: int | None = None, top_k: int = 750, device: str = "cpu", providers=None,
                 intra_op_threads: int | None = None):
        self.model_path = Path(model_path)
        self.runner = open_runner(self.model_path, device=device, providers=providers,
                                  intra_op_threads=intra_op_threads)
        shape = tuple(self.runner.input_shape)
        if len(shape) != 4 or not shape[2] or not shape[3]:
            raise ModelError(f"{self.model_path.name} does not look like UltraFace (input {shape}, expected (1,3,240,320))")
        if not {"scores", "boxes"} <= set(self.runner.output_names):
            raise ModelError(f"{self.model_path.name} lacks the decoded 'scores'/'boxes' outputs; use the "
                             f"version-RFB-320.onnx / version-slim-320.onnx files (not *_without_postprocessing)")
        self.net_h, self.net_w = shape[2], shape[3]
        if input_size and input_size not in (self.net_w, self.net_h):
            raise ModelError(f"{self.model_path.name} has a fixed {self.net_w}x{self.net_h} input; input_size="
                             f"{input_size} is not possible with this file")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(to_bgr(frame), cv2.COLOR_BGR2RGB)
        x = cv2.resize(rgb, (self.net_w, self.net_h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = (x - 127.0) / 128.0
        return x.transpose(2, 0, 1)[None]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        h, w = frame.shape[:2]
        out = self.runner.infer({self.runner.input_name: self.prepare(frame)})
        scores = out["scores"].reshape(-1, 2)[:, 1]
        boxes = out["boxes"].reshape(-1, 4).astype(np.float64)
        idx = np.nonzero(scores >= self.score_threshold)[0]
        if idx.size == 0:
            return []
        boxes = boxes[idx] * np.array([w, h, w, h], np.float64)
        scores = scores[idx]
        keep = nms(boxes, scores, self.nms_threshold, self.top_k)
        return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), None) for i in keep]
