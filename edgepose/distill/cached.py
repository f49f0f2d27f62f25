"""Teacher labels computed once, student trained under exact geometric augmentation.

Running a 224 px teacher next to every 112 px student step costs several times the student's own
forward/backward on a CPU.  ``data.teacher_labels: cached`` instead labels every face ONCE (on the
un-augmented box, with flip test-time augmentation: the chordal mean of T(x) and
flip_label(T(flip(x))), which removes the teacher's left/right bias), and then trains the student on
crops augmented with a box jitter, an in-plane rotation and a horizontal flip whose label changes
are exact (:mod:`edgepose.data.augment`: rotate_label then flip_label; a box jitter leaves the
orthographic pose unchanged), plus photometric changes that never touch the label.

Only the rotation losses (``geodesic``, ``gt``) are available in this mode: bin distributions and
features of the teacher are not transformable under rotation.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from edgepose import geometry
from edgepose.data.augment import Augment
from edgepose.data.sample import Reader
from edgepose.preprocess import PreprocessSpec, crop_image, normalize, preprocess

__all__ = ["teacher_labels", "AugmentedDistillDataset", "collate_cached"]

log = logging.getLogger(__name__)


@torch.no_grad()
def teacher_labels(teacher, readers: Sequence[Reader], batch_size: int = 32, flip_tta: bool = True,
                   progress: bool = True) -> np.ndarray:
    """(N, 3, 3) float64 teacher rotations for every sample of ``readers`` (in order)."""
    from tqdm import tqdm

    from .teacher import flip_tta_rotation

    samples = [(r, i) for r in readers for i in range(len(r))]
    out = np.empty((len(samples), 3, 3), np.float64)
    for start in tqdm(range(0, len(samples), batch_size), desc="teacher labels", disable=not progress):
        chunk = [r.get(i) for r, i in samples[start:start + batch_size]]
        boxes = [s.box if s.box is not None else (0, 0, s.image.shape[1], s.image.shape[0]) for s in chunk]
        x = [torch.from_numpy(np.stack([preprocess(s.image, b, spec) for s, b in zip(chunk, boxes)]))
             for spec in teacher.specs]
        if flip_tta:
            xf = [torch.from_numpy(np.stack([normalize(crop_image(s.image, b, spec, flip=True), spec)
                                             for s, b in zip(chunk, boxes)])) for spec in teacher.specs]
            R = flip_tta_rotation(teacher, x, xf)
        else:
            R = teacher(x)["R"].double()
        out[start:start + len(chunk)] = R.numpy()
    return out


class AugmentedDistillDataset(Dataset):
    """Items: ``{"student": (C,S,S), "R_t": teacher R', "R": ground truth R' (or I), "has_gt"}``.

    The teacher label and the ground truth go through the same exact geometric transform as the crop.
    """

    def __init__(self, readers: Sequence[Reader], labels: np.ndarray, spec: PreprocessSpec, augment: Augment,
                 seed: int = 0):
        self.readers = list(readers)
        self.offsets = np.cumsum([0] + [len(r) for r in self.readers])
        if len(labels) != self.offsets[-1]:
            raise ValueError(f"{len(labels)} teacher labels for {self.offsets[-1]} samples")
        self.labels, self.spec, self.augment, self.seed = labels, spec, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict:
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        s = self.readers[k].get(int(index - self.offsets[k]), rng)
        gt = s.R
        crop, R_t, _, g = self.augment(dataclasses.replace(s, R=self.labels[index], landmarks=None), self.spec, rng)
        if gt is not None:  # the same transform, in the same order as crop_sample applies it
            gt = geometry.rotate_label(gt, g.angle_deg) if g.angle_deg else np.asarray(gt, np.float64)
            gt = geometry.flip_label(gt) if g.flip else gt
        return {"student": torch.from_numpy(normalize(crop, self.spec)),
                "R_t": torch.from_numpy(np.asarray(R_t, np.float32)),
                "R": torch.from_numpy(np.asarray(gt if gt is not None else np.eye(3), np.float32)),
                "has_gt": gt is not None}


def collate_cached(items: list[dict]) -> dict:
    return {"student": torch.stack([i["student"] for i in items]),
            "R_t": torch.stack([i["R_t"] for i in items]),
            "R": torch.stack([i["R"] for i in items]),
            "has_gt": torch.tensor([i["has_gt"] for i in items])}
