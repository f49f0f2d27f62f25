"""Self-supervised pretext transforms of HMTL (rotation prediction, jigsaw).

* :func:`rotation_batch` -- each crop rotated CCW by 0/90/180/270 degrees with class 0..3.
* :func:`jigsaw_permutations` -- a fixed set of maximally Hamming-distant tile permutations
  (greedy max-min selection, Noroozi & Favaro 2016).
* :func:`jigsaw_batch` -- tiles of a grid shuffled by a random permutation of the set; the class
  is the permutation's index.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import torch

__all__ = ["rotation_batch", "jigsaw_permutations", "jigsaw_batch"]


def rotation_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, S, S) -> (4N, C, S, S) rotated CCW on screen by 90 k, and labels k (0..3).

    ``torch.rot90(x, k, dims=(2, 3))`` turns the first image axis (rows, pointing down) towards
    the second (columns, pointing right): counter-clockwise as displayed, like ``crop_image``'s
    positive angles (checked in tests)."""
    xs = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return torch.cat(xs, 0), labels


@lru_cache(maxsize=8)
def _perms(grid: int, n: int, seed: int) -> tuple:
    t = grid * grid
    if t > 9:
        raise ValueError("jigsaw grids above 3x3 are not supported (9! permutations are enumerated)")
    allp = np.array(list(itertools.permutations(range(t))), dtype=np.int8)
    if n > len(allp):
        raise ValueError(f"a {grid}x{grid} grid has only {len(allp)} permutations, asked for {n}")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(allp)))]
    dmin = (allp != allp[chosen[0]]).sum(1)
    for _ in range(n - 1):
        # the permutation farthest (in Hamming distance) from everything chosen so far
        best = np.flatnonzero(dmin == dmin.max())
        j = int(best[rng.integers(len(best))])
        chosen.append(j)
        dmin = np.minimum(dmin, (allp != allp[j]).sum(1))
    return tuple(tuple(int(v) for v in allp[j]) for j in chosen)


def jigsaw_permutations(n: int = 30, grid: int = 3, seed: int = 0) -> np.ndarray:
    """(n, grid*grid) permutations, pairwise Hamming-distant, deterministic for a seed."""
    return np.array(_perms(int(grid), int(n), int(seed)), dtype=np.int64)


def jigsaw_batch(x: torch.Tensor, perms: np.ndarray, generator: torch.Generator | None = None,
                 grid: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each (C, S, S) image into grid x grid tiles (S // grid pixels; the remainder is
    dropped), place tile ``perm[i]`` at position i, and return (shuffled images, perm index)."""
    n, c, s, _ = x.shape
    t = s // grid
    tiles = x[:, :, :t * grid, :t * grid].reshape(n, c, grid, t, grid, t).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n, grid * grid, c, t, t)
    labels = torch.randint(len(perms), (n,), generator=generator).to(x.device)
    idx = torch.as_tensor(perms, device=x.device)[labels]  # (N, T)
    shuffled = torch.gather(tiles, 1, idx[:, :, None, None, None].expand_as(tiles))
    out = shuffled.reshape(n, grid, grid, c, t, t).permute(0, 3, 1, 4, 2, 5).reshape(n, c, grid * t, grid * t)
    return out.contiguous(), labels
