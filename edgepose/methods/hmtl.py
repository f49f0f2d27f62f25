"""``method.name: hmtl`` -- hybrid multi-task learning (Pourmirzaei et al., arXiv 2108.04893;
docs/teachers.md): rotation-prediction pre-training, then pose + a jigsaw auxiliary head.

Stage 1 (``epoch < pretrain_epochs``): every crop rotated CCW by 0/90/180/270 deg, 4-way CE from
a linear head on the trunk features.
Stage 2: the pose loss (``loss`` section: geodesic, + LDL / HopeNet terms on a bins head) on the
UNTRANSFORMED image, plus ``jigsaw_weight`` x CE over ``permutations`` Hamming-distant tile
orders on the image's own tiled-and-shuffled copy (3x3 grid), through the same trunk.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .method import register_method
from .base import TeacherMethod, TeacherModule, mlp
from .ssl import jigsaw_batch, jigsaw_permutations, rotation_batch

__all__ = ["HMTLMethod", "HMTLOptions"]


@dataclass
class HMTLOptions:
    pretrain_epochs: int = 3
    permutations: int = 30
    grid: int = 3
    jigsaw_weight: float = 0.5
    hidden: int = 512
    rotation_pretrain: bool = True  # false: no stage 1 even if pretrain_epochs > 0 (jigsaw-only ablation)


@register_method("hmtl")
class HMTLMethod(TeacherMethod):
    Options = HMTLOptions

    def __init__(self, cfg, options=None):
        super().__init__(cfg, options)
        from ..config import ConfigError

        if self.opt.jigsaw_weight < 0:
            raise ConfigError(f"method.options.jigsaw_weight must be >= 0, got {self.opt.jigsaw_weight}")
        if not self.opt.rotation_pretrain:
            self.opt.pretrain_epochs = 0
            self.stage = "pose"
        self.perms = jigsaw_permutations(self.opt.permutations, self.opt.grid, seed=0)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def build(self, model_cfg, spec):
        pose = self.build_pose(model_cfg, spec)
        c = pose.num_features
        return TeacherModule(pose, {"rotation": torch.nn.Linear(c, 4),
                                    "jigsaw": mlp(c, self.opt.hidden, len(self.perms))})

    def step(self, core, batch):
        x = batch["image"]
        if self.stage == "pretrain":
            xr, k = rotation_batch(x)
            with self.autocast():
                logits = core.extra["rotation"](core.features(xr)).float()
            loss = F.cross_entropy(logits, k)
            acc = (logits.argmax(1) == k).float().mean()
            return loss, {"rotation_ce": loss.detach(), "rotation_acc": acc}
        with self.autocast():
            out = core(x)  # the pose loss sees the untransformed image
        loss, logs = self.pose_loss(out, batch)
        if self.opt.jigsaw_weight > 0:
            xj, perm = jigsaw_batch(x, self.perms, self.gen, self.opt.grid)
            with self.autocast():
                jl = core.extra["jigsaw"](core.features(xj)).float()
            l_jig = F.cross_entropy(jl, perm)
            loss = loss + self.opt.jigsaw_weight * l_jig
            logs = {**logs, "jigsaw_ce": l_jig.detach(), "jigsaw_acc": (jl.argmax(1) == perm).float().mean(),
                    "total": loss.detach()}
        return loss, logs
