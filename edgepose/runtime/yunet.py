"""YuNet face detector (libfacedetection / OpenCV zoo) with our own anchor-free decoder.

The ONNX graph outputs, per stride s in (8, 16, 32), ``cls_s`` (N,A,1), ``obj_s`` (N,A,1),
``bbox_s`` (N,A,4) and ``kps_s`` (N,A,10) with A = (H/s)(W/s) cells in row-major order.
The decode follows OpenCV's ``FaceDetectorYN`` (modules/objdetect/src/face_detect.cpp):

* score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1));
* centre = ((col, row) + bbox[0:2]) * s; size = exp(bbox[2:4]) * s;
* landmark k = ((col, row) + kps[2k:2k+2]) * s;

followed by NMS.  Input: BGR, float 0..255, NCHW, no normalisation.  The frame is resized
keeping its aspect ratio and padded at the bottom/right: to the model's fixed size (320/640
files) or, for the dynamic model, to a multiple of 32 (onnxruntime rejects other sizes).
The model runs through the runner layer (onnxruntime now, TensorRT engines later).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import ModelError
from ..preprocess import to_bgr
from .detection import Detection, NetworkDetector, nms

__all__ = ["YuNetDetector", "letterbox", "plan_padded"]

STRIDES = (8, 16, 32)
DYNAMIC_DEFAULT_SIZE = 640


def letterbox(frame_bgr: np.ndarray, out_w: int, out_h: int, scale: float) -> np.ndarray:
    """Resize by ``scale`` (aspect kept) and pad with zeros at the bottom/right to out_w x out_h."""
    h, w = frame_bgr.shape[:2]
    rw, rh = min(out_w, max(1, round(w * scale))), min(out_h, max(1, round(h * scale)))
    resized = frame_bgr if (rw, rh) == (w, h) else cv2.resize(frame_bgr, (rw, rh), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((out_h, out_w, 3), np.uint8)
    canvas[:rh, :rw] = resized
    return canvas


def plan_padded(h: int, w: int, longest: int | None, multiple: int = 32) -> tuple[int, int, float]:
    """(net_w, net_h, scale) for a fully convolutional detector: the frame scaled so its longest
    side is ``longest`` (0/None = native), padded up to a multiple of ``multiple``."""
    scale = (longest / max(h, w)) if longest else 1.0
    net_w = max(multiple, math.ceil(round(w * scale) / multiple) * multiple)
    net_h = max(multiple, math.ceil(round(h * scale) / multiple) * multiple)
    return net_w, net_h, scale


class YuNetDetector(NetworkDetector):
    """``detect(frame) -> list[Detection]`` with 5 landmarks per face."""

    name = "yunet"
    score_threshold, nms_threshold, top_k = 0.6, 0.3, 5000

    def check_model(self, shape: tuple, input_size: int | None) -> None:
        if len(shape) != 4 or shape[1] not in (3, None):
            raise ModelError(f"{self.model_path.name} does not look like YuNet (input {shape}, expected (N,3,H,W))")
        missing = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES
                   if f"{k}_{s}" not in self.runner.output_names]
        if missing:
            raise ModelError(f"{self.model_path.name} lacks the YuNet outputs {', '.join(missing)}; "
                             f"use a libfacedetection/opencv_zoo YuNet ONNX file")
        self.fixed_hw = (shape[2], shape[3]) if shape[2] and shape[3] else None
        if self.fixed_hw and input_size and input_size not in self.fixed_hw:
            raise ModelError(
                f"{self.model_path.name} has a fixed {self.fixed_hw[1]}x{self.fixed_hw[0]} input, but input_size="
                f"{input_size} was asked for; use the YuNet file made for that size or the dynamic model "
                f"(yunet_s_dynamic.onnx), or leave input_size unset")
        # dynamic model: longest side of the network input (None -> 640, 0 -> native frame size)
        self.input_size = DYNAMIC_DEFAULT_SIZE if input_size is None else int(input_size)

    # -- geometry of the network input ---------------------------------------------------------
    def _plan(self, h: int, w: int) -> tuple[int, int, float]:
        """(net_w, net_h, scale) for a frame of h x w."""
        if self.fixed_hw:
            net_h, net_w = self.fixed_hw
            return net_w, net_h, min(net_w / w, net_h / h)
        return plan_padded(h, w, self.input_size)

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Frame (BGR or GRAY) -> (network input (1,3,H,W) float32, scale)."""
        bgr = to_bgr(frame)
        h, w = bgr.shape[:2]
        net_w, net_h, scale = self._plan(h, w)
        canvas = letterbox(bgr, net_w, net_h, scale)
        return canvas.transpose(2, 0, 1)[None].astype(np.float32), scale

    def decode(self, outputs: dict[str, np.ndarray], net_w: int, net_h: int, scale: float) -> list[Detection]:
        boxes, scores, kps_all = [], [], []
        for s in STRIDES:
            rows, cols = net_h // s, net_w // s
            cls = np.clip(outputs[f"cls_{s}"].reshape(-1), 0.0, 1.0)
            obj = np.clip(outputs[f"obj_{s}"].reshape(-1), 0.0, 1.0)
            if cls.size != rows * cols:
                raise ModelError(f"YuNet output cls_{s} has {cls.size} cells, expected {rows}x{cols}")
            score = np.sqrt(cls * obj)
            idx = np.nonzero(score >= self.score_threshold)[0]
            if idx.size == 0:
                continue
            bbox = outputs[f"bbox_{s}"].reshape(-1, 4)[idx].astype(np.float64)
            kps = outputs[f"kps_{s}"].reshape(-1, 10)[idx].astype(np.float64)
            grid = np.stack([idx % cols, idx // cols], -1).astype(np.float64)  # (col, row)
            centre = (grid + bbox[:, 0:2]) * s
            size = np.exp(bbox[:, 2:4]) * s
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], -1))
            kps_all.append((kps.reshape(-1, 5, 2) + grid[:, None, :]) * s)
            scores.append(score[idx])
        if not boxes:
            return []
        boxes = np.concatenate(boxes) / scale
        kps_all = np.concatenate(kps_all) / scale
        scores = np.concatenate(scores)
        keep = nms(boxes, scores, self.nms_threshold, self.top_k)
        return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), kps_all[i].astype(np.float32))
                for i in keep]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        x, scale = self.prepare(frame)
        out = self.runner.infer({self.runner.input_name: x})
        return self.decode(out, x.shape[3], x.shape[2], scale)

