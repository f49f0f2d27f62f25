"""``method.name: simclr`` -- plain SimCLR-style contrast, then the same frozen-encoder linear probe as PCL.

PCL's claim (Liu et al., CVPR 2023) is that *pose-disentangled* contrastive features read pose better with a
linear probe than plain contrastive features; this is the plain side of that comparison, on the same data,
trunk, budget and probe (:class:`edgepose.methods.pcl.PCLMethod`'s stage 2, BatchNorm folded into the head).

Stage 1 (``epoch < pretrain_epochs``): two views of every crop -- the photometric jitter of PCL
(:func:`edgepose.methods.pcl.photometric`) and, per view, a horizontal flip with probability ``flip_p``
(SimCLR's default augmentations include the flip; a flip changes the pose, which is exactly why plain
contrast learns pose-invariant features) -- a projection MLP, and NT-Xent (temperature ``temperature``)
with the other 2N - 2 views of the batch as negatives (Chen et al., 2020).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import TeacherModule, mlp
from .method import register_method
from .pcl import PCLMethod, photometric

__all__ = ["SimCLRMethod", "SimCLROptions", "nt_xent"]


@dataclass
class SimCLROptions:
    pretrain_epochs: int = 4
    hidden: int = 512
    embed_dim: int = 128
    temperature: float = 0.2
    flip_p: float = 0.5


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2N l2-normalised embeddings: view i's positive is its other view, the rest are negatives."""
    z = torch.cat([z1, z2], 0)
    n = z1.shape[0]
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


@register_method("simclr")
class SimCLRMethod(PCLMethod):
    Options = SimCLROptions

    def build(self, model_cfg, spec):
        pose = self.build_pose(model_cfg, spec)
        c = pose.num_features
        return TeacherModule(pose, {"proj": mlp(c, self.opt.hidden, self.opt.embed_dim),
                                    "probe_bn": nn.BatchNorm1d(c, affine=False)})

    def on_epoch_start(self, epoch):  # no DWA here: one loss
        self.stage = "pretrain" if epoch < self.opt.pretrain_epochs else "pose"

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        flip = (torch.rand(x.shape[0], generator=self.gen) < self.opt.flip_p).to(x.device)
        x = torch.where(flip[:, None, None, None], torch.flip(x, dims=(3,)), x)
        return photometric(x, self.gen)

    def step(self, core, batch):
        if self.stage == "pose":
            return self._probe_step(batch, core)
        s = batch["image"]
        with self.autocast():
            z = core.extra["proj"](core.features(torch.cat([self._view(s), self._view(s)], 0)))
        z = F.normalize(z.float(), dim=1)
        loss = nt_xent(z[:s.shape[0]], z[s.shape[0]:], self.opt.temperature)
        return loss, {"nt_xent": loss.detach()}
