"""Detection records and box utilities shared by detectors and the tracker."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["Detection", "RunnerDetector", "NetworkDetector", "iou_matrix", "greedy_matches", "nms", "merge_overlaps",
           "clip_box", "box_area", "best_box"]


@dataclass
class Detection:
    """One face: ``box`` = (x1, y1, x2, y2) in frame pixels (continuous coordinates, the
    top-left pixel covers [0, 1) x [0, 1)), ``score`` in [0, 1], ``landmarks`` (5, 2) in the
    YuNet order (right eye, left eye, nose tip, right and left mouth corner; "right" = the
    subject's right, on the image left) or None when the detector has none (Haar, UltraFace)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0

    def to_dict(self) -> dict:
        d = {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4)}
        if self.landmarks is not None:
            d["landmarks"] = np.round(np.asarray(self.landmarks, float), 2).tolist()
        return d


class RunnerDetector:
    """Base of the detectors that run a model through a runner (``self.runner``): closing and
    the context-manager protocol."""

    runner = None

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou_matrix(a, b) -> np.ndarray:
    """Pairwise IoU of boxes a (N,4) and b (M,4) -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def greedy_matches(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs of an IoU matrix, best overlap first, each at least ``threshold``."""
    pairs, used_r, used_c = [], set(), set()
    for r, c in sorted(np.argwhere(iou >= threshold).tolist(), key=lambda p: -iou[p[0], p[1]]):
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


def nms(boxes, scores, iou_threshold: float, top_k: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if top_k is not None and len(keep) >= top_k:
            break
        rest = order[1:]
        if rest.size == 0:
            break
        ious = iou_matrix(boxes[i:i + 1], boxes[rest])[0]
        order = rest[ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def merge_overlaps(dets: list[Detection], iou_threshold: float | None, containment: float = 0.8) -> list[Detection]:
    """Detections best score first, with duplicates of one face removed: a box overlapping a
    better one by IoU > ``iou_threshold`` is dropped (NMS); of two nested boxes (intersection over
    the smaller area > ``containment``: a face box and a mouth or eye window inside it have a
    low IoU but are one head) the larger is kept, with the better score of the two.
    ``iou_threshold=None`` only sorts."""
    dets = sorted(dets, key=lambda d: -d.score)
    if iou_threshold is None or len(dets) < 2:
        return dets
    boxes = np.array([d.box for d in dets], np.float64)
    areas = box_area(boxes)
    kept: list[int] = []
    for i in nms(boxes, [d.score for d in dets], iou_threshold):  # best first
        if kept:
            nested = _intersection(boxes[i], boxes[kept]) / np.maximum(np.minimum(areas[i], areas[kept]), 1e-12)
            j = int(np.argmax(nested))
            if nested[j] > containment:
                if areas[i] > areas[kept[j]]:  # the enclosing box is the head, ranked as the better one
                    dets[i] = replace(dets[i], score=max(dets[i].score, dets[kept[j]].score))
                    kept[j] = int(i)
                continue
        kept.append(int(i))
    return [dets[i] for i in kept]


def best_box(dets: list[Detection]) -> tuple[float, float, float, float] | None:
    """The (x1, y1, x2, y2) box of the highest-scoring detection, or None when there is none: the one face the
    evaluations crop from a frame."""
    if not dets:
        return None
    return tuple(float(v) for v in max(dets, key=lambda d: d.score).box[:4])


def _intersection(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def clip_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))


class NetworkDetector(RunnerDetector):
    """Shared set-up of the detectors that run a network (YuNet, UltraFace; a new one subclasses it).

    Opens the model through the runner layer (onnxruntime or a TensorRT engine), keeps the
    thresholds, and calls :meth:`check_model` with the graph's input shape so a wrong file fails
    at load with a message naming the right one.  Subclasses set ``name``, their defaults
    (``score_threshold``, ``nms_threshold``, ``top_k`` as class attributes) and ``detect``."""

    name = ""
    score_threshold = 0.5
    nms_threshold = 0.3
    top_k = 5000

    def __init__(self, model_path, score_threshold: float | None = None, nms_threshold: float | None = None,
                 input_size: int | None = None, top_k: int | None = None, device: str = "cpu", providers=None,
                 intra_op_threads: int | None = None):
        from pathlib import Path

        from .runners import open_runner

        self.model_path = Path(model_path)
        self.runner = open_runner(self.model_path, device=device, providers=providers,
                                  intra_op_threads=intra_op_threads)
        cls = type(self)
        self.score_threshold = float(cls.score_threshold if score_threshold is None else score_threshold)
        self.nms_threshold = float(cls.nms_threshold if nms_threshold is None else nms_threshold)
        self.top_k = int(cls.top_k if top_k is None else top_k)
        try:
            self.check_model(tuple(self.runner.input_shape), input_size)
        except BaseException:
            self.runner.close()  # a wrong file must not leave a session open
            raise

    def check_model(self, shape: tuple, input_size: int | None) -> None:
        """Raise ModelError when the graph is not this detector's; keep what the decoder needs."""
        raise NotImplementedError

    def detect(self, frame: np.ndarray) -> list[Detection]:
        raise NotImplementedError
