"""Engine cache and timing cache layout.

Engines are not portable across GPU models or TensorRT versions (docs/jetson.md, "Build engines"), so the cache
key covers everything that changes the plan:

    sha256(ONNX bytes) + TensorRT version + device (GPU name + SM, or the DLA core)
    + precision + profile shapes (min/opt/max) + builder options (workspace, optimisation
    level, GPU fallback) + the FP16 conversion route

Layout under the cache dir (``--cache-dir``, default ``$EDGEPOSE_CACHE/trt``)::

    engines/<model-stem>.<precision>.<key>.plan    (+ .plan.json sidecar)
    timing/<device-slug>.trt<version>.timing       (one timing cache per device and TRT version)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .options import BuildOptions, ProfileShapes

__all__ = ["DeviceId", "EngineKey", "default_cache_dir", "engine_path", "timing_cache_path", "slug"]

KEY_SCHEMA = 1  # bump when the key recipe changes, so old plans are never reused wrongly


@dataclass(frozen=True)
class DeviceId:
    """The GPU a plan is built for: name + compute capability ("8.7" on Orin)."""

    name: str
    sm: str

    def slug(self) -> str:
        return slug(f"{self.name}-sm{self.sm}")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    trt_version: str
    device: DeviceId
    options: BuildOptions
    profile: ProfileShapes
    fp16_route: str = "none"  # "builder-flag" (TRT 10) | "onnx" (TRT 11) | "none"

    def components(self) -> dict:
        """Everything that goes into the key, as plain JSON-able data (also stored in the sidecar)."""
        o = self.options
        return {
            "schema": KEY_SCHEMA,
            "onnx_sha256": self.onnx_sha256,
            "trt_version": self.trt_version,
            "device": {"name": self.device.name, "sm": self.device.sm,
                       "target": o.device_kind},
            "precision": o.precision,
            "profile": self.profile.as_dict(),
            "builder": {"batch": [o.min_batch, o.opt_batch, o.max_batch],
                        "workspace_mb": o.workspace_mb, "opt_level": o.opt_level,
                        "gpu_fallback": o.gpu_fallback, "dla_core": o.dla_core,
                        "fp16_route": self.fp16_route},
        }

    def digest(self) -> str:
        blob = json.dumps(self.components(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:24]


def default_cache_dir() -> Path:
    """``$EDGEPOSE_CACHE/trt`` > ``$XDG_CACHE_HOME/edgepose/trt`` > ``~/.cache/edgepose/trt``."""
    env = os.environ.get("EDGEPOSE_CACHE")
    if env:
        return Path(env) / "trt"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgepose" / "trt"


def engine_path(cache_dir: Path, onnx_path: Path, key: EngineKey) -> Path:
    stem = slug(Path(onnx_path).stem)
    return Path(cache_dir) / "engines" / f"{stem}.{key.options.precision}.{key.options.device_kind}.{key.digest()}.plan"


def timing_cache_path(cache_dir: Path, device: DeviceId, trt_version: str) -> Path:
    return Path(cache_dir) / "timing" / f"{device.slug()}.trt{slug(trt_version)}.timing"
