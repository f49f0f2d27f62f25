"""Losses of the teacher methods (pure functions on tensors; hand-checked in tests/test_methods.py).

* :func:`circle_loss` -- Circle loss (Sun et al., CVPR'20) with per-anchor positive / negative masks.
* :func:`clerf_masks` -- CLERF sampling rule: positives = same pose (geodesic < ``pos_deg``),
  negatives = geodesic > ``delta_deg``, everything in between ignored.
* :func:`diff_loss` -- PCL's orthogonality loss (DiffLoss: centred, row-normalised with detached
  norms, mean squared cross-correlation).
* :func:`info_nce` -- InfoNCE with PCL's negative mixup (Beta(alpha, alpha)).
* :func:`dwa_weights` -- Dynamic Weight Average (T = 2) from the last two epochs' task losses.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch.nn import functional as F

from ..geometry_torch import geodesic

__all__ = ["circle_loss", "clerf_masks", "diff_loss", "info_nce", "mix_negatives", "dwa_weights"]


def circle_loss(sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, m: float = 0.25,
                gamma: float = 64.0) -> torch.Tensor:
    """Mean over anchors of ``log(1 + sum_n exp(g a_n (s_n - m)) * sum_p exp(-g a_p (s_p - (1 - m))))``.

    ``sim`` (N, M) cosine similarities, ``pos`` / ``neg`` (N, M) bool masks; a_p = [1 + m - s_p]+,
    a_n = [s_n + m]+ are detached (as in the paper's implementation).  Anchors without a
    positive or without a negative are skipped; returns 0 (with a graph) when none is left.
    """
    ap = torch.clamp_min(1.0 + m - sim.detach(), 0.0)
    an = torch.clamp_min(sim.detach() + m, 0.0)
    logit_p = -gamma * ap * (sim - (1.0 - m))
    logit_n = gamma * an * (sim - m)
    neg_inf = torch.finfo(sim.dtype).min
    lse_p = torch.logsumexp(torch.where(pos, logit_p, torch.full_like(sim, neg_inf)), dim=1)
    lse_n = torch.logsumexp(torch.where(neg, logit_n, torch.full_like(sim, neg_inf)), dim=1)
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        return sim.sum() * 0.0
    return F.softplus(lse_p[valid] + lse_n[valid]).mean()


def clerf_masks(R: torch.Tensor, delta_deg: float = 15.0, pos_deg: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 3) labels -> (pos, neg) (N, N) masks: positives share the pose (geodesic < pos_deg,
    the anchor itself excluded), negatives differ by more than ``delta_deg``; the rest is ignored."""
    if not 0 <= pos_deg <= delta_deg:
        raise ValueError(f"need 0 <= pos_deg ({pos_deg}) <= delta_deg ({delta_deg})")
    n = R.shape[0]
    A = R.unsqueeze(1).expand(n, n, 3, 3).reshape(-1, 3, 3)
    B = R.unsqueeze(0).expand(n, n, 3, 3).reshape(-1, 3, 3)
    d = torch.rad2deg(geodesic(A.double(), B.double(), eps=0.0)).reshape(n, n)
    eye = torch.eye(n, dtype=torch.bool, device=R.device)
    return (d < pos_deg) & ~eye, d > delta_deg


def diff_loss(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """PCL / DSN orthogonality: ``mean((A_hat^T B_hat)^2)`` with A, B centred over the batch and
    each row divided by its DETACHED l2 norm.  0 when the two feature sets are orthogonal."""
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    a = a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdim=True)
    a = a / (a.detach().norm(dim=1, keepdim=True) + eps)
    b = b / (b.detach().norm(dim=1, keepdim=True) + eps)
    return (a.t() @ b).pow(2).mean()


def mix_negatives(neg: torch.Tensor, alpha: float = 1.6, generator: torch.Generator | None = None) -> torch.Tensor:
    """PCL's negative mixup: each negative (..., K, D) mixed with a shuffled one of the same set,
    coefficient ~ Beta(alpha, alpha), re-normalised to the unit sphere."""
    k = neg.shape[-2]
    perm = torch.randperm(k, generator=generator, device="cpu").to(neg.device)
    lam = torch.distributions.Beta(alpha, alpha).sample(neg.shape[:-1] + (1,)).to(neg)
    return F.normalize(lam * neg + (1 - lam) * neg[..., perm, :], dim=-1)


def info_nce(q: torch.Tensor, k: torch.Tensor, neg: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE with the positive at index 0.  ``q``, ``k``: (N, D) unit vectors; ``neg``: (N, K, D)
    per-anchor negatives, or (K, D) shared by all anchors."""
    l_pos = (q * k).sum(-1, keepdim=True)
    l_neg = torch.einsum("nd,nkd->nk", q, neg) if neg.ndim == 3 else q @ neg.t()
    logits = torch.cat([l_pos, l_neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def dwa_weights(history: Sequence[Sequence[float]], temperature: float = 2.0) -> list[float]:
    """Dynamic Weight Average (Liu et al., CVPR'19) as PCL uses it:
    ``w_i = K exp(r_i / T) / sum_j exp(r_j / T)``, ``r_i = L_i(t-1) / L_i(t-2)``.

    ``history``: per-epoch lists of the K task losses (oldest first).  With fewer than two
    epochs of history every weight is 1.
    """
    if len(history) < 2:
        k = len(history[-1]) if history else 2
        return [1.0] * k
    prev, prev2 = history[-1], history[-2]
    r = [p / max(q, 1e-12) for p, q in zip(prev, prev2)]
    e = [math.exp(x / temperature) for x in r]
    return [len(r) * v / sum(e) for v in e]
