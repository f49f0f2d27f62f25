"""Same-pose batches for contrastive methods, from a shared-pose profile cache.

In a cache built with ``pose_mode="shared"`` every face is rendered at the same K poses, so
renders with the same pose index ``k`` carry the IDENTICAL label.  A batch of
:class:`SamePoseBatchSampler` holds

* ``identities`` different faces at one pose (CLERF positives: same pose, other people), then
* ``poses`` renders of one face at other poses (negatives whose geodesic distance to the
  positives' pose is known exactly: :func:`geodesic_matrix` of their labels).

Use it as a DataLoader ``batch_sampler`` over ``PoseDataset(ProfiledReader(root), spec)``, or
let CLERF draw its positives from the cache (``data.train: {format: profiled, root: ...}``).
"""
from __future__ import annotations

import numpy as np

from ... import geometry
from ...errors import DataError

__all__ = ["SamePoseIndex", "SamePoseBatchSampler", "geodesic_matrix"]


def geodesic_matrix(R: np.ndarray) -> np.ndarray:
    """(N, N) geodesic distances in degrees between the rotations ``R`` (N, 3, 3)."""
    R = np.asarray(R, np.float64)
    return geometry.geodesic_distance(R[:, None], R[None, :])


class SamePoseIndex:
    """Indices of a :class:`ProfiledReader` by pose index and by face (shared-pose caches only)."""

    def __init__(self, reader):
        if reader.header["settings"].get("pose_mode") != "shared":
            raise DataError(f"{reader.root} was built with pose_mode={reader.header['settings'].get('pose_mode')!r}; "
                            "same-pose sampling needs a cache built with `--pose-mode shared`")
        self.reader = reader
        self.face = reader.column("face")
        self.pose = reader.column("pose")
        self.by_pose = {int(k): np.flatnonzero(self.pose == k) for k in np.unique(self.pose)}
        self.by_face = {int(f): np.flatnonzero(self.face == f) for f in np.unique(self.face)}
        if len(self.by_face) < 2:
            raise DataError(f"{reader.root}: same-pose sampling needs at least 2 faces, the cache has {len(self.by_face)}")

    def other_face_same_pose(self, index: int, rng: np.random.Generator) -> int:
        """A render of another face at the pose of render ``index`` (identical label)."""
        pool = self.by_pose[int(self.pose[index])]
        pool = pool[self.face[pool] != self.face[index]]
        if len(pool) == 0:
            raise DataError(f"{self.reader.root}: no other face was rendered at pose {int(self.pose[index])}")
        return int(rng.choice(pool))


class SamePoseBatchSampler:
    """Yields index lists: ``identities`` faces at one pose, then ``poses`` renders of one of
    them at other poses.  ``batches`` per epoch (default: one per face); deterministic per seed
    and epoch (:meth:`set_epoch`)."""

    def __init__(self, reader, identities: int = 8, poses: int = 4, batches: int | None = None, seed: int = 0):
        self.index = SamePoseIndex(reader)
        if identities < 2 or poses < 0:
            raise DataError(f"same-pose batches need identities >= 2 and poses >= 0, got {identities}, {poses}")
        self.identities, self.poses, self.seed, self.epoch = int(identities), int(poses), int(seed), 0
        self.batches = int(batches or len(self.index.by_face))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 0x5A3E])
        idx = self.index
        ks = sorted(idx.by_pose)
        for _ in range(self.batches):
            k = int(rng.choice(ks))
            pool = idx.by_pose[k]
            same = rng.choice(pool, size=min(self.identities, len(pool)), replace=False)
            face = int(idx.face[same[0]])
            others = idx.by_face[face]
            others = others[idx.pose[others] != k]
            neg = rng.choice(others, size=min(self.poses, len(others)), replace=False) if len(others) else []
            yield [int(i) for i in same] + [int(i) for i in neg]
