"""Distillation losses (docs/distillation.md; soft-label KD as in MHPNet, chientv99/maskpose).

* ``geodesic``: mean geodesic angle (radians) between student R and teacher R;
* ``kl``: KL(teacher || student) on each axis' bin distribution at temperature T, scaled by T^2
  (Hinton et al.); the teacher distribution of an ensemble is the mean of member softmaxes;
  only when student and teacher have the same BinSpecs;
* ``feature``: a linear projector from the student's pooled features to the teacher's width, MSE
  or 1 - cosine;
* ``gt``: geodesic to the ground-truth R on labelled samples (masked elsewhere).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgepose.geometry_torch import geodesic

__all__ = ["DistillLossConfig", "DistillLoss", "bin_kl"]


@dataclass
class DistillLossConfig:
    geodesic: float = 1.0
    kl: float = 0.0  # 0 = off; needs matching bins
    temperature: float = 2.0
    feature: float = 0.0  # 0 = off
    feature_kind: str = "cosine"  # cosine | mse
    gt: float = 0.0  # geodesic to labels where they exist


def bin_kl(student_logits: torch.Tensor, teacher_logits: list[torch.Tensor], T: float) -> torch.Tensor:
    p_t = torch.stack([F.softmax(t / T, -1) for t in teacher_logits]).mean(0)
    return F.kl_div(F.log_softmax(student_logits / T, -1), p_t, reduction="batchmean") * T * T


class DistillLoss(nn.Module):
    def __init__(self, cfg: DistillLossConfig, student_features: int, teacher_features: int | None,
                 student_bins: dict, teacher_bins: dict):
        super().__init__()
        from edgepose.errors import UserError

        self.cfg = cfg
        if cfg.temperature <= 0:
            raise UserError(f"loss.temperature must be > 0 (got {cfg.temperature})")
        if cfg.kl > 0 and (not student_bins or student_bins != teacher_bins):
            raise UserError("loss.kl needs a binned student (head: 6d+bins) with the teacher's BinSpecs "
                            f"(student {sorted(student_bins) or 'no bins'}, teacher {sorted(teacher_bins) or 'no bins'}); "
                            "set loss.kl=0 or model.bins to the teacher's")
        if cfg.feature_kind not in ("cosine", "mse"):
            raise UserError(f"loss.feature_kind must be cosine or mse (got {cfg.feature_kind!r})")
        self.projector = None
        if cfg.feature > 0:
            if teacher_features is None:
                raise UserError("loss.feature needs teachers with one feature width; set loss.feature=0 for this ensemble")
            self.projector = nn.Linear(student_features, teacher_features)

    def forward(self, s: dict, t: dict, R_gt: torch.Tensor | None = None, has_gt: torch.Tensor | None = None):
        c = self.cfg
        parts: dict[str, torch.Tensor] = {}
        if c.geodesic > 0:
            parts["geodesic"] = geodesic(s["R"], t["R"]).mean() * c.geodesic
        if c.kl > 0:
            parts["kl"] = sum(bin_kl(s["logits"][a], t["logits"][a], c.temperature) for a in t["logits"]) / len(t["logits"]) * c.kl
        if self.projector is not None:
            z = self.projector(s["features"])
            ft = t["features"]
            parts["feature"] = c.feature * ((1 - F.cosine_similarity(z, ft, dim=-1)).mean() if c.feature_kind == "cosine"
                                            else F.mse_loss(z, ft))
        if c.gt > 0 and R_gt is not None and has_gt is not None and bool(has_gt.any()):
            parts["gt"] = geodesic(s["R"][has_gt], R_gt[has_gt]).mean() * c.gt
        total = sum(parts.values()) if parts else s["R"].sum() * 0
        return total, {k: float(v.detach()) for k, v in parts.items()}
