"""``method.name: pcl`` -- pose-disentangled contrastive learning (Liu et al., CVPR'23;
docs/teachers.md), adapted to any edgepose backbone.

Stage 1 (``epoch < pretrain_epochs``), per batch of crops s and their horizontal flips f:

* face and pose branches (MLPs) on the shared trunk features (``PoseModel.forward_features``);
* flip-swap reconstruction: a decoder (Linear -> 4x4 map -> 4 x {upsample x2, conv, BN, ReLU}
  -> 3 x ``recon_size``) reconstructs, with L1 against the downsampled input,
  dec(face_f + pose_s) ~ s, dec(face_s + pose_f) ~ f, dec(face_s + pose_s) ~ s, dec(face_f + pose_f) ~ f;
* orthogonality: :func:`diff_loss` on (face_s, pose_s) and (face_f, pose_f);
* pose contrast: InfoNCE (T = 0.07) with the positive = another augmentation of the same image
  and negatives = ``pose_negatives`` augmentations of its flip, mixed up (Beta(1.6, 1.6));
* face contrast: InfoNCE (T = 0.07) between two augmentations, the other images of the batch as
  (mixed-up) negatives;
* the two contrast losses weighted by DWA (T = 2) from the previous two epochs' averages.

Stage 2 -- linear probe: the encoder is frozen (eval mode, no gradients); BatchNorm1d (no affine)
+ the PoseModel's linear head (6D, + bins with LDL when configured) trained with the ``loss``
section.  The BatchNorm is folded into the linear layer for validation, checkpoints and export,
so the deployed PoseModel computes exactly the probe.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ConfigError
from .method import register_method
from .base import TeacherMethod, TeacherModule, mlp
from .losses import diff_loss, dwa_weights, info_nce, mix_negatives

__all__ = ["PCLMethod", "PCLOptions", "ReconDecoder", "fold_probe", "photometric"]


@dataclass
class PCLOptions:
    pretrain_epochs: int = 4
    branch_dim: int = 256
    embed_dim: int = 128
    recon_size: int = 64
    recon_channels: int = 64       # decoder width; the decoder dominates a CPU step at 64 px (4 n maps)
    pose_negatives: int = 4        # augmentations of the flipped image (the paper: 100)
    temperature: float = 0.07
    mixup_alpha: float = 1.6
    dwa_temperature: float = 2.0
    recon_noise: float = 0.4       # Gaussian input noise of the reconstruction step (paper: 0.4)
    w_recon: float = 1.0
    w_orth: float = 1.0


class ReconDecoder(nn.Module):
    """Branch features -> (3, size, size) image; ``size`` = 4 * 2^k."""

    def __init__(self, d_in: int, size: int = 64, ch: int = 64):
        super().__init__()
        if ch < 1:
            raise ValueError(f"recon_channels must be >= 1, got {ch}")
        k = (size // 4).bit_length() - 1
        if 4 * 2 ** k != size:
            raise ValueError(f"recon_size must be 4 * 2^k (16, 32, 64, ...), got {size}")
        self.ch = ch
        self.fc = nn.Linear(d_in, ch * 16)
        blocks = []
        for _ in range(k):
            blocks += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*blocks)
        self.out = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.up(self.fc(z).view(-1, self.ch, 4, 4)))


def photometric(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image colour jitter (gain, bias, per-channel tint), grayscale p = 0.2, noise -- on
    normalised tensors; geometry untouched (the pose of a view must not change)."""
    n = x.shape[0]
    r = lambda *s: torch.rand(*s, generator=generator).to(x)  # noqa: E731
    gain = 0.6 + 0.8 * r(n, 1, 1, 1)
    tint = 0.85 + 0.3 * r(n, x.shape[1], 1, 1)
    bias = (r(n, 1, 1, 1) - 0.5) * 0.8
    y = x * gain * tint + bias
    gray = (r(n, 1, 1, 1) < 0.2).to(x)
    y = gray * y.mean(1, keepdim=True).expand_as(y) + (1 - gray) * y
    return y + 0.05 * torch.randn(y.shape, generator=generator).to(x)


def fold_probe(pose_model: nn.Module, bn: nn.BatchNorm1d) -> nn.Module:
    """A copy of ``pose_model`` whose head Linear layers absorb a non-affine BatchNorm1d in eval
    mode: W (x - mu) / sigma + b == (W / sigma) x + (b - W mu / sigma)."""
    folded = copy.deepcopy(pose_model)
    sigma = torch.sqrt(bn.running_var + bn.eps)
    mu = bn.running_mean
    with torch.no_grad():
        for m in folded.head.modules():
            if isinstance(m, nn.Linear):
                w = m.weight / sigma
                m.bias.copy_(m.bias - w @ mu)
                m.weight.copy_(w)
    return folded


@register_method("pcl")
class PCLMethod(TeacherMethod):
    Options = PCLOptions

    def __init__(self, cfg, options=None):
        super().__init__(cfg, options)
        if cfg.model.kwargs.get("head_hidden"):
            # The probe must stay linear: fold_probe folds the BatchNorm into every Linear of the
            # head, which is exact only when one Linear reads the features directly.
            raise ConfigError("method pcl trains a linear probe; remove model.kwargs.head_hidden (the MLP 6D head)")
        self.history: list[list[float]] = []  # per-epoch (face, pose) contrast losses, for DWA
        self._sums = [0.0, 0.0, 0]
        self.weights = [1.0, 1.0]
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def build(self, model_cfg, spec):
        pose = self.build_pose(model_cfg, spec)
        c, d, o = pose.num_features, self.opt.branch_dim, self.opt
        extra = {
            "face": mlp(c, c, d), "pose": mlp(c, c, d),
            "face_fc": mlp(d, d, o.embed_dim, bn_out=True), "pose_fc": mlp(d, d, o.embed_dim, bn_out=True),
            "decoder": ReconDecoder(d, o.recon_size, o.recon_channels),
            "probe_bn": nn.BatchNorm1d(c, affine=False),
        }
        return TeacherModule(pose, extra)

    def pose_model(self, module):
        module = getattr(module, "module", module)
        if self.stage == "pose" and module.extra["probe_bn"].num_batches_tracked > 0:
            return fold_probe(module.pose_model, module.extra["probe_bn"])
        return module.pose_model

    def on_epoch_start(self, epoch):
        prev_stage = self.stage
        super().on_epoch_start(epoch)
        if prev_stage == "pretrain" and self._sums[2] > 0:
            self.history.append([self._sums[0] / self._sums[2], self._sums[1] / self._sums[2]])
        self._sums = [0.0, 0.0, 0]
        self.weights = dwa_weights(self.history, self.opt.dwa_temperature) if self.history else [1.0, 1.0]

    def state_dict(self):
        return {"history": self.history}

    def load_state_dict(self, state):
        self.history = [list(h) for h in state.get("history", [])]

    def step(self, core, batch):
        if self.stage == "pose":
            return self._probe_step(batch, core)
        o, ex, g = self.opt, core.extra, self.gen
        s = batch["image"]
        f = torch.flip(s, dims=(3,))
        n = s.shape[0]
        with self.autocast():
            # reconstruction + orthogonality on (noisy) s and f
            noisy = torch.cat([s, f], 0)
            noisy = noisy + o.recon_noise * torch.randn(noisy.shape, generator=g).to(noisy)
            t = core.features(noisy)
            face, pose = ex["face"](t).float(), ex["pose"](t).float()
            fs, ff, ps, pf = face[:n], face[n:], pose[:n], pose[n:]
            dec = ex["decoder"]
            z = lambda a, b: F.normalize(a + b, dim=1)  # noqa: E731
            rec = dec(torch.cat([z(ff, ps), z(fs, pf), z(fs, ps), z(ff, pf)], 0)).float()
            tgt = F.interpolate(torch.cat([s, f, s, f], 0), size=(o.recon_size,) * 2, mode="bilinear",
                                align_corners=False)
            l_rec = F.l1_loss(rec, tgt.float())
            l_orth = diff_loss(fs, ps) + diff_loss(ff, pf)

            # contrast views: two augmentations of s, K of f
            k = o.pose_negatives
            views = torch.cat([photometric(s, g), photometric(s, g)] + [photometric(f, g) for _ in range(k)], 0)
            tv = core.features(views)
            face_v = F.normalize(ex["face_fc"](ex["face"](tv)).float(), dim=1)
            pose_v = F.normalize(ex["pose_fc"](ex["pose"](tv)).float(), dim=1)
        q_p, k_p = pose_v[:n], pose_v[n:2 * n]
        neg_p = pose_v[2 * n:].view(k, n, -1).transpose(0, 1)  # (N, K, D): flips of the same image
        l_pose = info_nce(q_p, k_p, mix_negatives(neg_p, o.mixup_alpha, g), o.temperature)
        q_f, k_f = face_v[:n], face_v[n:2 * n]
        others = k_f.unsqueeze(0).expand(n, n, -1)
        mask = ~torch.eye(n, dtype=torch.bool, device=s.device)
        neg_f = others[mask].view(n, n - 1, -1)  # the other images of the batch
        l_face = info_nce(q_f, k_f, mix_negatives(neg_f, o.mixup_alpha, g), o.temperature)
        w_face, w_pose = self.weights
        loss = o.w_recon * l_rec + o.w_orth * l_orth + w_face * l_face + w_pose * l_pose
        self._sums[0] += float(l_face.detach()) * n
        self._sums[1] += float(l_pose.detach()) * n
        self._sums[2] += n
        return loss, {"recon": l_rec.detach(), "orth": l_orth.detach(), "face_nce": l_face.detach(),
                      "pose_nce": l_pose.detach(), "w_face": torch.tensor(w_face), "w_pose": torch.tensor(w_pose)}

    def _probe_step(self, batch, core):
        pm = core.pose_model
        pm.backbone.eval()  # frozen encoder: no gradients, no BatchNorm statistics updates
        with torch.no_grad(), self.autocast():
            feat = pm.forward_features(batch["image"]).float()
        out = pm.forward_head(core.extra["probe_bn"](feat))
        return self.pose_loss(out, batch)
