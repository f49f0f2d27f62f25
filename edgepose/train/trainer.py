"""The teacher-training front end behind ``edgepose-train``.

:class:`Trainer` turns a :class:`~edgepose.train.config.TrainConfig` into datasets, a
:class:`~edgepose.methods.method.Method` and an :class:`~edgepose.train.engine.EngineConfig`, then lets the one
training engine (:mod:`edgepose.train.engine`: devices, DDP under ``torchrun``, AMP, optimizer, schedule, EMA,
resume, atomic checkpoints, logs) run it.  Per epoch the engine validates with
:func:`edgepose.metrics.pose_metrics` (keys ``val_<metric>``), appends a row to ``metrics.csv`` /
``metrics.jsonl`` and TensorBoard, writes ``last.pt`` and ``best.pt`` when ``val_<log.best_metric>`` improves.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import save_config, to_dict
from ..errors import DataError
from .config import TrainConfig
from .engine import Engine, EngineConfig, collate, resolve_device, seed_everything
from ..methods.method import Method, get_method

log = logging.getLogger(__name__)

__all__ = ["Trainer", "seed_everything", "resolve_device", "train", "engine_config"]


def engine_config(cfg: TrainConfig, method: Method | None = None) -> EngineConfig:
    """The engine settings of an ``edgepose-train`` config (``method``: its ``ddp_find_unused`` is ORed in)."""
    best = f"val_{cfg.log.best_metric}" if cfg.data.val else "train_loss"
    return EngineConfig(epochs=cfg.epochs, optim=cfg.optim, sched=cfg.sched, amp=cfg.amp, ema=cfg.ema,
                        channels_last=cfg.channels_last, device=cfg.device, deterministic=cfg.deterministic,
                        seed=cfg.seed, max_iters_per_epoch=cfg.max_iters_per_epoch,
                        ddp_find_unused=cfg.ddp_find_unused or bool(getattr(method, "ddp_find_unused", False)),
                        output=cfg.output, best_metric=best,
                        val_every=cfg.log.val_every, log_every=cfg.log.every, metrics_csv=cfg.log.csv,
                        tensorboard=cfg.log.tensorboard, desc="epoch")


class Trainer:
    """``Trainer(cfg).fit()``; ``on_epoch_end(epoch, row)`` callbacks may stop a run early."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None,
                 on_epoch_end: list[Callable[[int, dict], None]] | None = None):
        self.cfg = cfg
        self.resume = resume
        self.on_epoch_end = list(on_epoch_end or [])
        self.run_dir = Path(cfg.output)
        self.engine: Engine | None = None

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.engine.history if self.engine is not None else []

    # ------------------------------------------------------------------ set-up
    def _setup(self):
        cfg = self.cfg
        method_cls = get_method(cfg.method.name)
        self.method: Method = method_cls(cfg, cfg.method.options)
        self.engine = Engine(engine_config(cfg, self.method), self.method, on_epoch_end=self.on_epoch_end)
        self.dist, self.device = self.engine.dist, self.engine.device
        if self.dist.is_main:
            self._check_run_dir()
        self.spec = self._preprocess_spec()
        self.train_set = self._dataset(cfg.data.train, augment=cfg.data.augment, split="train")
        self.val_set = self._dataset(cfg.data.val, augment=None, split="val") if cfg.data.val else None
        self.module = self.method.build(cfg.model, self.spec)
        loader = self.engine.loader(self.train_set, cfg.batch_size, cfg.workers, train=True)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
        return loader

    _OUTPUTS = ("last.pt", "best.pt", "config.yaml", "metrics.csv", "metrics.jsonl")

    def _check_run_dir(self) -> None:
        """Before datasets load: the run folder is not a dataset's folder, no file the run writes is a
        dataset file, and the folder is writable; temporaries of a save killed mid-write are removed
        (atomic writes leave ``.NAME.XXXX.tmp`` behind only when the process dies inside one)."""
        from ..io_safety import check_outputs, paths_in, remove_stale_temporaries

        data = [self.cfg.data.train, self.cfg.data.val]
        inputs = [p for i, d in enumerate(data) if isinstance(d, dict)
                  for p in paths_in(f"data.{('train', 'val')[i]}", d)]
        check_outputs(inputs, [(f"output {name}", self.run_dir / name) for name in self._OUTPUTS],
                      dir_outputs=[("output", self.run_dir)])
        for tmp, size in remove_stale_temporaries(self.run_dir, self._OUTPUTS):
            log.warning("removed %s (%.1f MB), left by a checkpoint write that was killed", tmp, size / 1e6)

    def _preprocess_spec(self):
        from ..methods.model_setup import training_spec

        return training_spec(self.cfg.model, self.cfg.data.crop_scale, self.cfg.data.color_order)

    def _dataset(self, ds_cfg: dict, augment, split: str):
        from ..data.options import build_split

        ds = self.method.wrap_dataset(build_split(ds_cfg, self.spec, augment, split), split)
        if len(ds) == 0:
            raise DataError(f"data.{split} is empty ({ds_cfg}); check the path and the filters")
        log.info("data.%s: %d samples", split, len(ds))
        if split == "train" and self.cfg.data.repeat > 1:
            from torch.utils.data import ConcatDataset

            ds = ConcatDataset([ds] * self.cfg.data.repeat)
        return ds

    # ------------------------------------------------------------------ run
    def fit(self) -> dict[str, Any]:
        """Train; returns the last epoch's log row plus the checkpoint paths."""
        loader = self._setup()
        provenance = {"trainer": "edgepose-train", "method": self.cfg.method.name,
                      "data": to_dict(self.cfg.data.train)}
        return self.engine.fit(self.module, loader, validate=self._validate if self.val_set is not None else None,
                               resume=self.resume, provenance=provenance,
                               checkpoint_extra={"config": to_dict(self.cfg)})

    # ------------------------------------------------------------------ validation
    def _validate(self, pose) -> dict[str, float]:
        """Metrics of the deployable pose model on the validation set (the engine calls it in eval mode)."""
        import torch

        from ..metrics import pose_metrics

        preds, gts, eulers = [], [], []
        for batch in self._val_loader():
            x = batch["image"].to(self.device)
            if self.cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            preds.append(pose(x)["R"].float().cpu().numpy())
            gts.append(batch["R"].numpy())
            eulers.append(batch["euler"].numpy() if "euler" in batch else None)
        # the Euler MAE against the dataset's own labels (decoding R would fold |yaw| > 90)
        euler_gt = None if any(e is None for e in eulers) else np.concatenate(eulers)
        m = pose_metrics(np.concatenate(preds), np.concatenate(gts), euler_gt=euler_gt, aligned=False)
        return {f"val_{k}": v for k, v in m.items()}

    def _val_loader(self):
        from torch.utils.data import DataLoader

        if not hasattr(self, "_val_dl"):
            self._val_dl = DataLoader(self.val_set, batch_size=self.cfg.batch_size, shuffle=False,
                                      num_workers=self.cfg.workers, collate_fn=collate)
        return self._val_dl


def train(cfg: TrainConfig, resume: str | Path | None = None) -> dict[str, Any]:
    return Trainer(cfg, resume=resume).fit()
