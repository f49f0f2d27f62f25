"""Paired crops for distillation: the teacher(s) and the student see the SAME jittered face box,
each through its own :class:`~edgepose.preprocess.PreprocessSpec`.

Unlabelled images / videos are run through the deployment detector
(:func:`edgepose.data.faces.detect_faces`) and cached as margin crops with
:class:`edgepose.data.CropCache`; labelled sets (``{format: aflw2000, root: ...}``) add their
ground truth for the optional GT loss.  Box jitter (scale / shift) imitates detector noise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from edgepose.data.augment import jitter_box
from edgepose.data.sample import Reader
from edgepose.preprocess import CropPolicy, PreprocessSpec, preprocess

__all__ = ["PairedCropDataset", "cache_spec"]


def cache_spec(specs: Sequence[PreprocessSpec]) -> PreprocessSpec:
    """A spec whose crop contains every member's crop (largest scale and size) for the crop cache."""
    scale = max(s.crop.scale for s in specs)
    return PreprocessSpec(input_size=max(s.input_size for s in specs), color_order="BGR",
                          crop=CropPolicy(scale=scale, shift_x=specs[0].crop.shift_x, shift_y=specs[0].crop.shift_y))


class PairedCropDataset(Dataset):
    """Items: ``{"student": (C,S,S), "teacher": [(C,St,St), ...], "R": (3,3), "has_gt": bool}``."""

    def __init__(self, readers: Sequence[Reader], student_spec: PreprocessSpec, teacher_specs: Sequence[PreprocessSpec],
                 jitter_scale: float = 0.0, jitter_shift: float = 0.0, seed: int = 0):
        self.readers = list(readers)
        self.offsets = np.cumsum([0] + [len(r) for r in self.readers])
        self.student_spec, self.teacher_specs = student_spec, list(teacher_specs)
        self.jitter_scale, self.jitter_shift = float(jitter_scale), float(jitter_shift)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict:
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        s = self.readers[k].get(int(index - self.offsets[k]), rng)
        box = s.box if s.box is not None else (0, 0, s.image.shape[1], s.image.shape[0])
        if self.jitter_scale > 0 or self.jitter_shift > 0:
            box = jitter_box(box[:4], self.jitter_scale, self.jitter_shift, rng)
        item = {"student": torch.from_numpy(preprocess(s.image, box, self.student_spec)),
                "teacher": [torch.from_numpy(preprocess(s.image, box, t)) for t in self.teacher_specs],
                "R": torch.from_numpy(np.asarray(s.R if s.R is not None else np.eye(3), np.float32)),
                "has_gt": s.R is not None}
        return item


def collate(items: list[dict]) -> dict:
    return {"student": torch.stack([i["student"] for i in items]),
            "teacher": [torch.stack([i["teacher"][m] for i in items]) for m in range(len(items[0]["teacher"]))],
            "R": torch.stack([i["R"] for i in items]),
            "has_gt": torch.tensor([i["has_gt"] for i in items])}


def unlabelled_reader(sources, settings, spec: PreprocessSpec, cache_dir: Path, progress: bool = True):
    """Detector faces of ``sources`` -> a CropCache (margin crops) Reader + the manifest."""
    from edgepose.data.cache import CropCache
    from edgepose.data.faces import DetectedFaceReader, detect_faces

    boxes, manifest = detect_faces(sources, settings, cache_dir=cache_dir, progress=progress)
    reader = DetectedFaceReader(boxes, settings)
    key = reader.describe()["boxes_sha256"][:16]
    return CropCache.open(reader, spec, cache_dir / f"crops-{key}", margin=1.6, progress=progress), manifest
