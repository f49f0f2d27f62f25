"""Procedural 2D backgrounds (RGB uint8): plain, gradient, noise and a car-cabin view.

The cabin is drawn as seen by a driver camera: roof lining on top, a side window with a bright
(often blown-out) outside, the B-pillar, the seat back and headrest behind the driver.  It is
mirrored at random so left- and right-hand-drive cabins both appear.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BACKGROUNDS", "make_background"]

BACKGROUNDS = ("plain", "gradient", "noise", "cabin")


def _col(rng: np.random.Generator, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    return rng.uniform(lo, hi, 3) * 255.0


def make_background(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 (height, width, 3) background of ``kind`` (one of :data:`BACKGROUNDS`)."""
    import cv2

    from ..errors import UserError

    if kind not in BACKGROUNDS:
        raise UserError(f"unknown background {kind!r}; choose one of {', '.join(BACKGROUNDS)}")
    h, w = height, width
    if kind == "plain":
        return np.broadcast_to(_col(rng, 0.05, 0.95).astype(np.uint8), (h, w, 3)).copy()
    if kind == "gradient":
        # a linear ramp is exact under bilinear upsampling: compute it on a coarse grid
        a, b = _col(rng), _col(rng)
        ang = rng.uniform(0, 2 * np.pi)
        gh, gw = max(2, h // 8), max(2, w // 8)
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        t = np.cos(ang) * xx / gw + np.sin(ang) * yy / gh
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        small = (a + t[..., None] * (b - a)).astype(np.float32)
        return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), 0, 255).astype(np.uint8)
    if kind == "noise":
        small = rng.uniform(0, 255, (max(2, h // rng.integers(4, 17)), max(2, w // rng.integers(4, 17)), 3))
        img = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        return np.clip(img, 0, 255).astype(np.uint8)
    # the cabin is drawn at half resolution: it is out of focus behind the driver anyway
    hw, hh = max(16, (w + 1) // 2), max(16, (h + 1) // 2)
    return cv2.resize(_cabin(hw, hh, rng), (w, h), interpolation=cv2.INTER_LINEAR)


def _cabin(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    lining = _col(rng, 0.35, 0.8) * np.array([1.0, 0.97, 0.92])
    img = np.empty((h, w, 3), np.float32)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img[:] = lining * (0.55 + 0.45 * yy)  # roof lining, darker toward the roof
    # side window: a bright, slanted quadrilateral; the outside is sky + blurred scenery
    x0 = rng.uniform(0.0, 0.25) * w
    x1 = rng.uniform(0.45, 0.75) * w
    y0 = rng.uniform(0.12, 0.3) * h
    y1 = rng.uniform(0.6, 0.85) * h
    slant = rng.uniform(0.05, 0.2) * w
    win = np.array([[x0, y1], [x0 + slant, y0], [x1, y0], [x1, y1]], np.int32)
    outside = np.empty((h, w, 3), np.float32)
    sky = _col(rng, 0.75, 1.0) * np.array([0.85, 0.92, 1.0])
    outside[:] = sky
    scenery = cv2.resize(rng.uniform(40, 200, (6, 12, 3)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC)
    horizon = rng.uniform(0.45, 0.7)
    outside[int(horizon * h):] = scenery[int(horizon * h):]
    if rng.uniform() < 0.5:  # blown-out sunny window
        outside = np.minimum(outside * rng.uniform(1.3, 2.0), 255)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [win], 1)
    img = np.where(mask[..., None] > 0, outside, img)
    # B-pillar: a dark slanted band at the window's far edge
    pc = _col(rng, 0.05, 0.4)
    px = x1 + rng.uniform(-0.02, 0.05) * w
    pw = rng.uniform(0.06, 0.14) * w
    pillar = np.array([[px, 0], [px + pw, 0], [px + pw - slant * 0.5, h], [px - slant * 0.5, h]], np.int32)
    cv2.fillPoly(img, [pillar], pc.tolist())
    # seat back and headrest behind the head (centre-bottom)
    sc = _col(rng, 0.03, 0.45)
    cx = rng.uniform(0.35, 0.65) * w
    hr_w, hr_h = rng.uniform(0.25, 0.4) * w, rng.uniform(0.18, 0.28) * h
    hr_y = rng.uniform(0.15, 0.35) * h
    cv2.ellipse(img, (int(cx), int(hr_y + hr_h / 2)), (int(hr_w / 2), int(hr_h / 2)), 0, 0, 360,
                (sc * 1.1).clip(0, 255).tolist(), -1, cv2.LINE_AA)
    seat = np.array([[cx - 0.35 * w, h], [cx - 0.28 * w, hr_y + hr_h * 1.3], [cx + 0.28 * w, hr_y + hr_h * 1.3],
                     [cx + 0.35 * w, h]], np.int32)
    cv2.fillPoly(img, [seat], sc.tolist(), cv2.LINE_AA)
    # headrest posts
    for dx in (-0.08, 0.08):
        x = int(cx + dx * w)
        cv2.line(img, (x, int(hr_y + hr_h)), (x, int(hr_y + hr_h * 1.35)), (160, 160, 165), max(1, w // 100))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[:, ::-1].copy() if rng.uniform() < 0.5 else img
