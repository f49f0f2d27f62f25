"""Learning-rate schedules as per-iteration multipliers (one LambdaLR, stepped every iteration).

A per-iteration schedule makes warm-up smooth for short runs and keeps resume exact: the
scheduler's only state is its step counter, saved in every checkpoint.
"""
from __future__ import annotations

import math

from .config import SchedConfig

__all__ = ["lr_factor", "build_scheduler"]


def lr_factor(step: int, cfg: SchedConfig, iters_per_epoch: int, epochs: int) -> float:
    """Multiplier of the base lr at iteration ``step`` (0-based)."""
    iters_per_epoch = max(1, iters_per_epoch)
    total = max(1, iters_per_epoch * epochs)
    warmup = max(int(round(cfg.warmup_epochs * iters_per_epoch)), cfg.warmup_iters)
    if warmup > 0 and step < warmup:
        return cfg.warmup_start + (1.0 - cfg.warmup_start) * step / warmup
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "step":
        epoch = step // iters_per_epoch
        return cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
    # cosine from the end of warm-up to the last iteration
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(optimizer, cfg: SchedConfig, iters_per_epoch: int, epochs: int):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg, iters_per_epoch, epochs))
