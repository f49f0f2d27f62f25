"""Quantization-aware fine-tuning (QAT) of a distilled student, distilled from its own FP32 self.

What the INT8 ``tensorrt`` profile does to the backbone is simulated in PyTorch and the student is
fine-tuned to match the frozen FP32 student's rotations (geodesic loss) on unlabelled in-domain
crops (the calibration crops):

* every Conv + BatchNorm pair is folded first (BN statistics frozen), because TensorRT and ORT
  quantize the *folded* weights;
* weights: symmetric per-output-channel INT8, scale = max|w| / 127 (what ORT's per-channel
  symmetric MinMax weight quantizer computes);
* activations: symmetric per-tensor INT8 on every conv input, scale = calibrated max|x| / 127
  (MinMax over the first ``calib_batches`` batches, then frozen);
* straight-through gradients (``torch.fake_quantize_per_*_affine``); the head stays float.

After fine-tuning the folded weights are written back into the ordinary Conv + BN modules (BN
set to an exact identity-plus-bias), so the result is a normal checkpoint: ``edgepose export`` it
and quantize it with the same ``tensorrt`` profile (Q/DQ lint included).  That keeps one Q/DQ
writer (ORT) for PTQ and QAT; the weight quantizer is identical, the activation ranges are
re-calibrated by MinMax on the same crops.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgepose.errors import UserError
from edgepose.methods.method import Method

__all__ = ["FakeQuantConv", "prepare_qat", "convert_back", "qat_finetune", "QATObjective"]

log = logging.getLogger(__name__)

_QMAX = 127


class FakeQuantConv(nn.Module):
    """A Conv2d with its BatchNorm folded in, INT8 fake quantization on its input and weights."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None):
        super().__init__()
        w = conv.weight.detach().clone()
        b = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(w.shape[0])
        if bn is not None:
            k = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            w = w * k.view(-1, 1, 1, 1)
            b = (b - bn.running_mean) * k + bn.bias.detach()
        self.weight, self.bias = nn.Parameter(w), nn.Parameter(b)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.register_buffer("act_amax", torch.zeros(()))
        self.calibrating = True

    def weight_scale(self) -> torch.Tensor:
        return (self.weight.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / _QMAX).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.act_amax = torch.maximum(self.act_amax, x.detach().abs().max())
        else:
            scale = float(self.act_amax.clamp_min(1e-8)) / _QMAX
            x = torch.fake_quantize_per_tensor_affine(x, scale, 0, -_QMAX - 1, _QMAX)
        ws = self.weight_scale()
        wq = torch.fake_quantize_per_channel_affine(self.weight, ws, torch.zeros_like(ws, dtype=torch.int32), 0,
                                                    -_QMAX, _QMAX)
        return F.conv2d(x, wq, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _pairs(module: nn.Module):
    """(parent, conv name, bn name or None) for every Conv2d: ``convN``/``bnN`` siblings, or
    ``Sequential(Conv2d, BatchNorm2d, ...)`` neighbours (ResNet, RepVGG-style blocks)."""
    for parent in module.modules():
        children = dict(parent.named_children())
        for name, child in children.items():
            if not isinstance(child, nn.Conv2d):
                continue
            bn = None
            if name.startswith("conv") and isinstance(children.get("bn" + name[4:]), nn.BatchNorm2d):
                bn = "bn" + name[4:]
            elif isinstance(parent, nn.Sequential) and name.isdigit():
                nxt = children.get(str(int(name) + 1))
                bn = str(int(name) + 1) if isinstance(nxt, nn.BatchNorm2d) else None
            yield parent, name, bn


def prepare_qat(model) -> list[tuple]:
    """Replace the backbone's Conv(+BN) by :class:`FakeQuantConv` in place; returns the swaps made.

    Raises :class:`UserError` if a BatchNorm is left unfolded (an unknown block layout)."""
    swaps = []
    for parent, cname, bname in list(_pairs(model.backbone)):
        conv = getattr(parent, cname)
        bn = getattr(parent, bname) if bname else None
        fq = FakeQuantConv(conv, bn)
        setattr(parent, cname, fq)
        if bname:
            setattr(parent, bname, nn.Identity())
        swaps.append((parent, cname, bname, conv, bn, fq))
    left = [n for n, m in model.backbone.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise UserError(f"QAT cannot fold {len(left)} BatchNorm layer(s) of {model.name} ({left[:3]}); it supports "
                        "conv/bn-named or Sequential(Conv2d, BatchNorm2d) blocks (ResNet, RepVGG)")
    if not swaps:
        raise UserError(f"{model.name} has no Conv2d layers to quantize")
    return swaps


@torch.no_grad()
def convert_back(swaps: list[tuple]) -> None:
    """Write the fine-tuned folded weights back into the original Conv + BN modules (BN = identity
    plus the folded bias: mean 0, var 1 - eps, gamma 1), so the model is a normal checkpoint again."""
    for parent, cname, bname, conv, bn, fq in swaps:
        conv.weight.copy_(fq.weight)
        if bn is None:
            if conv.bias is None:
                conv.bias = nn.Parameter(fq.bias.detach().clone())
            else:
                conv.bias.copy_(fq.bias)
        else:
            if conv.bias is not None:
                conv.bias.zero_()
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(fq.bias)
            setattr(parent, bname, bn)
        setattr(parent, cname, conv)


class _CropStream(torch.utils.data.Dataset):
    """``steps * batch_size`` views: item i is crop ``randint(N)``, mirrored with probability 1/2, drawn
    from ``(seed, i)`` -- the same views for any number of workers or processes."""

    def __init__(self, crops: torch.Tensor, n: int, seed: int):
        self.crops, self.n, self.seed = crops, n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, i))
        x = self.crops[int(rng.integers(len(self.crops)))]
        return {"image": x.flip(-1) if rng.random() < 0.5 else x}


class QATObjective(Method):
    """Match the frozen FP32 copy's rotations (geodesic) under fake quantization, in eval mode."""

    name = "qat"

    def __init__(self, teacher: nn.Module):
        super().__init__(None, None)
        self.teacher = teacher
        self.losses: list[float] = []

    def train_mode(self, model: nn.Module) -> None:
        model.eval()  # BN is folded; eval also keeps dropout off

    def training_step(self, batch: dict, model: nn.Module):
        from edgepose.losses import geodesic_loss

        x = batch["image"]
        with torch.no_grad():
            R_t = self.teacher(x)["R"]
        loss = geodesic_loss(model(x)["R"], R_t)
        self.losses.append(float(loss.detach()))
        return loss, {}


def qat_finetune(model, crops: np.ndarray, steps: int = 200, batch_size: int = 16, lr: float = 1e-5,
                 calib_batches: int = 8, seed: int = 0, progress: bool = True) -> dict:
    """Fine-tune ``model`` (a PoseModel) in place under INT8 fake quantization; returns a summary.

    ``crops``: (N, C, S, S) preprocessed unlabelled inputs.  The frozen FP32 copy of the model is
    the teacher (geodesic loss between rotations); random horizontal flips double the views.  The
    steps run through the training engine (Adam, cosine schedule, one epoch of ``steps`` batches).
    """
    import copy

    from edgepose.train.config import OptimConfig, SchedConfig
    from edgepose.train.engine import Engine, EngineConfig

    if steps < 1 or batch_size < 1:
        raise UserError(f"QAT needs steps >= 1 and batch_size >= 1 (got {steps}, {batch_size})")
    x_all = torch.from_numpy(np.asarray(crops, np.float32))
    if x_all.ndim != 4 or len(x_all) == 0:
        raise UserError(f"QAT crops must be a non-empty (N, C, S, S) array, got shape {tuple(x_all.shape)}")
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    model.eval()
    swaps = prepare_qat(model)
    fqs = [s[-1] for s in swaps]
    with torch.no_grad():  # MinMax activation ranges, as the PTQ calibration does
        for i in range(0, len(x_all), batch_size)[:calib_batches]:
            model(x_all[i:i + batch_size])
    for fq in fqs:
        fq.calibrating = False
    bs = min(batch_size, len(x_all))
    objective = QATObjective(teacher)
    engine = Engine(EngineConfig(epochs=1, optim=OptimConfig(name="adam", lr=lr, weight_decay=0.0),
                                 sched=SchedConfig(name="cosine"), device="cpu", seed=seed, progress=progress,
                                 desc="QAT"), objective)
    loader = engine.loader(_CropStream(x_all, steps * bs, seed), bs, train=False, drop_last=False)
    engine.fit(model, loader)
    convert_back(swaps)
    losses = objective.losses
    k = max(1, len(losses) // 10)
    return {"steps": steps, "batch_size": batch_size, "lr": lr, "layers": len(fqs),
            "loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:]))}
