"""A team's own data: a folder of images plus a CSV or JSON Lines label file.

Columns / keys (one row per face):

* ``image`` -- path relative to the label file's folder (or ``root``);
* the pose, either ``yaw``, ``pitch``, ``roll`` in **degrees** (edgepose signs: +yaw nose to
  image-left, +pitch up, +roll clockwise on screen) **or** ``R`` -- 9 numbers, row-major, in
  the edgepose convention (CSV: one cell with 9 numbers separated by spaces or ``;``, or nine
  columns ``r00`` ... ``r22``; JSONL: a flat list of 9 or a 3x3 nested list);
* optional box ``x1, y1, x2, y2`` in image pixels (missing -> the whole image).

Euler columns are also kept as the sample's own label (``Sample.extra["pyr_deg"]``) whenever
they describe the row's R, so |yaw| > 90 (full-range data) reaches the training targets intact.

Rows without any pose columns are loaded as unlabelled (``R = None``) only when
``labelled=False``.  Grayscale / IR images stay GRAY (``gray="keep"``) or are replicated to BGR
(``gray="bgr"``).  Every problem names the file, the line and the column.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .. import geometry
from ..errors import DataError
from .sample import Reader, Sample, read_image

__all__ = ["FolderReader", "parse_label_row", "row_euler"]

_RCOLS = [f"r{i}{j}" for i in range(3) for j in range(3)]
_BOX = ("x1", "y1", "x2", "y2")


def _num(v, where: str, col: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise DataError(f"{where}: column '{col}' must be a number, got {v!r}") from None
    if not np.isfinite(x):
        raise DataError(f"{where}: column '{col}' is not finite ({v!r})")
    return x


def parse_label_row(row: dict, where: str, labelled: bool = True) -> tuple[str, np.ndarray | None, tuple | None]:
    """One CSV/JSONL record -> (image path, R or None, box or None)."""
    img = row.get("image")
    if img in (None, ""):
        raise DataError(f"{where}: missing column 'image' (the image path)")
    R = None
    has_euler = any(row.get(k) not in (None, "") for k in ("yaw", "pitch", "roll"))
    if row.get("R") not in (None, ""):
        v = row["R"]
        if isinstance(v, str):
            v = v.replace(";", " ").replace(",", " ").split()
        try:
            m = np.asarray(v, dtype=np.float64).reshape(3, 3)
        except (TypeError, ValueError):
            raise DataError(f"{where}: column 'R' must hold 9 numbers (row-major 3x3), got {row['R']!r}") from None
        R = m
    elif all(row.get(c) not in (None, "") for c in _RCOLS):
        R = np.array([_num(row[c], where, c) for c in _RCOLS]).reshape(3, 3)
    elif has_euler:
        missing = [k for k in ("pitch", "yaw", "roll") if row.get(k) in (None, "")]
        if missing:
            raise DataError(f"{where}: pose given as Euler angles but column(s) {missing} are empty")
        R = geometry.euler_to_matrix([_num(row[k], where, k) for k in ("pitch", "yaw", "roll")])
    elif labelled:
        raise DataError(f"{where}: no pose: give 'yaw','pitch','roll' (degrees) or 'R' (9 numbers); "
                        "set labelled: false for unlabelled data")
    if R is not None and not geometry.is_rotation(R, atol=1e-3):
        raise DataError(f"{where}: 'R' is not a rotation matrix (orthonormal, det +1)")
    box = None
    given = [row.get(k) not in (None, "") for k in _BOX]
    if any(given):
        if not all(given):
            raise DataError(f"{where}: a box needs all of x1,y1,x2,y2 (some are empty)")
        box = tuple(_num(row[k], where, k) for k in _BOX)
        if not (box[2] > box[0] and box[3] > box[1]):
            raise DataError(f"{where}: empty box {box}: x2 must exceed x1 and y2 must exceed y1")
    return str(img), R, box


def row_euler(row: dict, R: np.ndarray | None) -> np.ndarray | None:
    """The row's own (pitch, yaw, roll) degrees when all three columns are given and decompose
    ``R`` (the label), else None; an 'R' that overrides inconsistent Euler columns wins."""
    if R is None or any(row.get(k) in (None, "") for k in ("pitch", "yaw", "roll")):
        return None
    try:
        pyr = np.array([float(row[k]) for k in ("pitch", "yaw", "roll")])
    except (TypeError, ValueError):
        return None
    if not np.all(np.isfinite(pyr)) or not geometry.euler_describes(pyr, R):
        return None
    return pyr


class FolderReader(Reader):
    """Images + a ``.csv`` or ``.jsonl`` label file."""

    name = "folder"

    def __init__(self, labels: str | Path, root: str | Path | None = None, gray: str = "keep",
                 labelled: bool = True, check_files: bool = True):
        lp = Path(labels)
        if not lp.is_file():
            raise DataError(f"label file not found: {lp}")
        if gray not in ("keep", "bgr"):
            raise DataError(f"gray must be 'keep' or 'bgr', got {gray!r}")
        self.labels, self.root, self.gray = lp, Path(root) if root else lp.parent, gray
        rows = self._rows(lp)
        self.items: list[tuple[Path, np.ndarray | None, tuple | None]] = []
        self.pyr: list[np.ndarray | None] = []  # the rows' own Euler labels (see row_euler)
        for where, row in rows:
            img, R, box = parse_label_row(row, where, labelled)
            path = Path(img) if Path(img).is_absolute() else self.root / img
            if check_files and not path.is_file():
                raise DataError(f"{where}: image {path} not found (paths are relative to {self.root})")
            self.items.append((path, R, box))
            self.pyr.append(row_euler(row, R))
        if not self.items:
            raise DataError(f"{lp}: the label file has no rows: empty dataset")

    @staticmethod
    def _rows(lp: Path) -> list[tuple[str, dict]]:
        suffix = lp.suffix.lower()
        out = []
        if suffix == ".csv":
            with lp.open(newline="") as fh:
                rd = csv.DictReader(fh)
                if not rd.fieldnames or "image" not in [f.strip() for f in rd.fieldnames]:
                    raise DataError(f"{lp}: the CSV header must contain an 'image' column, got {rd.fieldnames}")
                for n, row in enumerate(rd, 2):
                    out.append((f"{lp}:{n}", {(k or "").strip(): (v.strip() if isinstance(v, str) else v)
                                               for k, v in row.items()}))
        elif suffix in (".jsonl", ".ndjson"):
            for n, line in enumerate(lp.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{lp}:{n}: invalid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{lp}:{n}: each line must be a JSON object")
                out.append((f"{lp}:{n}", row))
        else:
            raise DataError(f"{lp}: unknown label format {suffix!r}; use .csv or .jsonl")
        return out

    def __len__(self) -> int:
        return len(self.items)

    def get(self, index: int, rng=None) -> Sample:
        path, R, box = self.items[index]
        pyr = self.pyr[index]
        return Sample(image=read_image(path, self.gray), R=None if R is None else R.copy(), box=box,
                      source=f"folder:{path.relative_to(self.root) if path.is_relative_to(self.root) else path}",
                      extra={} if pyr is None else {"pyr_deg": pyr.copy()})

    def describe(self) -> dict:
        st = self.labels.stat()
        return {"reader": "folder", "labels": str(self.labels), "size": st.st_size, "mtime": st.st_mtime_ns,
                "root": str(self.root), "gray": self.gray, "len": len(self)}
