"""A synthetic person: the seeded parameter set that :mod:`edgepose.synth.mesh` turns into a head.

An identity is fully determined by its integer ``seed`` (``HeadIdentity.from_seed(seed)``), so
datasets store seeds, never meshes.  Train and test identities come from disjoint seed ranges
(:func:`identity_seeds`), so no synthetic person appears in both splits.

Lengths are in metres in the head frame of :mod:`edgepose.geometry` (x = subject's left, y up,
z out of the face), origin at the skull centre, which is also the rotation pivot.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["HeadIdentity", "identity_seeds", "SPLIT_RANGES", "HAIR_STYLES"]

#: Disjoint identity-seed ranges per split (half-open).  Never change them: published
#: synthetic splits depend on them.
SPLIT_RANGES: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000),
    "val": (1_000_000, 1_100_000),
    "test": (1_100_000, 1_200_000),
}

HAIR_STYLES = ("bald", "buzz", "short", "medium", "long", "bun")

# Skin albedo anchors (linear-ish RGB), light to dark; an identity interpolates between two.
_SKIN = np.array([[0.96, 0.80, 0.69], [0.90, 0.70, 0.56], [0.78, 0.57, 0.42],
                  [0.62, 0.42, 0.29], [0.45, 0.29, 0.19], [0.30, 0.19, 0.12]])
_HAIR = np.array([[0.05, 0.04, 0.03], [0.20, 0.12, 0.06], [0.42, 0.27, 0.13], [0.75, 0.60, 0.35],
                  [0.55, 0.22, 0.08], [0.65, 0.65, 0.65], [0.92, 0.92, 0.90]])
_IRIS = np.array([[0.25, 0.14, 0.06], [0.40, 0.25, 0.10], [0.20, 0.40, 0.60], [0.30, 0.45, 0.30],
                  [0.45, 0.50, 0.55], [0.10, 0.07, 0.05]])


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> tuple[float, float, float]:
    i = rng.integers(len(palette) - 1)
    c = palette[i] + rng.uniform() * (palette[i + 1] - palette[i])
    c = np.clip(c + rng.normal(0, jitter, 3), 0.0, 1.0)
    return tuple(float(v) for v in c)


@dataclass
class HeadIdentity:
    """Shape, appearance and accessories of one synthetic person (all plain floats / strings)."""

    seed: int = 0
    # skull: ellipsoid half-axes (m) and deformations
    half_width: float = 0.074
    half_height: float = 0.105
    half_depth: float = 0.097
    jaw_taper: float = 0.25     # narrowing of the lower face (0 = none)
    chin_forward: float = 0.08  # forward push of the lower face (fraction of half_depth)
    occiput: float = 0.05       # flattening of the back of the head
    brow_ridge: float = 0.004   # m, radial bump above the eyes
    cheekbones: float = 0.004
    chin_bump: float = 0.005
    # feature placement: azimuth / elevation (degrees) on the skull from its centre
    eye_az: float = 22.0
    eye_el: float = 8.0
    eye_radius: float = 0.0120
    eye_open: float = 24.0       # degrees between the gaze axis and the upper lid's rim
    gaze_yaw: float = 0.0        # gaze direction relative to the head (deg, + toward the subject's left)
    gaze_pitch: float = 0.0      # (deg, + up)
    brow_gap: float = 9.0        # degrees of elevation between eye and brow
    brow_thickness: float = 0.006
    nose_el: float = -8.0        # elevation of the nose-tip direction
    nose_length: float = 0.050
    nose_width: float = 0.013
    nose_depth: float = 0.020
    mouth_el: float = -30.0
    mouth_az: float = 17.0       # half-width of the mouth as azimuth
    lip_thickness: float = 0.006
    chin_el: float = -55.0
    ear_el: float = -2.0
    ear_size: float = 0.030
    hairline_el: float = 40.0    # forehead hairline elevation at the front
    neck_radius: float = 0.052
    # appearance (RGB 0..1)
    skin: tuple = (0.85, 0.65, 0.52)
    lips: tuple = (0.70, 0.35, 0.35)
    iris: tuple = (0.3, 0.2, 0.1)
    hair_color: tuple = (0.1, 0.07, 0.05)
    hair_style: str = "short"
    hair_thickness: float = 0.008
    clothing: tuple = (0.2, 0.25, 0.35)
    # accessories
    glasses: str = "none"        # none | clear | sun
    glasses_color: tuple = (0.1, 0.1, 0.1)
    cap: bool = False
    cap_color: tuple = (0.6, 0.1, 0.1)
    mask: bool = False
    mask_color: tuple = (0.55, 0.75, 0.9)
    beard: float = 0.0           # 0 = none .. 1 = full (darkens the lower face)

    @classmethod
    def sample(cls, rng: np.random.Generator, accessories: float = 1.0) -> "HeadIdentity":
        """Draw a random identity.  ``accessories`` scales the probability of glasses/caps/masks
        (0 disables them)."""
        u = rng.uniform
        p = float(np.clip(accessories, 0.0, 2.0))
        seed = int(rng.integers(2 ** 31))
        skin = _pick(rng, _SKIN, 0.02)
        lips = tuple(float(v) for v in np.clip(np.array(skin) * [0.85, 0.55, 0.58] + rng.normal(0, 0.03, 3), 0, 1))
        hair = _pick(rng, _HAIR, 0.03)
        style = str(rng.choice(HAIR_STYLES, p=[0.08, 0.14, 0.33, 0.2, 0.17, 0.08]))
        p_clear, p_sun = min(0.18 * p, 0.45), min(0.12 * p, 0.30)
        glasses = str(rng.choice(["none", "clear", "sun"], p=[1.0 - p_clear - p_sun, p_clear, p_sun]))
        return cls(
            seed=seed,
            half_width=u(0.066, 0.082), half_height=u(0.097, 0.115), half_depth=u(0.090, 0.104),
            jaw_taper=u(0.12, 0.38), chin_forward=u(0.02, 0.14), occiput=u(0.0, 0.12),
            brow_ridge=u(0.001, 0.007), cheekbones=u(0.0, 0.007), chin_bump=u(0.002, 0.009),
            eye_az=u(19.0, 25.0), eye_el=u(5.0, 12.0), eye_radius=u(0.0110, 0.0130),
            eye_open=u(17.0, 32.0), gaze_yaw=float(rng.normal(0, 6.0)), gaze_pitch=float(rng.normal(-2.0, 4.0)),
            brow_gap=u(7.5, 11.5), brow_thickness=u(0.0035, 0.008),
            nose_el=u(-13.0, -5.0), nose_length=u(0.038, 0.052), nose_width=u(0.0085, 0.0125),
            nose_depth=u(0.014, 0.022),
            mouth_el=u(-35.0, -26.0), mouth_az=u(13.0, 20.0), lip_thickness=u(0.004, 0.0085),
            chin_el=u(-62.0, -50.0), ear_el=u(-6.0, 3.0), ear_size=u(0.026, 0.036),
            hairline_el=u(30.0, 50.0), neck_radius=u(0.045, 0.062),
            skin=skin, lips=lips, iris=_pick(rng, _IRIS, 0.03), hair_color=hair, hair_style=style,
            hair_thickness=u(0.004, 0.014),
            clothing=tuple(float(v) for v in rng.uniform(0.05, 0.9, 3)),
            glasses=glasses, glasses_color=tuple(float(v) for v in rng.uniform(0.0, 0.5, 3)),
            cap=bool(u() < 0.12 * p), cap_color=tuple(float(v) for v in rng.uniform(0.05, 0.9, 3)),
            mask=bool(u() < 0.10 * p),
            mask_color=tuple(float(v) for v in (rng.uniform(0.5, 0.95, 3) if u() < 0.8 else rng.uniform(0, 0.2, 3))),
            beard=float(u() if u() < 0.2 else 0.0),
        )

    @classmethod
    def from_seed(cls, seed: int, accessories: float = 1.0) -> "HeadIdentity":
        """The identity of ``seed`` (the same seed always gives the same person)."""
        ident = cls.sample(np.random.default_rng([int(seed), 0x1DE7]), accessories)
        ident.seed = int(seed)
        return ident

    def to_dict(self) -> dict:
        return asdict(self)

    def cache_key(self) -> tuple:
        """A hashable key of every field (meshes are cached by it)."""
        return tuple(getattr(self, f.name) for f in fields(self))


def identity_seeds(split: str, n: int, offset: int = 0) -> np.ndarray:
    """``n`` identity seeds of ``split`` ("train" | "val" | "test"), disjoint across splits."""
    from ..errors import UserError

    if split not in SPLIT_RANGES:
        raise UserError(f"unknown identity split {split!r}; choose one of {', '.join(SPLIT_RANGES)}")
    lo, hi = SPLIT_RANGES[split]
    if n < 1 or offset < 0 or lo + offset + n > hi:
        raise UserError(f"split {split!r} holds {hi - lo} identities; asked for {n} from offset {offset}")
    return np.arange(lo + offset, lo + offset + n, dtype=np.int64)
