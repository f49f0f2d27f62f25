"""The default head-pose model that ships inside the package (``edgepose/assets/models``).

    from edgepose.defaults import default_pose_model
    default_pose_model()                   # FP32 ONNX (what `edgepose run` uses on the CPU; see below)
    default_pose_model("int8-cpu")         # INT8 for ONNX Runtime CPU (U8S8)
    default_pose_model("int8-tensorrt")    # INT8 Q/DQ (S8S8) for `edgepose engine build` on Jetson

Provenance, licenses and measured accuracy: docs/models.md.  Rebuild:
``edgepose models build --config configs/default-model/build.yaml --install``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelError

__all__ = ["PROFILES", "DEFAULT_PROFILE", "MODELS_DIR", "default_pose_model", "default_models_manifest"]

MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"
PROFILES = {"int8-cpu": "edgepose-default-int8-cpu.onnx", "fp32": "edgepose-default-fp32.onnx",
            "int8-tensorrt": "edgepose-default-int8-tensorrt.onnx"}
# FP32, not INT8, by measurement: on AVX2 CPUs without VNNI this small MobileNetV3 runs 0.67-0.78x
# as fast in ORT's U8S8 INT8 as in FP32 (hard-swish / squeeze-excite leave many Q/DQ hops), at the
# same accuracy (docs/models.md, "Speed").  The INT8 files still ship: the cpu profile pays on larger
# students (2.2x on ResNet-18, docs/results/compression.md) and the tensorrt profile feeds engines.
DEFAULT_PROFILE = "fp32"
_ALIASES = {"cpu": "int8-cpu", "int8": "int8-cpu", "tensorrt": "int8-tensorrt", "trt": "int8-tensorrt",
            "float32": "fp32"}


def default_pose_model(profile: str = DEFAULT_PROFILE) -> Path:
    """Path of the shipped default pose model for ``profile`` (``int8-cpu`` | ``fp32`` | ``int8-tensorrt``).

    The ONNX file's sidecar (``<file>.json``) holds its preprocessing; every runtime reads it.
    """
    key = _ALIASES.get(profile.lower(), profile.lower()) if isinstance(profile, str) else profile
    if key not in PROFILES:
        raise ModelError(f"unknown default-model profile {profile!r}; choose one of {', '.join(PROFILES)}")
    path = MODELS_DIR / PROFILES[key]
    if not path.is_file() or not Path(str(path) + ".json").is_file():
        raise ModelError(f"the default model {path.name} (or its .json sidecar) is missing from {MODELS_DIR}; "
                         f"reinstall edgepose, or rebuild it with `edgepose models build --install` "
                         f"(docs/models.md), or pass --model PATH")
    return path


def default_models_manifest() -> dict:
    """``edgepose/assets/models/manifest.json``: per profile file, sha256, bytes; provenance of the build."""
    path = MODELS_DIR / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the default-model manifest {path} ({exc}); reinstall edgepose") from None
