"""Scene parameters (camera, lighting, NIR look, background, sensor) and pose sampling.

Camera convention (the label convention depends on it, see docs/synth.md): a pinhole camera at
the origin looking down -z of edgepose's camera frame (x right, y up, z toward the viewer).
The head's pivot (skull centre) sits at ``head_offset + (0, 0, -distance)``.  For renders in
crop-pose mode without ``head_offset`` (datasets), the renderer shifts the head sideways so the
crop centre of the face box lies on the optical axis (see :mod:`edgepose.synth.renderer`).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import geometry
from ..errors import UserError
from .background import BACKGROUNDS

__all__ = ["CameraParams", "LightParams", "SceneParams", "POSE_RANGES", "sample_pose", "parse_pose_range"]

#: Named pose ranges: (pitch, yaw, roll) half-open intervals in degrees, or "so3" (uniform).
POSE_RANGES: dict[str, object] = {
    "frontal": ((-30, 30), (-45, 45), (-20, 20)),
    "driver": ((-40, 30), (-80, 80), (-25, 25)),
    "wide": ((-60, 60), (-99, 99), (-45, 45)),   # about the 300W-LP span
    "full": "so3",                                # any rotation, back of head and upside-down included
}


@dataclass
class CameraParams:
    """Pinhole intrinsics and head placement.  ``fill`` = head height (chin to crown) as a
    fraction of the image height; the distance follows from it and the focal length."""

    fov_deg: float = 50.0          # horizontal field of view
    fill: float = 0.55
    pp_offset: tuple = (0.0, 0.0)  # principal point offset, fraction of width/height
    head_offset: tuple = (0.0, 0.0, 0.0)  # metres, camera frame; (0,0,0) = on the optical axis


@dataclass
class LightParams:
    """Directional key light (sun / studio), ambient fill, and a hard-edged shadow band (a window
    frame or pillar shadow crossing the face)."""

    direction: tuple = (0.3, 0.5, 1.0)  # toward the light, camera frame
    color: tuple = (1.0, 0.97, 0.92)
    intensity: float = 0.9
    ambient: tuple = (0.35, 0.35, 0.37)
    shadow_band: tuple = (0.0, 0.0, 0.0, 0.0)  # (angle rad, offset m, half-width m, strength 0..1)
    exposure: float = 1.0


@dataclass
class SceneParams:
    """Everything around the head for one render."""

    camera: CameraParams = field(default_factory=CameraParams)
    light: LightParams = field(default_factory=LightParams)
    ir: bool = False               # NIR look: illuminator at the camera, grayscale output
    ir_bright_pupil: bool = False  # coaxial illuminator: retro-reflecting (bright) pupils
    ir_offset: tuple = (0.03, -0.02, 0.0)  # illuminator position relative to the camera (m)
    background: str = "plain"
    background_seed: int = 0
    noise_sigma: float = 0.0       # sensor noise (grey levels)
    blur_sigma: float = 0.0        # optical blur (pixels)
    noise_seed: int = 0

    def __post_init__(self):
        if isinstance(self.camera, dict):
            self.camera = CameraParams(**self.camera)
        if isinstance(self.light, dict):
            self.light = LightParams(**self.light)
        if self.background not in BACKGROUNDS:
            raise UserError(f"unknown background {self.background!r}; choose one of {', '.join(BACKGROUNDS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def sample(cls, rng: np.random.Generator, ir_fraction: float = 0.3, sun_fraction: float = 0.3,
               backgrounds=BACKGROUNDS, fov=(30.0, 80.0), fill=(0.45, 0.75), pp_jitter: float = 0.05,
               blur: float = 0.6) -> "SceneParams":
        """A random scene: ``ir_fraction`` of scenes are NIR, ``sun_fraction`` of the colour ones
        get harsh sun (strong key light, low ambient, hard shadow band)."""
        u = rng.uniform
        cam = CameraParams(fov_deg=u(*fov), fill=u(*fill),
                           pp_offset=(u(-pp_jitter, pp_jitter), u(-pp_jitter, pp_jitter)))
        ir = bool(u() < ir_fraction)
        d = rng.normal(size=3)
        d[2] = abs(d[2]) + 0.3  # lit from the camera's side of the head
        sun = (not ir) and u() < sun_fraction
        if sun:
            band = (u(0, np.pi), u(-0.06, 0.06), u(0.01, 0.05), u(0.6, 0.9))
            light = LightParams(direction=tuple(d), color=tuple(rng.uniform(0.9, 1.0, 3)), intensity=u(1.4, 2.2),
                                ambient=tuple([u(0.08, 0.2)] * 3), shadow_band=band if u() < 0.7 else (0, 0, 0, 0),
                                exposure=u(0.9, 1.3))
        else:
            light = LightParams(direction=tuple(d), color=tuple(rng.uniform(0.8, 1.0, 3)), intensity=u(0.5, 1.1),
                                ambient=tuple(rng.uniform(0.25, 0.5) * rng.uniform(0.85, 1.0, 3)),
                                exposure=u(0.8, 1.2))
        if ir:
            light.intensity *= u(0.0, 0.4)  # some daylight leaks through the NIR filter
        return cls(camera=cam, light=light, ir=ir, ir_bright_pupil=bool(u() < 0.3),
                   ir_offset=(u(-0.05, 0.05), u(-0.05, 0.05), 0.0),
                   background=str(rng.choice(list(backgrounds))), background_seed=int(rng.integers(2 ** 31)),
                   noise_sigma=u(0.0, 8.0 if ir else 4.0), blur_sigma=u(0.0, blur),
                   noise_seed=int(rng.integers(2 ** 31)))


def parse_pose_range(spec) -> object:
    """A named range (``frontal``, ``driver``, ``wide``, ``full``) or
    ``"pitch=-30:30,yaw=-90:90,roll=-20:20"`` -> ranges or ``"so3"``."""
    if isinstance(spec, (tuple, list)):
        return tuple(tuple(float(v) for v in r) for r in spec)
    s = str(spec).strip()
    if s in POSE_RANGES:
        return POSE_RANGES[s]
    out = {"pitch": (0.0, 0.0), "yaw": (0.0, 0.0), "roll": (0.0, 0.0)}
    for part in filter(None, s.split(",")):
        m = re.fullmatch(r"\s*(pitch|yaw|roll)\s*=\s*(-?[\d.]+)\s*:\s*(-?[\d.]+)\s*", part)
        if not m or float(m.group(2)) > float(m.group(3)):
            raise UserError(f"bad pose range {spec!r}: use one of {', '.join(POSE_RANGES)} or "
                            "'pitch=-30:30,yaw=-90:90,roll=-20:20' (degrees, low:high)")
        out[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return (out["pitch"], out["yaw"], out["roll"])


def sample_pose(rng: np.random.Generator, pose_range="frontal") -> np.ndarray:
    """A rotation R (edgepose convention) from ``pose_range`` (see :func:`parse_pose_range`)."""
    r = parse_pose_range(pose_range)
    if r == "so3":
        return geometry.random_rotations(1, rng)[0]
    pyr = [rng.uniform(lo, hi) if hi > lo else lo for lo, hi in r]
    return geometry.euler_to_matrix(pyr)
