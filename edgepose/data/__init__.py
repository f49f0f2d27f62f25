"""Datasets: readers (300W-LP / AFLW2000 .mat, BIWI, folder CSV/JSONL, video), augmentation with
exact label updates, torch datasets and an on-disk crop cache.  See docs/data.md.

Readers and augmentation need only numpy/OpenCV/SciPy; ``PoseDataset``, ``ConcatDataset`` and
``build_dataset`` import torch when first used.
"""
from __future__ import annotations

from .augment import Augment, crop_sample, transform_points
from .biwi import BIWINpzReader, BIWIReader
from .folder import FolderReader
from .mat import AFLW2000Reader, MatReader, W300LPReader, load_mat_label, loose_box
from .registry import FORMATS, build_dataset, build_reader, get_format, list_formats, register_format
from .sample import Reader, Sample, landmark_box, read_image
from .video import VideoReader, iter_video_frames

__all__ = ["Sample", "Reader", "read_image", "landmark_box", "load_mat_label", "loose_box", "MatReader",
           "AFLW2000Reader", "W300LPReader", "BIWIReader", "BIWINpzReader", "FolderReader", "VideoReader",
           "iter_video_frames", "Augment", "crop_sample", "transform_points", "FORMATS", "get_format", "list_formats", "build_reader",
           "build_dataset", "register_format", "PoseDataset", "ConcatDataset", "CropCache"]


def __getattr__(name):  # torch-dependent parts load on first use
    if name in ("PoseDataset", "ConcatDataset"):
        from . import dataset

        return getattr(dataset, name)
    if name == "CropCache":
        from .cache import CropCache

        return CropCache
    raise AttributeError(name)
