"""``SynthHeadDataset``: synthetic heads on the fly, as an :mod:`edgepose.data` reader.

Each index is rendered from its own seed (``[seed, index]``), so ``dataset[i]`` is the same image
every time on the same machine, in any DataLoader worker, in any order.  ``resample=True`` draws
from the generator the training dataset passes to ``get(i, rng)`` instead, so every epoch sees
new images.  Identities come from the split's disjoint seed range
(:func:`edgepose.synth.identity.identity_seeds`).

``PoseDataset(SynthHeadDataset(...), spec)`` crops the face box with the shared preprocessing;
the label of each :class:`~edgepose.data.Sample` is ``RenderResult.R_crop``, the pose relative to
the viewing ray through the face-box centre (what the face crop shows, and what the runtime's
perspective correction expects a network to predict); it equals the sampled pose exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.sample import Reader, Sample
from ..errors import UserError
from .background import BACKGROUNDS
from .identity import HeadIdentity, identity_seeds
from .renderer import RenderResult, get_renderer
from .scene import SceneParams, parse_pose_range, sample_pose

__all__ = ["SynthConfig", "SynthHeadDataset"]


@dataclass
class SynthConfig:
    """What a synthetic dataset draws from (YAML-friendly; every field has a default)."""

    split: str = "train"            # identity split: train | val | test (disjoint seed ranges)
    n_identities: int = 500         # identities drawn from the split
    pose_range: str = "wide"        # frontal | driver | wide | full | "pitch=a:b,yaw=c:d,roll=e:f"
    ir_fraction: float = 0.3
    sun_fraction: float = 0.3
    backgrounds: list = field(default_factory=lambda: list(BACKGROUNDS))
    accessories: float = 1.0        # scales glasses / cap / mask probabilities (0 = none)
    size: int = 128
    ssaa: int = 2
    fov: tuple = (30.0, 80.0)
    fill: tuple = (0.45, 0.75)
    pp_jitter: float = 0.05

    def validate(self) -> "SynthConfig":
        parse_pose_range(self.pose_range)
        if not 0.0 <= self.ir_fraction <= 1.0:
            raise UserError(f"ir_fraction must be in [0, 1], got {self.ir_fraction}")
        if not 0.0 <= self.sun_fraction <= 1.0:
            raise UserError(f"sun_fraction must be in [0, 1], got {self.sun_fraction}")
        bad = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if bad or not self.backgrounds:
            raise UserError(f"backgrounds {bad or '[]'} unknown; choose from {', '.join(BACKGROUNDS)}")
        if self.n_identities < 1:
            raise UserError(f"n_identities must be >= 1, got {self.n_identities}")
        identity_seeds(self.split, self.n_identities)  # checks the split and its capacity
        return self


class SynthHeadDataset(Reader):
    """``len(ds) == n``; ``ds[i]`` -> :class:`edgepose.data.Sample` (BGR or GRAY image, R, face box,
    5 YuNet-order landmarks; ``extra`` holds all key points, visibility, IR flag, identity)."""

    name = "synth"

    def __init__(self, n: int, seed: int = 0, config: SynthConfig | None = None, resample: bool = False, **kw):
        if n < 1:
            raise UserError(f"a synthetic dataset needs n >= 1 samples, got {n}")
        cfg = config or SynthConfig()
        if kw:
            unknown = set(kw) - set(SynthConfig.__dataclass_fields__)
            if unknown:
                raise UserError(f"unknown synthetic-data option(s) {sorted(unknown)}; "
                                f"known: {sorted(SynthConfig.__dataclass_fields__)}")
            cfg = SynthConfig(**{**asdict(cfg), **kw})
        self.cfg = cfg.validate()
        self.n, self.seed, self.resample = int(n), int(seed), bool(resample)
        self.identity_pool = identity_seeds(cfg.split, cfg.n_identities)
        self._identities: dict[int, HeadIdentity] = {}

    def __len__(self) -> int:
        return self.n

    def draw(self, rng: np.random.Generator) -> tuple[HeadIdentity, np.ndarray, SceneParams]:
        """Identity, pose and scene drawn from ``rng`` (the order of draws is fixed)."""
        c = self.cfg
        seed = int(rng.choice(self.identity_pool))
        ident = self._identities.get(seed)
        if ident is None:  # identities are pure functions of their seed: keep them
            ident = self._identities[seed] = HeadIdentity.from_seed(seed, c.accessories)
        R = sample_pose(rng, c.pose_range)
        scene = SceneParams.sample(rng, ir_fraction=c.ir_fraction, sun_fraction=c.sun_fraction,
                                   backgrounds=c.backgrounds, fov=tuple(c.fov), fill=tuple(c.fill),
                                   pp_jitter=c.pp_jitter)
        return ident, R, scene

    def render(self, index: int, rng: np.random.Generator | None = None) -> RenderResult:
        if not self.resample or rng is None:
            rng = np.random.default_rng([self.seed, int(index)])
        ident, R, scene = self.draw(rng)
        return get_renderer(self.cfg.size, self.cfg.ssaa).render(ident, R, scene)

    def get(self, index: int, rng: np.random.Generator | None = None) -> Sample:
        return self.render(index, rng).to_sample(f"synth:{self.cfg.split}:{self.seed}:{index}")

    def describe(self) -> dict:
        return {"reader": "synth", "n": self.n, "seed": self.seed, "resample": self.resample,
                "config": asdict(self.cfg)}
