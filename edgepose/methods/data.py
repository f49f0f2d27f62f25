"""Data plumbing of the teacher methods.

(The ``synth`` dataset format, :class:`MemoSynthReader`, lives in :mod:`edgepose.synth.reader`
and is re-exported here.)

* :class:`GeometricAugment` -- in-plane rotation (full circle, upside-down included), horizontal
  flip and mirror about a line, all as ONE (angle, flip) pair for
  :func:`edgepose.data.augment.crop_sample`, so image and label move together through
  :mod:`edgepose.preprocess` and :mod:`edgepose.geometry`.
* :class:`ClerfPairs` -- CLERF anchor/positive pairs: the positive is another synthetic identity
  rendered at the anchor's pose (``direct``) or at the roll-free pose then rotated in the image
  by the roll-last angle (``roll_last``); on a build's cached faces (``faces_npz``) another person's face
  with one of the nearest labels; the same geometric transform is applied to both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import geometry
from ..errors import DataError
from ..data.sample import Reader, Sample

from ..synth.reader import MemoSynthReader, shared_memo

__all__ = ["MemoSynthReader", "GeometricAugment", "mirror_as_rotate_flip", "ClerfPairs", "render_positive_sample"]


# ------------------------------------------------------------------ geometric augmentation

def mirror_as_rotate_flip(phi_deg: float) -> tuple[float, bool]:
    """Mirror across the image line at screen angle ``phi`` as the crop's (CCW rotation, flip).

    ``crop_image`` rotates CCW by ``a`` and then flips horizontally; a reflection across the line
    at ``phi`` equals that with ``a = 180 - 2 phi`` (the label then matches
    :func:`edgepose.geometry.mirror_label`, checked in tests/test_methods.py).
    """
    a = (180.0 - 2.0 * float(phi_deg) + 180.0) % 360.0 - 180.0
    return a, True


@dataclass
class GeometricAugment:
    """CLERF's geometric augmentation: rotation U(-rotate_deg, rotate_deg) with probability
    ``rotate_p`` (180 = full circle), horizontal flip ``flip_p``, mirror about a random line
    ``mirror_p`` (replaces the flip when drawn)."""

    rotate_p: float = 1.0
    rotate_deg: float = 180.0
    flip_p: float = 0.5
    mirror_p: float = 0.25

    def __post_init__(self):
        for name in ("rotate_p", "flip_p", "mirror_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise DataError(f"method.options.geometric.{name} is a probability in [0, 1], got {v}")

    def sample(self, rng: np.random.Generator) -> tuple[float, bool]:
        """-> (angle_deg CCW, flip) for :func:`crop_sample`."""
        angle = float(rng.uniform(-self.rotate_deg, self.rotate_deg)) if rng.random() < self.rotate_p else 0.0
        if rng.random() < self.mirror_p:
            m, _ = mirror_as_rotate_flip(float(rng.uniform(0.0, 180.0)))
            return (angle + m + 180.0) % 360.0 - 180.0, True
        return angle, bool(rng.random() < self.flip_p)


# ------------------------------------------------------------------ CLERF pairs

def render_positive_sample(R: np.ndarray, identity_seed: int, rng: np.random.Generator, size: int = 96,
                           mode: str = "direct", ir_fraction: float = 0.3) -> tuple[Sample, float]:
    """Another person at exactly pose ``R``.

    Returns (sample, extra CCW image rotation to apply when cropping).  ``direct`` renders R;
    ``roll_last`` renders the roll-free pose of :func:`geometry.roll_last_decomposition` and
    asks the crop to rotate CCW by its ``image_rotation`` -- the route a roll-free generator
    (a 3D GAN) needs; its label is then ``rotate_label(R_rollfree, image_rotation) == R``.
    """
    from ..synth import HeadIdentity
    from ..synth.renderer import get_renderer
    from ..synth.scene import SceneParams

    # the head sits on the optical axis (no principal-point jitter): the crop shows R itself
    scene = SceneParams.sample(rng, ir_fraction=ir_fraction, pp_jitter=0.0)
    ident = HeadIdentity.from_seed(int(identity_seed))
    if mode == "direct":
        res = get_renderer(size, 1).render(ident, R, scene)
        return res.to_sample(f"synth-positive:id{identity_seed}"), 0.0
    if mode != "roll_last":
        raise DataError(f"method.options.positive_mode must be direct or roll_last, got {mode!r}")
    d = geometry.roll_last_decomposition(R)
    R0 = geometry.euler_to_matrix([d["pitch"], d["yaw"], 0.0])
    res = get_renderer(size, 1).render(ident, R0, scene)
    return res.to_sample(f"synth-positive-rolllast:id{identity_seed}"), float(d["image_rotation"])


class ClerfPairs:
    """Torch dataset of CLERF pairs around a :class:`edgepose.data.PoseDataset`.

    Item: ``image``/``R``/``euler`` (the anchor after the shared geometric transform and its own
    photometric augmentation) and ``image_pos``/``R_pos`` (the positive after the SAME geometric
    transform and independent photometric augmentation).  Positives are cached per index (fixed
    identity and scene per index); the geometric transform is drawn fresh every time.
    """

    def __init__(self, base, geometric: GeometricAugment, positive_mode: str = "direct",
                 identities: int = 500, seed: int = 0, size: int | None = None):
        from ..data.dataset import PoseDataset

        if not isinstance(base, PoseDataset):
            raise DataError("CLERF needs one training dataset (a single data.train mapping, not a list)")
        if positive_mode not in ("direct", "roll_last"):
            raise DataError(f"method.options.positive_mode must be direct or roll_last, got {positive_mode!r}")
        from ..synth.identity import identity_seeds

        self.base, self.geometric, self.mode, self.seed = base, geometric, positive_mode, int(seed)
        self.pool = identity_seeds("train", int(identities))
        src_size = getattr(getattr(base.source, "cfg", None), "size", None)
        self.size = int(size or src_size or 96)
        self._pos: dict[int, tuple[Sample, float]] = self._shared_positives(int(identities))

    def _shared_positives(self, identities: int) -> dict:
        """Positives depend on the anchors (a memoised synth reader's samples), the seed, the mode,
        the pool and the size; rows of the table sharing those (clerf, clerf-ldl) render them once."""
        src = self.base.source
        if not isinstance(src, MemoSynthReader) or not src.memo:
            return {}
        key = ("clerf-positives", id(src._cache), self.seed, self.mode, identities, self.size)
        return shared_memo(key)

    def __len__(self) -> int:
        return len(self.base)

    def positive(self, index: int, anchor: Sample) -> tuple[Sample, float]:
        if index not in self._pos and getattr(self.base.source, "name", "") == "profiled":
            # a shared-pose profile cache: another real face rendered at exactly this pose
            from ..synth.profile.sampler import SamePoseIndex

            src = self.base.source
            if not hasattr(src, "same_pose_index"):
                src.same_pose_index = SamePoseIndex(src)
            j = src.same_pose_index.other_face_same_pose(index, np.random.default_rng([self.seed, 7919, int(index)]))
            self._pos[index] = (src.get(j), 0.0)
        if index not in self._pos and hasattr(self.base.source, "nearest_pose_positive"):
            # a build's cached faces (faces_npz): another person whose label is nearest to the anchor's
            src = self.base.source
            j, _ = src.nearest_pose_positive(index, np.random.default_rng([self.seed, 7919, int(index)]))
            self._pos[index] = (src.get(j), 0.0)
        if index not in self._pos:
            rng = np.random.default_rng([self.seed, 7919, int(index)])
            own = anchor.extra.get("identity") if anchor.extra else None
            ident = int(rng.choice(self.pool))
            while own is not None and ident == own and len(self.pool) > 1:
                ident = int(rng.choice(self.pool))
            self._pos[index] = render_positive_sample(anchor.R, ident, rng, self.size, self.mode)
        return self._pos[index]

    def pair(self, index: int, rng: np.random.Generator):
        """Uint8 crops and labels: (anchor, R_a, positive, R_p, (angle, flip))."""
        from ..data.augment import crop_sample

        ds = self.base
        a = ds.source.get(index, rng) if isinstance(ds.source, Reader) else ds.source[index]
        if a.R is None:
            raise DataError(f"CLERF anchors need pose labels; {a.source} has none")
        p, extra_rot = self.positive(index, a)
        angle, flip = self.geometric.sample(rng)
        crop_a, R_a, _ = crop_sample(a, ds.spec, angle, flip)
        # roll_last: rotate the roll-free render by image_rotation first, then the shared transform
        crop_p, R_p, _ = crop_sample(p, ds.spec, angle + extra_rot, flip)
        if ds.spec.channels == 3:  # a grey (NIR-look) render beside a colour one: one form for the pair
            from ..preprocess import to_bgr

            crop_a, crop_p = to_bgr(crop_a), to_bgr(crop_p)
        if ds.augment is not None:
            crop_a = ds.augment.photometric(crop_a, rng)
            crop_p = ds.augment.photometric(crop_p, rng)
        return crop_a, R_a, crop_p, R_p, (angle, flip)

    def __getitem__(self, index: int) -> dict:
        import torch

        from ..preprocess import normalize

        crop_a, R_a, crop_p, R_p, _ = self.pair(index, self.base.rng())
        as_t = lambda c: torch.from_numpy(normalize(c, self.base.spec))  # noqa: E731
        return {"image": as_t(crop_a), "R": torch.from_numpy(np.asarray(R_a, np.float32)),
                "euler": torch.from_numpy(geometry.matrix_to_euler(R_a).astype(np.float32)),
                "image_pos": as_t(crop_p), "R_pos": torch.from_numpy(np.asarray(R_p, np.float32))}
