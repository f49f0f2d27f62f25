"""Drawing on video frames: face boxes, 3D head axes, angles, FPS and status lines.

The head axes are the rows of R (head x / y / z in camera coordinates) projected with
:func:`edgepose.geometry.project_points`, so what is drawn follows the project's single rotation
convention: red = head x (towards the subject's left, i.e. image-right for a frontal face),
green = head y (up), blue = head z (out of the face, towards the camera for a frontal face).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

from .geometry import project_points
from .preprocess import to_bgr

__all__ = ["draw_axes", "draw_face", "draw_text_lines", "draw_frame_result", "AXIS_COLORS"]

AXIS_COLORS = ((0, 0, 255), (0, 200, 0), (255, 80, 0))  # BGR: x red, y green, z blue
DRIVER_COLOR = (0, 220, 255)
FACE_COLOR = (60, 220, 60)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_axes(img: np.ndarray, R, center: tuple[float, float], length: float, thickness: int = 2) -> np.ndarray:
    """Draw the head's x/y/z axes from ``center`` (pixels); ``length`` = axis length in pixels."""
    R = np.asarray(R, dtype=np.float64)
    if not np.all(np.isfinite(R)):
        return img  # an invalid pose is reported in the metadata, not drawn
    tips = project_points(R, np.eye(3), center=center, scale=length)
    c = (int(round(center[0])), int(round(center[1])))
    # draw the axis pointing away from the viewer first so the nearer ones stay on top
    order = np.argsort(-R[:, 2]) if R.shape == (3, 3) else range(3)
    for i in order:
        tip = (int(round(tips[i][0])), int(round(tips[i][1])))
        cv2.line(img, c, tip, AXIS_COLORS[i], thickness, cv2.LINE_AA)
    return img


def _text(img, text: str, org: tuple[int, int], scale: float, color, thickness: int | None = None) -> None:
    # strokes grow with the glyphs: a 1 px Hershey stroke is unreadable on a 4K frame
    thickness = thickness or max(1, int(round(1.5 * scale)))
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = org
    cv2.rectangle(img, (x - 2, y - h - 3), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y), _FONT, scale, color, thickness, cv2.LINE_AA)


def draw_face(img: np.ndarray, face, scale: float = 1.0) -> np.ndarray:
    """Box, axes at the box centre and ``#id yaw/pitch/roll`` above the box."""
    x1, y1, x2, y2 = (float(v) for v in face.box[:4])
    driver = bool(getattr(face, "is_driver", False))
    color = DRIVER_COLOR if driver else FACE_COLOR
    t = max(1, int(round(2 * scale)))
    cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), color, t)
    length = 0.6 * max(x2 - x1, y2 - y1)
    draw_axes(img, face.R, ((x1 + x2) / 2, (y1 + y2) / 2), length, t)
    pitch, yaw, roll = (float(v) for v in face.euler)
    tid = getattr(face, "track_id", None)
    label = f"{'#' + str(tid) + ' ' if tid is not None and tid >= 0 else ''}" \
            f"y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}" + (" driver" if driver else "")
    _text(img, label, (int(x1), max(12, int(y1) - 4)), 0.45 * scale, color)
    return img


def draw_text_lines(img: np.ndarray, lines: Iterable[str], origin: tuple[int, int] = (8, 20),
                    scale: float = 0.5, color=(255, 255, 255)) -> np.ndarray:
    """Status lines, one under the other, from ``origin`` (top-left)."""
    x, y = origin
    step = int(22 * scale / 0.5)
    for line in lines:
        _text(img, str(line), (x, y), scale, color)
        y += step
    return img


def draw_frame_result(frame: np.ndarray, result, fps: float | None = None,
                      status_lines: Sequence[str] = ()) -> np.ndarray:
    """Annotated BGR copy-or-in-place image for a FrameResult.

    BGR frames are drawn on in place (the pipeline owns its copy); GRAY8 frames are converted
    to BGR first so the overlay can use colour.
    """
    img = to_bgr(frame)
    if not img.flags.writeable:
        img = img.copy()
    # everything scales with the frame height (540 p = 1): text stays legible from VGA to 4K and beyond
    scale = max(0.6, img.shape[0] / 540.0)
    for face in getattr(result, "faces", []) or []:
        draw_face(img, face, scale)
    lines = []
    if fps is not None:
        lines.append(f"{fps:5.1f} FPS  faces: {len(getattr(result, 'faces', []) or [])}")
    lines.extend(status_lines)
    draw_text_lines(img, lines, (8, int(20 * scale)), 0.5 * scale)
    return img
