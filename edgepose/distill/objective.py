"""Distillation as a training method: the engine (:mod:`edgepose.train.engine`) runs it like LDL or CLERF.

The trainable module is the student plus the distillation loss (whose feature projection has weights),
so that under DDP both are inside the wrapped module's ``forward`` and their gradients are synchronised.
The teacher is frozen: in ``online`` mode it labels every (jittered) crop of the batch, in ``cached``
mode its flip-averaged rotations come with the batch (``R_t``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgepose.methods.method import Method

__all__ = ["DistillModule", "DistillObjective"]


class DistillModule(nn.Module):
    """Student + loss; ``forward`` returns ``(loss, parts)`` so DDP sees every trainable weight."""

    def __init__(self, student: nn.Module, criterion: nn.Module):
        super().__init__()
        self.pose_model = student  # what checkpoints, validation and export see
        self.criterion = criterion

    def forward(self, x: torch.Tensor, t_out: dict, R_gt: torch.Tensor, has_gt: torch.Tensor):
        return self.criterion(self.pose_model(x), t_out, R_gt, has_gt)


class DistillObjective(Method):
    """One batch -> the teacher's targets -> :class:`edgepose.distill.losses.DistillLoss`."""

    name = "distill"

    def __init__(self, cfg: Any, teacher: nn.Module | None, cached: bool, datasets: list | None = None):
        super().__init__(cfg, None)
        self.teacher, self.cached = teacher, cached
        self.datasets = list(datasets or [])

    def on_epoch_start(self, epoch: int) -> None:
        for ds in self.datasets:  # crops and augmentation are a function of (seed, epoch, index)
            ds.epoch = epoch + 1
        if self.teacher is not None and self.device is not None:
            self.teacher.to(self.device)

    def training_step(self, batch: dict, model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        if self.cached:
            t_out = {"R": batch["R_t"]}
        else:
            with torch.no_grad():
                t_out = self.teacher(batch["teacher"])
        with self.autocast():
            loss, parts = model(batch["student"], t_out, batch["R"], batch["has_gt"])
        return loss.float(), parts
