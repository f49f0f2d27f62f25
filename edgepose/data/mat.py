"""300W-LP and AFLW2000-3D readers (``.jpg`` + ``.mat`` with ``Pose_Para`` and ``pt2d``).

Labels: ``Pose_Para[0:3]`` = (pitch, yaw, roll) in **radians**, read exactly as HopeNet,
6DRepNet and FSA-Net read them; ``R = geometry.euler_to_matrix``.  ``pt2d`` is 2xN (row 0 = x);
AFLW marks a missing landmark with x = -1 and a filler y, so those points become NaN.

Boxes (docs/data.md "Formats", the HopeNet/6DRepNet code, updates applied *in order*, each
using the current box):

* ``crop="test"``  -- k = 0.2: x_min -= 2k|w|, y_min -= 2k|h|, x_max += 2k|w'|, y_max += 0.6k|h'|
  (w', h' the already-enlarged width/height), the AFLW2000 evaluation crop;
* ``crop="train"`` -- k ~ U(0.2, 0.4): x_min -= 0.6k|w|, y_min -= 2k|h|, x_max += 0.6k|w'|,
  y_max += 0.6k|h'|, the 300W-LP training crop (a new k for every access);
* ``crop="landmarks"`` -- the tight landmark box (use with a CropPolicy scale > 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import geometry
from ..errors import DataError
from .sample import Reader, Sample, landmark_box, read_image, valid_landmarks

__all__ = ["load_mat_label", "loose_box", "MatReader", "AFLW2000Reader", "W300LPReader", "CROPS"]

CROPS = ("test", "train", "landmarks")


def load_mat_label(path: str | Path) -> dict:
    """Read one annotation: {"pyr_deg": (3,), "R": 3x3, "landmarks": Nx2 (NaN = missing)}."""
    import scipy.io

    p = Path(path)
    if not p.is_file():
        raise DataError(f"annotation not found: {p}; every image needs a .mat with the same stem")
    try:
        m = scipy.io.loadmat(str(p))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DataError(f"cannot read {p} as a MATLAB .mat file: {exc}") from None
    if "Pose_Para" not in m:
        raise DataError(f"{p} has no 'Pose_Para' key: not a 300W-LP / AFLW2000 annotation")
    pose = np.asarray(m["Pose_Para"], dtype=np.float64).ravel()
    if pose.size < 3:
        raise DataError(f"{p}: Pose_Para has {pose.size} values, expected at least 3 (pitch, yaw, roll)")
    pyr = np.degrees(pose[:3])
    lm = None
    if "pt2d" in m:
        pt = np.asarray(m["pt2d"], dtype=np.float64)
        if pt.ndim != 2 or 2 not in pt.shape:
            raise DataError(f"{p}: pt2d has shape {pt.shape}, expected 2xN")
        lm = pt.T if pt.shape[0] == 2 else pt
        lm = lm.copy()
        lm[~valid_landmarks(lm)] = np.nan
    return {"pyr_deg": pyr, "R": geometry.euler_to_matrix(pyr), "landmarks": lm}


def loose_box(box, k: float, mode: str) -> tuple[float, float, float, float]:
    """The HopeNet/6DRepNet loose crop around a landmark box, updates in code order."""
    x_min, y_min, x_max, y_max = (float(v) for v in box)
    if mode == "test":
        x_min -= 2 * k * abs(x_max - x_min)
        y_min -= 2 * k * abs(y_max - y_min)
        x_max += 2 * k * abs(x_max - x_min)
        y_max += 0.6 * k * abs(y_max - y_min)
    elif mode == "train":
        x_min -= 0.6 * k * abs(x_max - x_min)
        y_min -= 2 * k * abs(y_max - y_min)
        x_max += 0.6 * k * abs(x_max - x_min)
        y_max += 0.6 * k * abs(y_max - y_min)
    else:
        raise ValueError(f"loose_box mode must be 'test' or 'train', got {mode!r}")
    return x_min, y_min, x_max, y_max


class MatReader(Reader):
    """Image + ``.mat`` pairs.  ``items``: list of image paths (the .mat shares the stem)."""

    name = "mat"

    def __init__(self, items: list[Path], crop: str = "test", filter99: bool = True, k: float | None = None,
                 k_range: tuple[float, float] = (0.2, 0.4), gray: str = "keep", prefix: str = "mat"):
        if crop not in CROPS:
            raise DataError(f"crop must be one of {CROPS}, got {crop!r}")
        self.crop, self.k, self.k_range, self.gray, self.prefix = crop, k, tuple(k_range), gray, prefix
        self.filter99 = filter99
        self.items: list[tuple[Path, dict]] = []
        dropped = 0
        for img in items:
            lab = load_mat_label(img.with_suffix(".mat"))
            # the standard protocol: keep a sample only if all three angles lie in [-99, 99] deg
            if filter99 and np.any(np.abs(lab["pyr_deg"]) > 99.0):
                dropped += 1
                continue
            self.items.append((img, lab))
        self.dropped = dropped
        if not self.items:
            raise DataError(f"{prefix}: no samples left ({len(items)} found, {dropped} removed by the "
                            "+-99 deg filter); check the root folder or set filter99: false")

    def __len__(self) -> int:
        return len(self.items)

    def box_for(self, lab: dict, rng: np.random.Generator | None = None):
        lm = lab["landmarks"]
        if lm is None:
            return None
        tight = landmark_box(lm)
        if self.crop == "landmarks":
            return tight
        if self.crop == "test":
            return loose_box(tight, 0.2 if self.k is None else self.k, "test")
        k = self.k if self.k is not None else float((rng or np.random.default_rng()).uniform(*self.k_range))
        return loose_box(tight, k, "train")

    def get(self, index: int, rng: np.random.Generator | None = None) -> Sample:
        img, lab = self.items[index]
        return Sample(image=read_image(img, self.gray), R=lab["R"].copy(), box=self.box_for(lab, rng),
                      landmarks=None if lab["landmarks"] is None else lab["landmarks"].copy(),
                      source=f"{self.prefix}:{img.stem}", extra={"pyr_deg": lab["pyr_deg"].copy()})

    def describe(self) -> dict:
        return {"reader": self.prefix, "crop": self.crop, "k": self.k, "k_range": list(self.k_range),
                "filter99": self.filter99, "gray": self.gray,
                "files": [str(p) for p, _ in self.items[:3]], "len": len(self)}


def _images_in(root: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png"}
    return sorted(p for p in root.iterdir() if p.suffix.lower() in exts and p.with_suffix(".mat").is_file())


class AFLW2000Reader(MatReader):
    """A folder of ``imageNNNNN.jpg`` + ``.mat`` (the AFLW2000-3D layout); test crop by default."""

    name = "aflw2000"

    def __init__(self, root: str | Path, crop: str = "test", filter99: bool = True, **kw):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"AFLW2000 folder not found: {root}")
        items = _images_in(root)
        if not items:
            raise DataError(f"no .jpg/.png + .mat pairs in {root}: expected the AFLW2000-3D layout")
        super().__init__(items, crop=crop, filter99=filter99, prefix="aflw2000", **kw)


class W300LPReader(MatReader):
    """300W-LP: a file list (one relative path per line, with or without extension, the
    6DRepNet ``files.txt`` layout) under ``root``, or every image+.mat pair found under ``root``
    when ``file_list`` is None.  Training crop by default."""

    name = "300wlp"

    def __init__(self, root: str | Path, file_list: str | Path | None = None, crop: str = "train",
                 filter99: bool = True, **kw):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"300W-LP root folder not found: {root}")
        if file_list is None:
            items = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                           and p.with_suffix(".mat").is_file())
        else:
            fl = Path(file_list)
            fl = fl if fl.is_absolute() or fl.is_file() else root / fl
            if not fl.is_file():
                raise DataError(f"300W-LP file list not found: {fl}")
            items = []
            for n, line in enumerate(fl.read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                p = root / line
                if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                    p = p.with_name(p.name + ".jpg")
                if not p.is_file():
                    raise DataError(f"{fl}:{n}: image {p} not found (paths are relative to {root})")
                items.append(p)
        if not items:
            raise DataError(f"no 300W-LP samples under {root}" + (f" in {file_list}" if file_list else ""))
        super().__init__(items, crop=crop, filter99=filter99, prefix="300wlp", **kw)
