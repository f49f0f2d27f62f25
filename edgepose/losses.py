"""Training losses for pose heads (docs/backbones.md, "Losses"; papers cited there).

* :func:`geodesic_loss` -- mean rotation angle between predicted and true R in radians, with the
  cosine clamped as in :func:`edgepose.geometry_torch.geodesic` (finite gradients at 0 and pi);
  6DRepNet's loss.
* :func:`ldl_loss` -- label distribution learning: a Gaussian over the bin centres around the
  true angle (wrapped on ``wrap=True`` axes: ``d = ((c - y + 180) mod 360) - 180``),
  ``KL(target || softmax(logits)) + lambda * |E[angle] - y|`` (or squared), where E is the same
  decode the head uses (centre expectation, circular mean on wrapped axes).
* :func:`hopenet_loss` -- HopeNet: cross-entropy on the bin index + ``alpha * MSE(E[angle], y)``
  (with centres, not HopeNet's left edges; see :mod:`edgepose.models.heads`).
* :class:`PoseLoss` -- the weighted sum configured by :class:`LossConfig`; returns
  ``(total, parts)`` with detached parts for logging.

Angles are degrees and ordered (pitch, yaw, roll), as everywhere in edgepose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .config import ConfigError
from .errors import ModelError, UserError
from .geometry_torch import angle_diff, geodesic, matrix_to_euler
from .metadata import BinSpec
from .models.heads import AXES, bin_centers, bin_index, decode_bins

__all__ = ["LossConfig", "LossConfigError", "PoseLoss", "geodesic_loss", "ldl_target", "ldl_loss",
           "hopenet_loss", "angle_error", "sigma_in_degrees"]


class LossConfigError(ConfigError, UserError):
    """An invalid loss setting (shown to CLI users as one line)."""


@dataclass
class LossConfig:
    """Weights of the loss terms; 0 switches a term off.

    ``ldl_sigma`` is in bins (``ldl_sigma_unit="bins"``, converted with each axis' width) or in
    degrees (``"deg"``).  ``ldl_reg`` picks the expectation term: ``"l1"`` (|E - y|) or ``"mse"``.
    Defaults: 6D + geodesic only.  LDL's sigma / lambda are not published (Liu et al., arXiv 1904.13102);
    the defaults (2 bins, 0.1 on degrees) are a starting point to ablate, not a recipe.
    """

    geodesic: float = 1.0
    ldl: float = 0.0
    ldl_sigma: float = 2.0
    ldl_sigma_unit: str = "bins"
    ldl_lambda: float = 0.1
    ldl_reg: str = "l1"
    hopenet: float = 0.0
    hopenet_alpha: float = 1.0  # paper: 2 best on AFLW2000, 1 on BIWI (code default 0.001 differs)

    def __post_init__(self):
        for name in ("geodesic", "ldl", "ldl_lambda", "hopenet", "hopenet_alpha"):
            if getattr(self, name) < 0:
                raise LossConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.ldl_sigma <= 0:
            raise LossConfigError(f"loss.ldl_sigma must be > 0, got {self.ldl_sigma}")
        if self.ldl_sigma_unit not in ("bins", "deg"):
            raise LossConfigError(f"loss.ldl_sigma_unit must be 'bins' or 'deg', got {self.ldl_sigma_unit!r}")
        if self.ldl_reg not in ("l1", "mse"):
            raise LossConfigError(f"loss.ldl_reg must be 'l1' or 'mse', got {self.ldl_reg!r}")
        if self.geodesic == 0 and self.ldl == 0 and self.hopenet == 0:
            raise LossConfigError("all loss weights are 0; set at least one of loss.geodesic, loss.ldl, loss.hopenet")

    @property
    def needs_bins(self) -> bool:
        return self.ldl > 0 or self.hopenet > 0


def geodesic_loss(R_pred: torch.Tensor, R_gt: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean geodesic angle (radians) between (N, 3, 3) rotation batches; with ``weight`` (N,) the weighted mean."""
    g = geodesic(R_pred, R_gt)
    if weight is None:
        return g.mean()
    return (g * weight).sum() / weight.sum().clamp_min(1e-8)


def sigma_in_degrees(spec: BinSpec, sigma: float, unit: str = "bins") -> float:
    return float(sigma) * (spec.width if unit == "bins" else 1.0)


def angle_error(pred_deg: torch.Tensor, true_deg: torch.Tensor, spec: BinSpec) -> torch.Tensor:
    """Signed error; wrapped to [-180, 180) on wrapped axes so 179 vs -179 is 2 deg, not 358."""
    return angle_diff(pred_deg, true_deg) if spec.wrap else pred_deg - true_deg


def ldl_target(angle_deg: torch.Tensor, spec: BinSpec, sigma_deg: float) -> torch.Tensor:
    """(N,) angles -> (N, K) Gaussian label distribution over the bin centres (rows sum to 1)."""
    c = bin_centers(spec, device=angle_deg.device, dtype=angle_deg.dtype)
    c, y = c.unsqueeze(0), angle_deg.unsqueeze(-1)
    d = angle_diff(c, y) if spec.wrap else c - y
    # softmax of the log-density normalises stably even for angles far outside the bin range.
    return torch.softmax(-(d * d) / (2.0 * sigma_deg ** 2), dim=-1)


def ldl_loss(logits: torch.Tensor, angle_deg: torch.Tensor, spec: BinSpec, sigma_deg: float,
             lam: float = 0.1, reg: str = "l1") -> torch.Tensor:
    """KL(target || softmax(logits)) (batch mean) + lam * expectation error (degrees)."""
    target = ldl_target(angle_deg.to(logits.dtype), spec, sigma_deg)
    log_p = F.log_softmax(logits, dim=-1)
    # 0 * log(0) terms are 0 (bins far from the label underflow to 0 in the target).
    cross = torch.where(target > 0, target * log_p, torch.zeros_like(log_p))
    kl = (torch.xlogy(target, target) - cross).sum(-1).mean()
    if lam == 0:
        return kl
    err = angle_error(decode_bins(logits, spec), angle_deg.to(logits.dtype), spec)
    return kl + lam * (err.abs().mean() if reg == "l1" else (err * err).mean())


def hopenet_loss(logits: torch.Tensor, angle_deg: torch.Tensor, spec: BinSpec, alpha: float = 1.0) -> torch.Tensor:
    """CE(logits, bin index) + alpha * MSE(E[angle], angle) in degrees^2 (HopeNet multi-loss)."""
    ce = F.cross_entropy(logits, bin_index(angle_deg, spec))
    if alpha == 0:
        return ce
    err = angle_error(decode_bins(logits, spec), angle_deg.to(logits.dtype), spec)
    return ce + alpha * (err * err).mean()


class PoseLoss(nn.Module):
    """Weighted sum of the configured terms.

    ``loss(out, R_gt, euler_gt)`` with ``out`` the PoseModel's forward dict, ``R_gt`` (N, 3, 3)
    and ``euler_gt`` (N, 3) degrees (pitch, yaw, roll).  Pass the dataset's Euler labels when
    binned terms are on -- the ``euler`` of a :class:`edgepose.data.PoseDataset` item, which
    keeps the reader's own triple through flips and rotations (training methods pass
    ``batch["euler"]``).  Decoding them from R (the fallback when ``euler_gt`` is None) folds yaw
    into [-90, 90]: a 300W-LP label at yaw 95 would become (p + 180, 85, r + 180).
    """

    def __init__(self, cfg: LossConfig | None = None, bins: Mapping[str, BinSpec] | None = None):
        super().__init__()
        self.cfg = cfg or LossConfig()
        self.bins = dict(bins or {})
        if self.cfg.needs_bins and set(self.bins) != set(AXES):
            raise ModelError("loss.ldl / loss.hopenet need a binned head (head=bins or head=6d+bins); "
                             "pass the model's bins (PoseLoss(cfg, model.bins)) or set those weights to 0")

    def forward(self, out: dict, R_gt: torch.Tensor, euler_gt: torch.Tensor | None = None):
        cfg = self.cfg
        parts: dict[str, torch.Tensor] = {}
        total = out["R"].new_zeros(())
        if cfg.geodesic > 0:
            parts["geodesic"] = geodesic_loss(out["R"], R_gt.to(out["R"].dtype))
            total = total + cfg.geodesic * parts["geodesic"]
        if cfg.needs_bins:
            logits = out.get("logits")
            if logits is None:
                raise ModelError("loss.ldl / loss.hopenet are on but the model output has no bin logits; "
                                 "use head=bins or head=6d+bins, or set loss.ldl=0 loss.hopenet=0")
            if euler_gt is None:
                euler_gt = matrix_to_euler(R_gt)
            euler_gt = euler_gt.to(out["R"].dtype)
            for i, axis in enumerate(AXES):
                spec, y, z = self.bins[axis], euler_gt[:, i], logits[axis]
                if cfg.ldl > 0:
                    sigma = sigma_in_degrees(spec, cfg.ldl_sigma, cfg.ldl_sigma_unit)
                    term = ldl_loss(z, y, spec, sigma, cfg.ldl_lambda, cfg.ldl_reg)
                    parts[f"ldl_{axis}"] = term
                    total = total + cfg.ldl * term
                if cfg.hopenet > 0:
                    term = hopenet_loss(z, y, spec, cfg.hopenet_alpha)
                    parts[f"hopenet_{axis}"] = term
                    total = total + cfg.hopenet * term
        parts = {k: v.detach() for k, v in parts.items()}
        parts["total"] = total.detach()
        return total, parts
