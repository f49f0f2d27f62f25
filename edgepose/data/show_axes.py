"""Draw the head axes of a pose label on an image, to check the sign conventions by eye.

    python tools/show_axes.py image00050.jpg --mat image00050.mat -o out.png
    python tools/show_axes.py face.jpg --pyr 10 30 0 --box 100 80 220 200 -o out.png

Red = head x (the subject's left), green = head y (up), blue = nose direction, all projected
orthographically with :func:`edgepose.geometry.project_points` from the box centre.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import geometry
from ..errors import DataError
from .sample import landmark_box, read_image

AXES_BGR = ((0, 0, 255), (0, 200, 0), (255, 80, 0))  # x red, y green, z blue


def draw_axes(image: np.ndarray, R: np.ndarray, center, length: float, thickness: int = 3,
              label: str | None = None) -> np.ndarray:
    """Return a BGR copy of ``image`` with the three head axes of ``R`` drawn from ``center``."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    ends = geometry.project_points(R, np.eye(3), center=center, scale=length)
    c = tuple(int(round(v)) for v in center)
    for end, colour in zip(ends, AXES_BGR):
        cv2.arrowedLine(out, c, tuple(int(round(v)) for v in end), colour, thickness, cv2.LINE_AA, tipLength=0.15)
    if label:
        cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def write_axes_image(image_path: str, output: str, mat: str | None = None, pyr=None, box=None) -> None:
    """Draw the label of ``mat`` (a 300W-LP / AFLW2000 .mat) or the angles ``pyr`` (degrees) on the image
    at ``image_path`` and write it to ``output`` (.png / .jpg).  ``box``: the face box (default: the
    landmark box from ``mat``, else the image centre)."""
    from ..metadata import atomic_write_bytes
    from .mat import load_mat_label

    img = read_image(image_path)
    if mat:
        lab = load_mat_label(mat)
        R, pyr = lab["R"], lab["pyr_deg"]
        if box is None and lab["landmarks"] is not None:
            box = landmark_box(lab["landmarks"])
    else:
        pyr = np.array(pyr)
        R = geometry.euler_to_matrix(pyr)
    h, w = img.shape[:2]
    box = box or (w * 0.25, h * 0.25, w * 0.75, h * 0.75)
    center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    out = draw_axes(img, R, center, 0.6 * max(box[2] - box[0], box[3] - box[1]),
                    label=f"pitch {pyr[0]:+.1f}  yaw {pyr[1]:+.1f}  roll {pyr[2]:+.1f}")
    ext = "." + output.rsplit(".", 1)[-1].lower() if "." in output else ""
    ok, buf = cv2.imencode(ext if ext in (".png", ".jpg", ".jpeg") else ".png", out)
    if not ok:
        raise DataError(f"cannot encode {output}; use a .png or .jpg name")
    atomic_write_bytes(output, buf.tobytes())
