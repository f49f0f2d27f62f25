"""Draw the head axes of a pose label on an image, to check the sign conventions by eye (developer tool).

    python tools/show_axes.py image00050.jpg --mat image00050.mat -o out.png
    python tools/show_axes.py face.jpg --pyr 10 30 0 --box 100 80 220 200 -o out.png

Red = head x (the subject's left), green = head y (up), blue = nose direction
(:func:`edgepose.data.show_axes.write_axes_image`).  Needs edgepose installed (``pip install -e .``).
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from edgepose.data.show_axes import write_axes_image
    from edgepose.errors import guarded

    ap = argparse.ArgumentParser(prog="tools/show_axes.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("image")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--mat", help="300W-LP / AFLW2000 .mat annotation (Pose_Para + pt2d)")
    src.add_argument("--pyr", nargs=3, type=float, metavar=("PITCH", "YAW", "ROLL"), help="angles in degrees")
    ap.add_argument("--box", nargs=4, type=float, metavar=("X1", "Y1", "X2", "Y2"),
                    help="face box (default: the landmark box from --mat, else the image centre)")
    ap.add_argument("-o", "--output", required=True, help="output image (.png / .jpg)")
    args = ap.parse_args(argv)

    def run() -> int:
        write_axes_image(args.image, args.output, mat=args.mat, pyr=args.pyr, box=args.box)
        print(f"wrote {args.output}")
        return 0

    return guarded(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
