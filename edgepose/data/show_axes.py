"""Draw the head axes of a pose label on an image, to check the sign conventions by eye.

    python -m edgepose.data.show_axes image00050.jpg --mat image00050.mat -o out.png
    python -m edgepose.data.show_axes face.jpg --pyr 10 30 0 --box 100 80 220 200 -o out.png

Red = head x (the subject's left), green = head y (up), blue = nose direction, all projected
orthographically with :func:`edgepose.geometry.project_points` from the box centre.
"""
from __future__ import annotations

import argparse
import sys

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgepose.data.show_axes", description=__doc__.split("\n\n")[0])
    ap.add_argument("image")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--mat", help="300W-LP / AFLW2000 .mat annotation (Pose_Para + pt2d)")
    src.add_argument("--pyr", nargs=3, type=float, metavar=("PITCH", "YAW", "ROLL"), help="angles in degrees")
    ap.add_argument("--box", nargs=4, type=float, metavar=("X1", "Y1", "X2", "Y2"),
                    help="face box (default: the landmark box from --mat, else the image centre)")
    ap.add_argument("-o", "--output", required=True, help="output image (.png / .jpg)")
    args = ap.parse_args(argv)

    from ..errors import guarded

    def run() -> int:
        from ..metadata import atomic_write_bytes
        from .mat import load_mat_label

        img = read_image(args.image)
        box = args.box
        if args.mat:
            lab = load_mat_label(args.mat)
            R, pyr = lab["R"], lab["pyr_deg"]
            if box is None and lab["landmarks"] is not None:
                box = landmark_box(lab["landmarks"])
        else:
            pyr = np.array(args.pyr)
            R = geometry.euler_to_matrix(pyr)
        h, w = img.shape[:2]
        box = box or (w * 0.25, h * 0.25, w * 0.75, h * 0.75)
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        out = draw_axes(img, R, center, 0.6 * max(box[2] - box[0], box[3] - box[1]),
                        label=f"pitch {pyr[0]:+.1f}  yaw {pyr[1]:+.1f}  roll {pyr[2]:+.1f}")
        ext = "." + args.output.rsplit(".", 1)[-1].lower() if "." in args.output else ""
        ok, buf = cv2.imencode(ext if ext in (".png", ".jpg", ".jpeg") else ".png", out)
        if not ok:
            raise DataError(f"cannot encode {args.output}; use a .png or .jpg name")
        atomic_write_bytes(args.output, buf.tobytes())
        print(f"wrote {args.output}")
        return 0

    return guarded(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
