"""Shared pieces of the teacher methods: option parsing, the trainable wrapper and staging.

A teacher run is ONE ``edgepose-train`` run with two stages chosen by epoch:
``epoch < pretrain_epochs`` -> the method's self-supervised / contrastive stage, then the pose
stage.  The stage depends only on the epoch, so ``--resume`` lands in the right one.
"""
from __future__ import annotations

from dataclasses import fields

import torch
from torch import nn

from ..config import ConfigError, from_dict
from .method import Method, build_criterion
from .model_setup import build_pose_model

__all__ = ["TeacherModule", "TeacherMethod", "parse_options", "mlp"]


def parse_options(cls, options: dict, method: str):
    """``method.options`` -> dataclass; unknown keys fail with the list of valid ones."""
    valid = {f.name for f in fields(cls)}
    bad = set(options) - valid
    if bad:
        raise ConfigError(f"method.options: unknown key(s) {sorted(bad)} for method {method!r}; "
                          f"valid: {sorted(valid)}")
    return from_dict(cls, dict(options), prefix="method.options.")


def mlp(d_in: int, d_hidden: int, d_out: int, bn_out: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(d_in, d_hidden), nn.BatchNorm1d(d_hidden), nn.ReLU(inplace=True),
                               nn.Linear(d_hidden, d_out)]
    if bn_out:
        layers.append(nn.BatchNorm1d(d_out))
    return nn.Sequential(*layers)


class TeacherModule(nn.Module):
    """The deployable ``pose_model`` plus the method's training-only heads (``extra``)."""

    def __init__(self, pose_model: nn.Module, extra: dict[str, nn.Module]):
        super().__init__()
        self.pose_model = pose_model
        self.extra = nn.ModuleDict(extra)

    def forward(self, x, step=None):
        """The pose path; with ``step``, one training step ``step(self, x)`` of the method instead. A step runs
        inside this ONE forward so that DistributedDataParallel sees every parameter it uses (its heads, the
        trunk used twice) and every one it leaves idle; calling ``model.module.extra[...]`` outside the wrapper's
        forward would bypass DDP's gradient hooks."""
        return self.pose_model(x) if step is None else step(self, x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pose_model.forward_features(x)


class TeacherMethod(Method):
    """Base: options dataclass ``Options`` with ``pretrain_epochs``; stage by epoch; pose criterion
    from the ``loss`` section (so ``loss.ldl > 0`` on a ``6d+bins`` head adds LDL to any teacher)."""

    Options: type = None  # set by subclasses
    ddp_find_unused = True  # each stage leaves the other stage's heads (or the frozen encoder) without gradients

    def __init__(self, cfg, options=None):
        super().__init__(cfg, options)
        self.opt = parse_options(self.Options, self.options, self.name)
        pe = getattr(self.opt, "pretrain_epochs", 0)
        if pe < 0 or pe >= cfg.epochs:
            raise ConfigError(f"method.options.pretrain_epochs must be in [0, epochs) = [0, {cfg.epochs}), "
                              f"got {pe}; the pose stage needs at least one epoch")
        self.stage = "pretrain" if pe > 0 else "pose"
        self.criterion = None

    def build_pose(self, model_cfg, spec):
        pose = build_pose_model(model_cfg, spec)
        self.criterion = build_criterion(self.cfg.loss, pose)
        return pose

    def on_epoch_start(self, epoch: int) -> None:
        self.stage = "pretrain" if epoch < getattr(self.opt, "pretrain_epochs", 0) else "pose"

    def training_step(self, batch, model):
        return model(batch, step=self.step)

    def step(self, core: TeacherModule, batch: dict):
        """One batch -> ``(loss, logs)`` on the unwrapped module (runs inside the DDP wrapper's forward)."""
        raise NotImplementedError

    def pose_loss(self, out: dict, batch: dict):
        return self.criterion(self.float_outputs(out), batch["R"], batch.get("euler"))
