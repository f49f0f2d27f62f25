"""On-disk cache of pre-cropped samples for large datasets.

Decoding a 450x450 JPEG to keep a 224x224 crop wastes most of a data-loader worker's time.
:class:`CropCache` stores every sample once as a square uint8 crop taken ``margin`` times
larger than the final crop (so rotation / box jitter still have real pixels to sample), in a
single ``crops.npy`` memmap, plus ``index.json`` with labels, boxes and landmarks in the cached
crop's coordinates.  It is itself a :class:`Reader`, so :class:`PoseDataset` crops from it with
the unchanged :class:`PreprocessSpec` and augmentation (one extra bilinear resampling).

The cache is keyed by the source's description, the crop policy, input size, margin and
format version; any change rebuilds it.  Building writes into a temporary folder that is renamed
into place, so an interrupted build never leaves a half-written cache behind.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..preprocess import CropPolicy, PreprocessSpec, crop_box
from .augment import _full_box, crop_sample, transform_points
from .mat import MatReader, loose_box
from .sample import Reader, Sample, landmark_box

__all__ = ["CropCache", "cache_key"]

log = logging.getLogger(__name__)
VERSION = 2  # 2: entries keep the reader's own Euler label (pyr_deg)


def cache_key(reader: Reader, spec: PreprocessSpec, margin: float) -> str:
    desc = {"version": VERSION, "source": reader.describe(), "crop": spec.crop.to_dict(),
            "input_size": spec.input_size, "gray": spec.color_order == "GRAY", "margin": margin,
            "fill": spec.fill}
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


class CropCache(Reader):
    """Pre-cropped samples (see module docstring).  Use :meth:`open`."""

    name = "cache"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.index = json.loads((self.folder / "index.json").read_text())
        self.key = self.index["key"]
        self._crops = None  # opened lazily per process (memmaps do not pickle well)

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_crops"] = None
        return st

    @classmethod
    def open(cls, reader: Reader, spec: PreprocessSpec, folder: str | Path, margin: float = 1.5,
             progress: bool = True) -> "CropCache":
        """Load the cache in ``folder`` if it matches (reader, spec, margin), else (re)build it."""
        if margin < 1.0:
            raise DataError(f"cache margin must be >= 1 (got {margin}): the cache must contain the final crop")
        folder = Path(folder)
        key = cache_key(reader, spec, margin)
        idx = folder / "index.json"
        if idx.is_file():
            try:
                if json.loads(idx.read_text()).get("key") == key:
                    return cls(folder)
                log.info("crop cache %s is stale (source or preprocessing changed): rebuilding", folder)
            except (OSError, ValueError):
                log.warning("crop cache index %s unreadable: rebuilding", idx)
        cls._build(reader, spec, folder, margin, key, progress)
        return cls(folder)

    @staticmethod
    def _build(reader: Reader, spec: PreprocessSpec, folder: Path, margin: float, key: str, progress: bool):
        from tqdm import tqdm

        size = int(round(spec.input_size * margin))
        cspec = PreprocessSpec(input_size=size, color_order=spec.color_order, fill=spec.fill,
                               crop=CropPolicy(scale=spec.crop.scale * margin, shift_x=spec.crop.shift_x,
                                               shift_y=spec.crop.shift_y))
        train_k = reader.k_range if isinstance(reader, MatReader) and reader.crop == "train" and reader.k is None \
            else None
        gray = spec.color_order == "GRAY"
        shape = (len(reader), size, size) if gray else (len(reader), size, size, 3)
        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            crops = np.lib.format.open_memmap(tmp / "crops.npy", mode="w+", dtype=np.uint8, shape=shape)
            entries = []
            for i in tqdm(range(len(reader)), desc=f"caching crops -> {folder}", disable=not progress):
                s = reader.get(i, np.random.default_rng(0))
                tight = None
                if train_k is not None and s.landmarks is not None:
                    # the random 300W-LP margin is re-drawn at load time: size the cached region
                    # for the largest k, and keep the landmark box to redraw from
                    tight = landmark_box(s.landmarks)
                    s.box = loose_box(tight, train_k[1], "train")
                box = s.box if s.box is not None else _full_box(s.image)
                crop, R, lm = crop_sample(s, cspec, box=box)
                if gray and crop.ndim == 3:
                    import cv2

                    crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
                elif not gray and crop.ndim == 2:
                    crop = np.repeat(crop[..., None], 3, axis=2)
                crops[i] = crop
                corners = transform_points(np.array([box[:2], box[2:4]], float), box, cspec)
                own = s.extra.get("pyr_deg") if s.extra else None
                e = {"source": s.source, "R": None if R is None else np.asarray(R).tolist(),
                     # the caching crop has no rotation or flip, so the reader's triple still holds
                     "pyr_deg": None if own is None else np.asarray(own, dtype=np.float64).tolist(),
                     "box": corners.ravel().tolist(),
                     "landmarks": None if lm is None else np.where(np.isnan(lm), None, lm).tolist()}
                if tight is not None:
                    e["tight"] = transform_points(np.array([tight[:2], tight[2:4]]), box, cspec).ravel().tolist()
                entries.append(e)
            crops.flush()
            del crops
            index = {"key": key, "version": VERSION, "size": size, "margin": margin, "gray": gray,
                     "train_k_range": list(train_k) if train_k is not None else None,
                     "source": reader.describe(), "samples": entries}
            (tmp / "index.json").write_text(json.dumps(index))
            old = folder.with_name(folder.name + f".old-{os.getpid()}")
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def __len__(self) -> int:
        return len(self.index["samples"])

    def get(self, index: int, rng: np.random.Generator | None = None) -> Sample:
        if self._crops is None:
            self._crops = np.load(self.folder / "crops.npy", mmap_mode="r")
        e = self.index["samples"][index]
        box = tuple(e["box"])
        if e.get("tight") and self.index.get("train_k_range"):
            k = float((rng or np.random.default_rng()).uniform(*self.index["train_k_range"]))
            box = loose_box(e["tight"], k, "train")
        lm = None if e["landmarks"] is None else np.array(e["landmarks"], dtype=np.float64)
        extra = {} if e.get("pyr_deg") is None else {"pyr_deg": np.array(e["pyr_deg"])}
        return Sample(image=np.array(self._crops[index]), R=None if e["R"] is None else np.array(e["R"]),
                      box=box, landmarks=lm, source=e["source"], extra=extra)

    def describe(self) -> dict:
        return {"reader": "cache", "key": self.key, "len": len(self)}

    def check_box_inside(self, spec: PreprocessSpec) -> bool:
        """True when every final crop lies inside its cached region (no extra fill pixels)."""
        size = self.index["size"]
        for e in self.index["samples"]:
            cx, cy, side = crop_box(e["box"], spec.crop)
            if cx - side / 2 < -1e-6 or cy - side / 2 < -1e-6 or cx + side / 2 > size + 1e-6 or cy + side / 2 > size + 1e-6:
                return False
        return True
