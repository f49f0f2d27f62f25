"""A labelled contact sheet of synthetic renders (visual check of labels and variety)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import geometry
from ..errors import UserError
from .dataset import SynthConfig, SynthHeadDataset
from .renderer import RenderResult

__all__ = ["draw_labels", "contact_sheet"]


def draw_labels(res: RenderResult) -> np.ndarray:
    """BGR copy of the render with the face box (green), key points (red visible / blue hidden)
    and the head axes from ``R_crop`` at the head centre (x red, y green, z blue)."""
    import cv2

    img = res.image if res.image.ndim == 3 else cv2.cvtColor(res.image, cv2.COLOR_GRAY2BGR)
    img = img.copy()
    x1, y1, x2, y2 = (int(round(v)) for v in res.box)
    cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 1)
    for (u, v), vis in zip(res.keypoints, res.visible):
        cv2.circle(img, (int(round(u)), int(round(v))), 2, (0, 0, 255) if vis else (255, 0, 0), -1)
    length = 0.35 * (x2 - x1)
    c = np.array(res.center_uv)
    tips = geometry.project_points(res.R_crop, np.eye(3), center=tuple(c), scale=length)
    for tip, col in zip(tips, ((0, 0, 255), (0, 255, 0), (255, 0, 0))):
        cv2.line(img, tuple(int(round(v)) for v in c), tuple(int(round(v)) for v in tip), col, 1, cv2.LINE_AA)
    return img


def contact_sheet(out: str | Path, n: int, seed: int = 0, config: SynthConfig | None = None) -> Path:
    import cv2

    ds = SynthHeadDataset(n, seed=seed, config=config)
    tiles = [draw_labels(ds.render(i)) for i in range(n)]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = tiles[0].shape[:2]
    sheet = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    if not cv2.imwrite(str(tmp), sheet):
        raise UserError(f"cannot write {out}: use a .png or .jpg name in a writable folder")
    os.replace(tmp, out)
    return out
