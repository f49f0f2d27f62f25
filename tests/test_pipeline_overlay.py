"""Overlay drawing: axes follow the rotation convention, GRAY8 frames, status lines, NaN poses."""
from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np

from edgepose.geometry import euler_to_matrix
from edgepose.overlay import AXIS_COLORS, draw_axes, draw_frame_result


def _axis_pixels(img, color) -> np.ndarray:
    """Pixels of one axis colour; anti-aliased edges are that colour scaled towards black."""
    c = np.asarray(color, float)
    p = img.astype(float)
    norm = np.linalg.norm(p, axis=2)
    cos = (p @ c) / (np.maximum(norm, 1e-9) * np.linalg.norm(c))
    ys, xs = np.nonzero((cos > 0.995) & (norm > 80))
    return np.stack([xs, ys], 1)


def test_axes_follow_the_convention():
    c = (100.0, 100.0)
    # frontal: x axis to image-right, y axis up, z (towards the camera) collapses to the centre
    img = np.zeros((200, 200, 3), np.uint8)
    draw_axes(img, np.eye(3), c, 60, thickness=1)
    x_px, y_px = _axis_pixels(img, AXIS_COLORS[0]), _axis_pixels(img, AXIS_COLORS[1])
    assert x_px[:, 0].max() >= 155 and abs(np.median(x_px[:, 1]) - 100) <= 1
    assert y_px[:, 1].min() <= 45 and abs(np.median(y_px[:, 0]) - 100) <= 1
    # +yaw = nose to image-left: the face axis z must point left
    img = np.zeros((200, 200, 3), np.uint8)
    draw_axes(img, euler_to_matrix([0.0, 60.0, 0.0]), c, 60, thickness=1)
    z_px = _axis_pixels(img, AXIS_COLORS[2])
    assert len(z_px) and z_px[:, 0].min() < 60 and z_px[:, 0].max() <= 101
    # +pitch = up: z points up in the image (smaller v)
    img = np.zeros((200, 200, 3), np.uint8)
    draw_axes(img, euler_to_matrix([60.0, 0.0, 0.0]), c, 60, thickness=1)
    z_px = _axis_pixels(img, AXIS_COLORS[2])
    assert z_px[:, 1].min() < 60 and z_px[:, 1].max() <= 101


def _face(R, box=(40, 40, 120, 140)):
    from edgepose.geometry import matrix_to_euler

    R = np.asarray(R, float)
    euler = matrix_to_euler(R) if np.all(np.isfinite(R)) else np.full(3, np.nan)
    return NS(track_id=3, box=box, score=0.9, R=R, euler=euler, is_driver=True)


def test_frame_result_on_gray_and_nan():
    gray = np.full((180, 240), 50, np.uint8)
    res = NS(faces=[_face(np.eye(3))])
    out = draw_frame_result(gray, res, fps=42.0, status_lines=["DMS ON_ROAD"])
    assert out.shape == (180, 240, 3) and out.dtype == np.uint8
    assert (out != 50).any(axis=2).sum() > 500  # box, axes and text were drawn in colour
    assert gray.max() == 50  # the GRAY8 input itself is untouched
    bgr = np.zeros((180, 240, 3), np.uint8)
    out = draw_frame_result(bgr, NS(faces=[_face(np.full((3, 3), np.nan))]))
    assert out is bgr and out.any()  # NaN pose: the box and label are drawn, no axes, no crash
    for color in AXIS_COLORS:
        assert len(_axis_pixels(out, color)) == 0


def test_overlay_text_scales_with_a_4k_frame():
    """Status text on a 2160p frame: glyphs at least 1 % of the frame height and strokes that survive a
    3x3 erosion (more than 2 px thick), as on a 540p frame scaled by 4 (issue 16)."""
    import cv2

    def text_extent(h):
        img = np.zeros((h, h * 16 // 9, 3), np.uint8)
        out = draw_frame_result(img, NS(faces=[]), status_lines=["DMS ATTENTIVE  forward_road"])
        white = (out.min(axis=2) > 200).astype(np.uint8)
        rows = np.flatnonzero(white.any(axis=1))
        return white, rows[-1] - rows[0] + 1

    white, height = text_extent(2160)
    assert height >= 0.01 * 2160, height
    assert cv2.erode(white, np.ones((3, 3), np.uint8)).any(), "1-2 px strokes: unreadable at 4K"
    _, small = text_extent(540)
    assert height >= 3 * small
