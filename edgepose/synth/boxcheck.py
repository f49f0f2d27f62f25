"""Compare the synthetic face box and key points with a real face detector (OpenCV YuNet).

``edgepose synth boxcheck --yunet yunet.onnx --n 40`` renders frontal heads, runs
``cv2.FaceDetectorYN`` on them and reports the detection rate, the box IoU and the size/centre
ratios, and the landmark distance.  It tells you how a model trained on synthetic boxes will see
your deployed detector's boxes (and whether a ``CropPolicy`` scale/shift is needed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from .identity import HeadIdentity, identity_seeds
from .renderer import get_renderer
from .scene import SceneParams, sample_pose

__all__ = ["compare_with_yunet"]


def compare_with_yunet(model: str | Path, n: int = 40, seed: int = 0, size: int = 320,
                       pose_range: str = "frontal") -> dict:
    """Medians over the detected faces: IoU, width/height ratio (ours / YuNet), centre offset
    (fraction of YuNet's width/height), mean 5-point landmark distance (fraction of YuNet's width)."""
    import cv2

    model = Path(model)
    if not model.is_file():
        raise ModelError(f"YuNet model not found: {model}; fetch it with `edgepose models fetch yunet`")
    try:
        det = cv2.FaceDetectorYN.create(str(model), "", (size, size), 0.5)
    except cv2.error as exc:
        raise ModelError(f"OpenCV cannot load {model} as a YuNet model: {exc}") from None
    r = get_renderer(size, 2)
    rng = np.random.default_rng([seed, 0xB0C5])
    pool = identity_seeds("test", max(n, 1))
    rows = []
    for k in range(n):
        scene = SceneParams.sample(rng, ir_fraction=0.0, fill=(0.45, 0.6))
        res = r.render(HeadIdentity.from_seed(int(pool[k]), accessories=0.3), sample_pose(rng, pose_range), scene)
        _, faces = det.detect(res.image)
        if faces is None:
            continue
        x, y, w, h = (float(v) for v in faces[0][:4])
        a = res.box
        iw = max(0.0, min(a[2], x + w) - max(a[0], x))
        ih = max(0.0, min(a[3], y + h) - max(a[1], y))
        iou = iw * ih / ((a[2] - a[0]) * (a[3] - a[1]) + w * h - iw * ih)
        lm = faces[0][4:14].reshape(5, 2)
        rows.append([iou, (a[2] - a[0]) / w, (a[3] - a[1]) / h, ((a[0] + a[2]) / 2 - (x + w / 2)) / w,
                     ((a[1] + a[3]) / 2 - (y + h / 2)) / h,
                     float(np.linalg.norm(lm - res.keypoints[:5], axis=1).mean() / w)])
    med = np.median(rows, 0) if rows else [float("nan")] * 6
    keys = ["iou", "width_ratio", "height_ratio", "center_dx", "center_dy", "landmark_dist"]
    return {"rendered": n, "detected": len(rows), **{k: round(float(v), 3) for k, v in zip(keys, med)}}
