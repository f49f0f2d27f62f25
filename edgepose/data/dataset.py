"""``PoseDataset``: readers -> network-ready tensors (torch ``Dataset``).

Each item is ``{"image": (C, S, S) float32, "R": (3, 3) float32, "euler": (3,) float32
(pitch, yaw, roll) degrees, "labelled": bool, "weight": float32 (``Sample.extra["weight"]``, default 1:
e.g. how far a teacher ensemble agreed on a pseudo-label), "source": str}``.  Unlabelled samples (video
frames) carry NaN in ``R`` and ``euler``.  ``R`` is the label; ``euler`` always decomposes it
(``euler_to_matrix(euler) == R``) and follows the reader's own triple when it has one
(``Sample.extra["pyr_deg"]``: 300W-LP/AFLW2000 ``Pose_Para``, BIWI npz, folder Euler columns), so
|yaw| > 90 survives flips and rotations (:func:`edgepose.data.augment.euler_label`); decoding R
alone would fold yaw into [-90, 90].  Cropping and normalisation come from
:mod:`edgepose.preprocess`; augmentation from :mod:`edgepose.data.augment`.

Random numbers: each process owns one generator seeded from ``torch.initial_seed()``, which the
DataLoader sets differently for every worker and every epoch, so workers never repeat each
other's augmentations.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from ..preprocess import PreprocessSpec, normalize
from .augment import Augment, GeometryParams, crop_sample, euler_label
from .sample import Reader, Sample

__all__ = ["PoseDataset", "ConcatDataset"]

_NAN_R = np.full((3, 3), np.nan, np.float32)


class PoseDataset(Dataset):
    """``PoseDataset(source, spec, augment=None)``; ``source`` is a :class:`Reader` or a list of
    :class:`Sample`."""

    def __init__(self, source: Reader | Sequence[Sample], spec: PreprocessSpec, augment: Augment | None = None):
        if len(source) == 0:
            from ..errors import DataError

            raise DataError("empty dataset: the source has no samples")
        self.source, self.spec, self.augment = source, spec, augment
        self._rng: tuple[int, int, np.random.Generator] | None = None

    def __len__(self) -> int:
        return len(self.source)

    def rng(self) -> np.random.Generator:
        seed = torch.initial_seed()
        if self._rng is None or self._rng[0] != os.getpid() or self._rng[1] != seed:
            self._rng = (os.getpid(), seed, np.random.default_rng(seed % (2 ** 63)))
        return self._rng[2]

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray | None, Sample]:
        """The uint8 crop, its label and the raw sample (for visual checks)."""
        crop, R, s, _ = self._draw(index)
        return crop, R, s

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, Sample, GeometryParams]:
        """Like :meth:`sample`, plus the geometry applied (the Euler label has to follow it)."""
        rng = self.rng()
        s = self.source.get(index, rng) if isinstance(self.source, Reader) else self.source[index]
        if self.augment is not None:
            crop, R, _, geo = self.augment(s, self.spec, rng)
        else:
            crop, R, _ = crop_sample(s, self.spec)
            geo = GeometryParams()
        return crop, R, s, geo

    def __getitem__(self, index: int) -> dict:
        crop, R, s, geo = self._draw(index)
        x = normalize(crop, self.spec)
        if R is None:
            Rf, euler, labelled = _NAN_R, np.full(3, np.nan, np.float32), False
        else:
            euler = euler_label(s, R, geo.angle_deg, geo.flip).astype(np.float32)
            Rf, labelled = np.asarray(R, np.float32), True
        return {"image": torch.from_numpy(x), "R": torch.from_numpy(np.ascontiguousarray(Rf)),
                "euler": torch.from_numpy(euler), "labelled": labelled,
                "weight": torch.tensor(float(s.extra.get("weight", 1.0)), dtype=torch.float32), "source": s.source}
