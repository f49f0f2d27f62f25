"""``edgepose export CKPT -o model.onnx``: ONNX with in-graph pose decode, parity check and sidecar."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..errors import DataError, UserError

HELP = "export a checkpoint to ONNX with a metadata sidecar"
DESCRIPTION = (HELP + ". The graph takes 'input' (N,C,S,S) float32 preprocessed as the checkpoint's metadata says "
               "and returns 'rotation' (N,3,3) and 'euler' (N,3: pitch, yaw, roll in degrees). onnxruntime is "
               "checked against PyTorch before the file is written; the max difference goes into the sidecar.")

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="edgepose checkpoint (.pt) from `edgepose train` / `edgepose import`")
    p.add_argument("-o", "--output", required=True, help="output .onnx path (the sidecar is <output>.json)")
    p.add_argument("--input-size", type=int, default=None, help="square input size (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=18,
                   help="ONNX opset: 18 (default, dynamo exporter; TensorRT 10 OK) or 17 (legacy exporter)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--dynamic-batch", dest="dynamic_batch", action="store_true", default=True,
                       help="dynamic batch axis 1..--max-batch (default)")
    batch.add_argument("--static-batch", dest="dynamic_batch", action="store_false", help="fixed batch of 1")
    p.add_argument("--max-batch", type=int, default=32, help="upper bound of the dynamic batch axis (default 32)")
    simp = p.add_mutually_exclusive_group()
    simp.add_argument("--simplify", dest="simplify", action="store_true", default=True,
                      help="simplify the graph with onnxslim (default)")
    simp.add_argument("--no-simplify", dest="simplify", action="store_false", help="keep the exporter's graph")
    p.add_argument("--check-images", nargs="+", default=None, metavar="IMG_OR_DIR",
                   help="real images for the parity check (the whole image is used as the face box)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |R_torch - R_onnx| accepted (default 1e-4)")
    tta = p.add_mutually_exclusive_group()
    tta.add_argument("--flip-tta", dest="flip_tta", action="store_true", default=None,
                     help="test-time flip in the graph: R is the mean of the crop's and its mirror image's "
                          "prediction (twice the backbone work; default: as the checkpoint's metadata says)")
    tta.add_argument("--no-flip-tta", dest="flip_tta", action="store_false", help="no test-time flip")


def _image_files(items: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(f for f in path.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"--check-images: {path} does not exist")
    if not files:
        raise DataError(f"--check-images: no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) in {' '.join(items)}")
    return files


def real_batch(items: list[str], checkpoint: str, input_size: int | None):
    """Preprocess images exactly as the checkpoint's metadata says (whole image = box)."""
    import cv2
    import numpy as np

    from ..metadata import ArtifactMetadata
    from ..models.pose_model import read_checkpoint
    from ..preprocess import normalize

    spec = ArtifactMetadata.from_dict(read_checkpoint(checkpoint)["edgepose_metadata"]).preprocess
    if input_size:
        spec.input_size = int(input_size)
    out = []
    for f in _image_files(items)[:32]:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"--check-images: cannot decode {f}")
        crop = cv2.resize(img, (spec.input_size, spec.input_size), interpolation=cv2.INTER_AREA)
        out.append(normalize(crop, spec))
    return np.stack(out)


def _command_line(args: argparse.Namespace) -> str:
    """The equivalent command line (recorded in the sidecar's provenance)."""
    parts = ["edgepose", "export", args.checkpoint, "-o", args.output, "--opset", str(args.opset)]
    if args.input_size:
        parts += ["--input-size", str(args.input_size)]
    parts += ["--max-batch", str(args.max_batch)] if args.dynamic_batch else ["--static-batch"]
    if not args.simplify:
        parts.append("--no-simplify")
    if args.check_images:
        parts += ["--check-images", *args.check_images]
    if args.flip_tta is not None:
        parts.append("--flip-tta" if args.flip_tta else "--no-flip-tta")
    return " ".join(shlex.quote(str(p)) for p in parts)


def run(args: argparse.Namespace) -> int:
    from ..export import export_onnx

    if not Path(args.checkpoint).is_file():
        raise UserError(f"checkpoint not found: {args.checkpoint}")
    from ..io_safety import check_outputs, with_sidecars

    check_outputs([("checkpoint", args.checkpoint), *(("--check-images", p) for p in args.check_images or [])],
                  with_sidecars([("-o", args.output)]))
    real = real_batch(args.check_images, args.checkpoint, args.input_size) if args.check_images else None
    command = _command_line(args)
    report = export_onnx(args.checkpoint, args.output, input_size=args.input_size, opset=args.opset,
                         dynamic_batch=args.dynamic_batch, max_batch=args.max_batch, simplify=args.simplify,
                         real_inputs=real, tolerance=args.tolerance, command=command, flip_tta=args.flip_tta)
    print(report.summary())
    return 0
