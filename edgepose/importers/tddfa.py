"""3DDFA_V2 (Guo et al., ECCV 2020; ``cleardusk/3DDFA_V2``, MIT) as an edgepose teacher.

The released ``mb05_120x120.pth`` is a MobileNetV1 x0.5 that regresses 62 normalised 3DMM
parameters; the import keeps everything upstream does up to the camera matrix:

* **network**: ``conv1 ... dw6`` -> :func:`edgepose.models.backbones.mobilenet_v1.mobilenet_v1_050`
  (same key names, ``module.`` stripped); ``fc_param`` -> ``head.fc`` (upstream copies it into
  ``fc`` at load time); ``fc_lm`` (a landmark regressor the 120 px model does not use) is dropped;
* **de-normalisation**: ``param = out * std + mean`` with ``param_mean_std_62d_120x120`` (the
  upstream pickle, as ``.npz`` with arrays ``mean`` / ``std``), kept as head buffers;
* **pose**: the first 12 parameters are a 3 x 4 weak-perspective camera; its left 3 x 3 is
  scale x a rotation that maps model points into the camera frame (x right, y up, z towards the
  viewer), i.e. our R transposed (docs/conventions.md).  R = (polar factor)^T, computed in the
  graph (``head="3dmm"``).  3DDFA's own Euler decoder (``matrix2angle``) is not used: read in
  another axis order it is several degrees off in roll;
* **input**: BGR, ``(x - 127.5) / 128``, 120 x 120, from a square box.  Upstream squares a
  FaceBoxes box (side 1.58 x its mean side, centre moved down by 0.14 of it); with the YuNet
  boxes edgepose deploys, ``CropPolicy(scale=TDDFA_CROP_SCALE)`` was chosen on the fixtures
  (docs/importers.md has the figures).
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..errors import ModelError, UserError
from ..metadata import file_sha256
from ..preprocess import CropPolicy, PreprocessSpec
from .base import Importer, register_importer

__all__ = ["TDDFAImporter", "TDDFA_PREPROCESS", "TDDFA_CROP_SCALE", "TDDFA_STATS", "tddfa_cache_path"]

log = logging.getLogger(__name__)

TDDFA_STATS = "param_mean_std_62d_120x120.npz"
TDDFA_WEIGHTS = "mb05_120x120.pth"
#: detector-box crop scale for YuNet boxes (docs/importers.md: measured over 1.2 / 1.4 / 1.6)
TDDFA_CROP_SCALE = 1.6
TDDFA_PREPROCESS = PreprocessSpec(input_size=120, color_order="BGR", mean=(127.5 / 255,) * 3, std=(128 / 255,) * 3,
                                  crop=CropPolicy(scale=TDDFA_CROP_SCALE, box_source="detector"))


def tddfa_cache_path() -> Path:
    from ..runtime.fetch import cache_dir

    return cache_dir() / "teachers" / "3ddfa_v2" / TDDFA_WEIGHTS


def _read_stats(path: Path):
    import numpy as np

    try:
        with np.load(path) as z:
            mean, std = np.asarray(z["mean"], np.float32).reshape(-1), np.asarray(z["std"], np.float32).reshape(-1)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{path}: not a 3DDFA_V2 parameter table ({exc}); expected an .npz with arrays "
                         f"'mean' and 'std' of 62 numbers") from None
    if mean.shape != (62,) or std.shape != (62,):
        raise ModelError(f"{path}: mean/std have shapes {mean.shape} / {std.shape}, expected (62,) each")
    return mean, std


@register_importer
class TDDFAImporter(Importer):
    name = "3ddfa-v2"
    description = "3DDFA_V2 mb05_120x120 (MobileNetV1 x0.5, 62 3DMM parameters; pose from the camera matrix)"
    suffixes = (".pth", ".pt", ".tar")
    license = "MIT (code); weights trained on 300W-LP: non-commercial research data"
    upstream = "https://github.com/cleardusk/3DDFA_V2"

    def cache_path(self) -> Path:
        return tddfa_cache_path()

    def _stats_beside(self, path: Path, stats) -> Path:
        stats = Path(stats) if stats else path.with_name(TDDFA_STATS)
        if not stats.is_file():
            raise ModelError(f"3ddfa-v2: parameter table not found: {stats}; put upstream's {TDDFA_STATS} "
                             f"(the configs/ pickle converted to mean/std arrays) beside {path.name}")
        return stats

    def install(self, path: str | os.PathLike) -> Path:
        path = self.check_path(path)
        stats = self._stats_beside(path, None)
        self.load(path)  # refuse to cache a file that does not import
        dest = tddfa_cache_path()
        dest.parent.mkdir(parents=True, exist_ok=True)
        for src, dst in ((path, dest), (stats, dest.with_name(TDDFA_STATS))):
            if src.resolve() != dst.resolve():
                shutil.copyfile(src, dst)
        return dest

    def load(self, path: str | os.PathLike, param_stats: str | os.PathLike | None = None, **options):
        """mb05_120x120.pth (+ the parameter table beside it, or ``param_stats``) -> PoseModel("mobilenet_v1_050", "3dmm")."""
        import torch

        from ..models.pose_model import PoseModel
        from .torch_state import load_strict, read_state_dict, rename_keys

        if options:
            raise UserError(f"3ddfa-v2 importer: unknown options {', '.join(options)} (known: param_stats)")
        path = self.check_path(path)
        stats = self._stats_beside(path, param_stats)
        mean, std = _read_stats(stats)
        sd = rename_keys(read_state_dict(path), [(r"^fc_param\.", "head.fc."), (r"^(?!head\.)", "backbone.")],
                         drop=[r"^fc_lm\.", r"^fc\."])
        model = PoseModel.build("mobilenet_v1_050", head="3dmm",
                                preprocess=PreprocessSpec.from_dict(TDDFA_PREPROCESS.to_dict()))
        sd["head.param_mean"], sd["head.param_std"] = torch.from_numpy(mean), torch.from_numpy(std)
        load_strict(model, sd, f"3DDFA_V2 MobileNetV1 x0.5 from {path.name}")
        model.provenance = {"imported_from": {
            "teacher": self.name, "file": path.name, "sha256": file_sha256(path), "param_stats": stats.name,
            "param_stats_sha256": file_sha256(stats), "format": "torch-state-dict", "upstream": self.upstream,
            "license": self.license}}
        log.info("imported 3DDFA_V2 from %s (+ %s)", path, stats.name)
        return model.eval()
