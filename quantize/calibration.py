"""Calibration data for INT8 PTQ: deployment-style face crops from images or videos.

Faces are found by the deployment detector (:func:`edgepose.data.faces.detect_faces`) and
cropped by the *artifact's own* preprocessing (``meta.preprocess``: crop policy, size, colour
order, normalisation), so calibration ranges come from exactly what the engine will see in the
car (docs/quantization.md, "Calibration": 256-512 in-domain crops, IR/night included).  The crops are cached as
``.npy`` keyed by the face boxes and the preprocessing spec; :func:`write_manifest` records the
file list with sha256 next to the quantized model.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepose.errors import DataError
from edgepose.metadata import atomic_write_bytes, atomic_write_text
from edgepose.preprocess import PreprocessSpec, preprocess

__all__ = ["CalibrationSet", "build_calibration_set", "CropCalibrationReader", "write_manifest", "manifest_path"]

log = logging.getLogger(__name__)


@dataclass
class CalibrationSet:
    crops: np.ndarray  # (N, C, S, S) float32, preprocessed with the model's spec
    manifest: dict = field(default_factory=dict)


def _spec_key(spec: PreprocessSpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def build_calibration_set(sources, spec: PreprocessSpec, settings=None, max_crops: int = 512,
                          cache_dir: str | Path | None = None, seed: int = 0, progress: bool = True) -> CalibrationSet:
    """Detect faces in ``sources`` and crop up to ``max_crops`` of them with ``spec`` (cached)."""
    from edgepose.data.faces import DetectedFaceReader, DetectorSettings, detect_faces

    if max_crops < 1:
        raise DataError(f"max_crops must be >= 1 (got {max_crops})")
    settings = settings or DetectorSettings()
    if cache_dir is None:
        from edgepose.runtime.fetch import cache_dir as _cache

        cache_dir = _cache() / "calibration"
    cache_dir = Path(cache_dir)
    boxes, files = detect_faces(sources, settings, cache_dir=cache_dir, progress=progress)
    if len(boxes) > max_crops:  # an even spread over all files, reproducible
        keep = np.sort(np.random.default_rng(seed).choice(len(boxes), max_crops, replace=False))
        boxes = [boxes[i] for i in keep]
    reader = DetectedFaceReader(boxes, settings)
    key = hashlib.sha256((reader.describe()["boxes_sha256"] + _spec_key(spec)).encode()).hexdigest()[:24]
    manifest = {"files": files, "faces": len(boxes), "detector": settings.key(), "preprocess": spec.to_dict(),
                "max_crops": max_crops, "seed": seed, "cache_key": key}
    npy = cache_dir / f"crops-{key}.npy"
    if npy.is_file():
        crops = np.load(npy)
        if crops.shape[0] == len(boxes):
            log.info("calibration crops from cache %s", npy)
            return CalibrationSet(crops, manifest)
    from tqdm import tqdm

    crops = np.stack([preprocess(s.image, s.box, spec)
                      for s in tqdm(reader, total=len(reader), desc="calibration crops", disable=not progress)])
    crops = crops.astype(np.float32)
    import io

    buf = io.BytesIO()
    np.save(buf, crops)
    atomic_write_bytes(npy, buf.getvalue())
    return CalibrationSet(crops, manifest)


def _reader_base():
    from onnxruntime.quantization import CalibrationDataReader

    return CalibrationDataReader


class CropCalibrationReader(_reader_base()):
    """onnxruntime ``CalibrationDataReader`` over preprocessed crops: ``{input_name: (B, C, S, S)}``."""

    def __init__(self, crops: np.ndarray, input_name: str = "input", batch_size: int = 1):
        crops = np.asarray(crops, np.float32)
        if crops.ndim != 4 or len(crops) == 0:
            raise DataError(f"calibration crops must be a non-empty (N, C, S, S) array, got shape {crops.shape}")
        if batch_size < 1:
            raise DataError(f"calibration batch size must be >= 1 (got {batch_size})")
        self.crops, self.input_name, self.batch_size = crops, input_name, int(batch_size)
        self._pos = 0

    def get_next(self):
        if self._pos >= len(self.crops):
            return None
        batch = self.crops[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return {self.input_name: np.ascontiguousarray(batch)}

    def rewind(self) -> None:
        self._pos = 0

    def __len__(self) -> int:
        return -(-len(self.crops) // self.batch_size)


def manifest_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + ".calib.json")


def write_manifest(model_path: str | Path, manifest: dict) -> Path:
    out = manifest_path(model_path)
    atomic_write_text(out, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def float_head_tensors(graph, excluded: list[str]) -> set[str]:
    """Tensors that live entirely inside the nodes kept in float: written by an excluded node and read
    only by excluded nodes (or a graph output). No quantizer needs their ranges."""
    from .graph import consumers

    excluded_set = set(excluded)
    readers = consumers(graph)
    inside = set()
    for node in graph.node:
        if node.name in excluded_set:
            for t in node.output:
                if t and all(r.name in excluded_set for r in readers.get(t, ())):  # graph outputs too
                    inside.add(t)
    return inside


@contextlib.contextmanager
def calibrate_outside(tensors: set[str]):
    """While ``quantize_static`` runs, keep ONNX Runtime's calibrator off ``tensors``.

    ORT calibrates every float tensor of every quantizable op type, the nodes excluded from quantization
    included. Inside the float head some tensors barely vary (the unit norms of Gram-Schmidt after the
    flip average, a rotation entry near -1 on similar crops), and the histogram methods (percentile,
    entropy) then stop with "Too many bins for data range". Their ranges are never used, so they are
    left out of calibration; every quantized tensor gets exactly the range it got before. ORT offers no
    option for this, so the calibrator's tensor selection is wrapped for the duration of the call."""
    try:
        from onnxruntime.quantization.calibrate import CalibraterBase
    except ImportError:  # pragma: no cover - quantize extra missing; quantize_onnx reports it
        yield
        return
    original = CalibraterBase.select_tensors_to_calibrate

    def select(self, model):
        chosen, value_infos = original(self, model)
        return {t for t in chosen if t not in tensors}, value_infos

    CalibraterBase.select_tensors_to_calibrate = select
    try:
        yield
    finally:
        CalibraterBase.select_tensors_to_calibrate = original
