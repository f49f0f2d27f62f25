"""``method.name: clerf`` -- contrastive learning of equivariant representations (Wei et al.,
arXiv 2412.02066; docs/teachers.md), on the synthetic head engine.

Stage 1 (``epoch < pretrain_epochs``): anchor/positive pairs from :class:`ClerfPairs` (the
positive: another identity at the anchor's pose, ``positive_mode: direct | roll_last``; one
shared geometric transform incl. upside-down rotations, flips and mirrors; independent
photometric augmentation).  Both go through the encoder (``PoseModel.forward_features``) and a
projection MLP; l2-normalised embeddings; Circle loss with positives = same pose and negatives =
batch samples farther than ``delta_deg`` (closer ones ignored).

Stage 2: the PoseModel's 6D (or 6D+bins) head with the ``loss`` section (geodesic, + LDL when
configured), encoder ``frozen`` or ``finetune``.  ``head_hidden: [512]`` makes that head the paper's
"MLP -> 6D -> Gram-Schmidt" (Linear -> BN -> ReLU per hidden layer, then Linear(6)); it is part of the
deployed PoseModel and recorded in its metadata (``model_kwargs.head_hidden``), so eval, export and
the runtimes rebuild it.  The default ``[]`` keeps the linear head of the measured rows.  The pose
stage trains on the anchors only by default (``pose_on_positives: false``), so it sees the same
images per step as every other row of a fixed budget; ``true`` also trains on the positives
(other identities at the anchors' poses: twice the images and compute per step).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch.nn import functional as F

from .method import register_method
from .base import TeacherMethod, TeacherModule, mlp
from .data import ClerfPairs, GeometricAugment
from .losses import circle_loss, clerf_masks

__all__ = ["ClerfMethod", "ClerfOptions"]


@dataclass
class ClerfOptions:
    pretrain_epochs: int = 4
    positive_mode: str = "direct"  # direct | roll_last
    delta_deg: float = 15.0        # negatives: geodesic distance above this
    pos_deg: float = 1.0           # same pose: below this
    margin: float = 0.25           # Circle loss m
    gamma: float = 64.0            # Circle loss scale
    embed_dim: int = 128
    hidden: int = 512
    encoder: str = "finetune"      # stage 2: frozen | finetune
    identities: int = 500          # positives' identity pool (train split)
    pose_on_positives: bool = False  # stage 2: also regress the positives (2x images and compute)
    head_hidden: list[int] = field(default_factory=list)  # stage 2: MLP widths before the 6D output; [] = linear
    geometric: dict = field(default_factory=dict)  # GeometricAugment fields


@register_method("clerf")
class ClerfMethod(TeacherMethod):
    Options = ClerfOptions

    def __init__(self, cfg, options=None):
        super().__init__(cfg, options)
        from ..config import ConfigError
        from ..errors import ModelError
        from ..models.heads import resolve_hidden

        if self.opt.encoder not in ("frozen", "finetune"):
            raise ConfigError(f"method.options.encoder must be frozen or finetune, got {self.opt.encoder!r}")
        if self.opt.positive_mode not in ("direct", "roll_last"):
            raise ConfigError(f"method.options.positive_mode must be direct or roll_last, got {self.opt.positive_mode!r}")
        if not 0 <= self.opt.pos_deg <= self.opt.delta_deg:
            raise ConfigError("method.options: need 0 <= pos_deg <= delta_deg")
        try:
            hidden = list(resolve_hidden(self.opt.head_hidden))
        except ModelError as exc:
            raise ConfigError(f"method.options.{exc}") from None
        if hidden:
            if cfg.model.head == "bins":
                raise ConfigError("method.options.head_hidden needs a 6D head: set model.head=6d (or 6d+bins)")
            given = cfg.model.kwargs.get("head_hidden")
            if given and list(given) != hidden:
                raise ConfigError(f"method.options.head_hidden={hidden} contradicts model.kwargs.head_hidden={given}; "
                                  f"set only one of them")
        self.geometric = GeometricAugment(**self.opt.geometric)

    def wrap_dataset(self, dataset, split):
        if split != "train":
            return dataset
        return ClerfPairs(dataset, self.geometric, self.opt.positive_mode, self.opt.identities, self.cfg.seed)

    def build(self, model_cfg, spec):
        if self.opt.head_hidden:  # the MLP head is a PoseModel option: it travels in model.kwargs
            model_cfg = replace(model_cfg, kwargs={**model_cfg.kwargs, "head_hidden": list(self.opt.head_hidden)})
        pose = self.build_pose(model_cfg, spec)
        proj = mlp(pose.num_features, self.opt.hidden, self.opt.embed_dim)
        return TeacherModule(pose, {"proj": proj})

    def step(self, core, batch):
        if self.stage == "pretrain":
            x = torch.cat([batch["image"], batch["image_pos"]], 0)
            R = torch.cat([batch["R"], batch["R_pos"]], 0).float()
            with self.autocast():
                z = core.extra["proj"](core.features(x))
            z = F.normalize(z.float(), dim=1)
            pos, neg = clerf_masks(R, self.opt.delta_deg, self.opt.pos_deg)
            loss = circle_loss(z @ z.t(), pos, neg, self.opt.margin, self.opt.gamma)
            return loss, {"circle": loss.detach(), "neg_frac": neg.float().mean()}
        x, b = self.pose_batch(batch)
        pm = core.pose_model
        with self.autocast():
            if self.opt.encoder == "frozen":
                pm.backbone.eval()  # frozen means frozen BatchNorm statistics too
                with torch.no_grad():
                    f = pm.forward_features(x)
                out = pm.forward_head(f.detach())
            else:
                out = core(x)
        return self.pose_loss(out, b)

    def pose_batch(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Stage-2 images and labels: the anchors, plus the positives with ``pose_on_positives``."""
        if not self.opt.pose_on_positives:
            return batch["image"], {"R": batch["R"], "euler": batch["euler"]}
        return (torch.cat([batch["image"], batch["image_pos"]], 0),
                {"R": torch.cat([batch["R"], batch["R_pos"]], 0),
                 "euler": torch.cat([batch["euler"], _euler(batch["R_pos"])], 0)})


def _euler(R: torch.Tensor) -> torch.Tensor:
    from ..geometry_torch import matrix_to_euler

    return matrix_to_euler(R.double()).float()
