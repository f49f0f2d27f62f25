"""BIWI Kinect Head Pose readers: raw sequences and FSA-Net-style ``.npz`` files.

Raw layout: ``<root>/<seq>/frame_XXXXX_rgb.png`` + ``frame_XXXXX_pose.txt`` (a 3x3 rotation
block, one row per line, then the head-centre translation in mm, depth-camera frame).  The
rotation converts with :func:`edgepose.geometry.biwi_to_matrix` (R = F R_file^T F, the
FSA-Net / HopeNet decode).

Boxes: BIWI has no face boxes.  Papers crop with their own detector (docs/data.md, "Formats"), so
the reader accepts ``boxes=`` a CSV (``image,x1,y1,x2,y2``; image relative to ``root``), the
recommended way to reproduce a protocol.  Without it, when a sequence has ``rgb.cal``, the
head centre is projected into the RGB image (p_rgb = R_cal p + T_cal, then the RGB
intrinsics) and a square of ``head_size_mm`` is used; otherwise the box is None (whole frame).

FSA-Net ``.npz``: ``image`` (N, H, W, 3) BGR crops, ``pose`` (N, 3) = **[yaw, pitch, roll]**
in degrees; each crop is the whole face box.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from .. import geometry
from ..errors import DataError
from .sample import Reader, Sample, read_image

__all__ = ["read_biwi_pose", "read_biwi_cal", "BIWIReader", "BIWINpzReader"]

_FRAME = re.compile(r"frame_(\d+)_rgb\.png$")


def _numbers(path: Path) -> list[list[float]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append([float(v) for v in line.split()])
            except ValueError:
                raise DataError(f"{path}:{n}: expected numbers, got {line.strip()!r}") from None
    return rows


def read_biwi_pose(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``frame_XXXXX_pose.txt`` -> (R_file 3x3, translation (3,) in mm)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"BIWI pose file not found: {p}")
    rows = _numbers(p)
    if len(rows) < 4 or any(len(r) != 3 for r in rows[:4]):
        raise DataError(f"{p}: expected a 3x3 rotation block and a translation line (3 numbers each)")
    R_file = np.array(rows[:3], dtype=np.float64)
    if not geometry.is_rotation(R_file, atol=1e-3):
        raise DataError(f"{p}: the 3x3 block is not a rotation matrix")
    return R_file, np.array(rows[3], dtype=np.float64)


def read_biwi_cal(path: str | Path) -> dict:
    """``rgb.cal`` -> {"K": 3x3, "R": 3x3, "T": (3,)} (intrinsics, distortion line, R, T)."""
    rows = _numbers(Path(path))
    if len(rows) < 8:
        raise DataError(f"{path}: expected intrinsics (3 lines), distortion, R (3 lines) and T")
    return {"K": np.array(rows[0:3], float), "R": np.array(rows[4:7], float), "T": np.array(rows[7], float)}


class BIWIReader(Reader):
    """Raw BIWI sequences under ``root`` (optionally only ``sequences``)."""

    name = "biwi"

    def __init__(self, root: str | Path, sequences: list[str] | None = None, boxes: str | Path | None = None,
                 head_size_mm: float = 220.0, gray: str = "keep", filter99: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"BIWI folder not found: {root}")
        self.root, self.gray, self.head_size_mm = root, gray, float(head_size_mm)
        seqs = sorted(d for d in root.iterdir() if d.is_dir())
        if sequences is not None:
            wanted = {str(s) for s in sequences}
            missing = wanted - {d.name for d in seqs}
            if missing:
                raise DataError(f"BIWI sequences not found under {root}: {sorted(missing)}")
            seqs = [d for d in seqs if d.name in wanted]
        box_table = self._read_boxes(Path(boxes)) if boxes else None
        self.items: list[tuple[Path, np.ndarray, tuple | None]] = []
        for seq in seqs:
            cal = read_biwi_cal(seq / "rgb.cal") if (seq / "rgb.cal").is_file() else None
            for img in sorted(seq.iterdir()):
                m = _FRAME.search(img.name)
                if not m:
                    continue
                pose = img.with_name(f"frame_{m.group(1)}_pose.txt")
                if not pose.is_file():
                    continue  # BIWI has frames without a pose; they are not labelled samples
                R_file, t = read_biwi_pose(pose)
                R = geometry.biwi_to_matrix(R_file)
                if filter99 and np.any(np.abs(geometry.matrix_to_euler(R)) > 99.0):
                    continue
                rel = img.relative_to(root).as_posix()
                if box_table is not None:
                    box = box_table.get(rel)
                    if box is None:
                        continue  # frames the detector missed are skipped, as in the protocols
                else:
                    box = self._project_box(cal, t) if cal is not None else None
                self.items.append((img, R, box))
        if not self.items:
            raise DataError(f"no labelled BIWI frames under {root}: expected <seq>/frame_XXXXX_rgb.png "
                            "with frame_XXXXX_pose.txt next to it")
        self.boxes = str(boxes) if boxes else None

    @staticmethod
    def _read_boxes(path: Path) -> dict:
        if not path.is_file():
            raise DataError(f"BIWI boxes file not found: {path}")
        out = {}
        with path.open(newline="") as fh:
            rd = csv.DictReader(fh)
            need = {"image", "x1", "y1", "x2", "y2"}
            if not rd.fieldnames or not need <= set(rd.fieldnames):
                raise DataError(f"{path}: header must contain {sorted(need)}, got {rd.fieldnames}")
            for n, row in enumerate(rd, 2):
                try:
                    out[row["image"]] = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
                except (TypeError, ValueError):
                    raise DataError(f"{path}:{n}: box values must be numbers") from None
        return out

    def _project_box(self, cal: dict, t_mm: np.ndarray):
        p = cal["R"] @ t_mm + cal["T"]
        if p[2] <= 0:
            return None
        uvw = cal["K"] @ p
        u, v = uvw[0] / uvw[2], uvw[1] / uvw[2]
        half = 0.5 * cal["K"][0, 0] * self.head_size_mm / p[2]
        return (u - half, v - half, u + half, v + half)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, index: int, rng=None) -> Sample:
        img, R, box = self.items[index]
        return Sample(image=read_image(img, self.gray), R=R.copy(), box=box, landmarks=None,
                      source=f"biwi:{img.parent.name}/{img.stem}")

    def describe(self) -> dict:
        return {"reader": "biwi", "root": str(self.root), "boxes": self.boxes, "len": len(self),
                "head_size_mm": self.head_size_mm, "gray": self.gray}


class BIWINpzReader(Reader):
    """FSA-Net-style ``.npz``: ``image`` BGR (N, H, W, 3), ``pose`` [yaw, pitch, roll] degrees."""

    name = "biwi_npz"

    def __init__(self, path: str | Path, filter99: bool = False):
        p = Path(path)
        if not p.is_file():
            raise DataError(f"npz file not found: {p}")
        try:
            with np.load(p) as z:
                keys = set(z.files)
                if not {"image", "pose"} <= keys:
                    raise DataError(f"{p}: needs arrays 'image' and 'pose' (FSA-Net layout), found {sorted(keys)}")
                images, pose = z["image"], np.asarray(z["pose"], dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {p} as .npz: {exc}") from None
        if images.ndim not in (3, 4) or pose.ndim != 2 or pose.shape[1] != 3 or len(images) != len(pose):
            raise DataError(f"{p}: expected image (N,H,W[,3]) and pose (N,3), got {images.shape} and {pose.shape}")
        pyr = pose[:, [1, 0, 2]]  # the file stores [yaw, pitch, roll]
        keep = np.ones(len(pose), bool) if not filter99 else np.all(np.abs(pyr) <= 99.0, axis=1)
        self.path, self.images, self.pyr = p, images[keep], pyr[keep]
        self.index = np.nonzero(keep)[0]
        if len(self.images) == 0:
            raise DataError(f"{p}: no samples" + (" after the +-99 deg filter" if filter99 else ""))
        self.R = geometry.euler_to_matrix(self.pyr)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, index: int, rng=None) -> Sample:
        img = np.ascontiguousarray(self.images[index]).astype(np.uint8, copy=False)
        h, w = img.shape[:2]
        return Sample(image=img, R=self.R[index].copy(), box=(0.0, 0.0, float(w), float(h)), landmarks=None,
                      source=f"biwi_npz:{self.path.stem}:{int(self.index[index])}",
                      extra={"pyr_deg": self.pyr[index].copy()})

    def describe(self) -> dict:
        st = self.path.stat()
        return {"reader": "biwi_npz", "path": str(self.path), "size": st.st_size, "mtime": st.st_mtime_ns,
                "len": len(self)}
