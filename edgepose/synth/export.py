"""Export a synthetic dataset to the folder + CSV format that :class:`edgepose.data.FolderReader` reads.

Layout::

    OUT/images/000000.png ...   BGR (colour scenes) or single-channel GRAY (NIR scenes), lossless
    OUT/labels.csv              one row per image, see COLUMNS
    OUT/synth.json              the generator settings, conventions and row count

Safety: every image is written to a temporary name and renamed; a CSV row is appended (and
flushed) only after its image exists, into ``labels.csv.partial``, which becomes ``labels.csv``
at the end -- also on Ctrl-C or an error, so the images already rendered stay usable.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import geometry
from ..errors import UserError
from .dataset import SynthConfig, SynthHeadDataset
from .mesh import KEYPOINT_NAMES

__all__ = ["export_dataset", "COLUMNS"]

log = logging.getLogger(__name__)

_R = [f"r{i}{j}" for i in range(3) for j in range(3)]
#: CSV columns: pose in degrees (edgepose signs) + the exact matrix (the reader prefers r00..r22),
#: face box, key points (x, y, visible) in KEYPOINT_NAMES order, intrinsics, scene facts.
COLUMNS = (["image", "pitch", "yaw", "roll"] + _R + ["x1", "y1", "x2", "y2"]
           + [f"{k}_{c}" for k in KEYPOINT_NAMES for c in ("x", "y", "v")]
           + ["fx", "fy", "cx", "cy", "identity", "ir", "split"])


def _write_image(path: Path, img: np.ndarray) -> None:
    import cv2

    tmp = path.with_name(path.name + ".tmp" + path.suffix)
    if not cv2.imwrite(str(tmp), img):
        raise UserError(f"cannot write {tmp}: check the output folder's permissions and free space")
    os.replace(tmp, path)


def export_dataset(out: str | Path, n: int, seed: int = 0, config: SynthConfig | None = None,
                   image_format: str = "png", overwrite: bool = False, progress: bool = True) -> Path:
    """Render ``n`` images into ``out`` and write ``labels.csv``; returns the CSV path."""
    fmt = image_format.lower().lstrip(".")
    if fmt not in ("png", "jpg", "bmp"):
        raise UserError(f"image format {image_format!r} not supported; use png (lossless), jpg or bmp")
    out = Path(out)
    labels = out / "labels.csv"
    if labels.exists() and not overwrite:
        raise UserError(f"{labels} already exists; choose another --out folder or pass --overwrite")
    ds = SynthHeadDataset(n, seed=seed, config=config)
    (out / "images").mkdir(parents=True, exist_ok=True)
    meta = {"generator": "edgepose.synth", "n": n, "seed": seed, "config": asdict(ds.cfg),
            "label": "R (r00..r22, pitch/yaw/roll) = pose relative to the viewing ray through the face-box centre "
                     "(geometry.perspective_correction(R, K, box centre) gives the camera-axes pose); edgepose "
                     "convention R = Rz(roll) Ry(yaw) Rx(pitch)",
            "keypoints": list(KEYPOINT_NAMES), "columns": COLUMNS}
    (out / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    partial = out / "labels.csv.partial"
    done = 0
    try:
        from tqdm import tqdm

        with partial.open("w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(COLUMNS)
            for i in tqdm(range(n), desc="synth export", unit="img", disable=not progress):
                res = ds.render(i)
                name = f"images/{i:06d}.{fmt}"
                _write_image(out / name, res.image)
                pyr = geometry.matrix_to_euler(res.R_crop)
                kp = [v for k in range(len(KEYPOINT_NAMES)) for v in
                      (f"{res.keypoints[k, 0]:.3f}", f"{res.keypoints[k, 1]:.3f}", int(res.visible[k]))]
                wr.writerow([name] + [f"{v:.6f}" for v in pyr] + [f"{v:.9f}" for v in res.R_crop.ravel()]
                            + [f"{v:.3f}" for v in res.box] + kp
                            + [f"{res.K[0, 0]:.4f}", f"{res.K[1, 1]:.4f}", f"{res.K[0, 2]:.4f}", f"{res.K[1, 2]:.4f}"]
                            + [res.identity_seed, int(res.scene.ir), ds.cfg.split])
                fh.flush()
                done += 1
    finally:
        if done or n == 0:
            os.replace(partial, labels)
            log.info("wrote %d of %d images + %s", done, n, labels)
        elif partial.exists():
            partial.unlink()
    return labels
