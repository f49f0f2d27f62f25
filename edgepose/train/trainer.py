"""The training loop behind ``edgepose-train``.

One :class:`Trainer` runs a :class:`~edgepose.train.config.TrainConfig` on the CPU, one GPU or
several GPUs under ``torchrun`` (DDP).  Per epoch: train with a tqdm bar (loss, lr, images/s),
validate with :func:`edgepose.metrics.pose_metrics`, append a CSV row and TensorBoard scalars,
write ``last.pt`` atomically and ``best.pt`` when the validation metric improves.  Only rank 0
writes files.  ``resume`` continues from ``last.pt`` with the optimiser, scheduler, scaler, RNG
state and logs restored; every epoch also re-seeds Python, NumPy and torch from
``seed + 1000 * epoch + rank`` (the data workers derive their seeds from torch's) and reshuffles
the sampler with ``seed + epoch``, so the data order and augmentation of an epoch never depend on
how the run got there.
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import save_config, to_dict
from ..errors import DataError, UserError
from ..metadata import atomic_write_text
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .distributed import DistInfo, all_reduce_mean, barrier, cleanup_distributed, init_distributed
from .method import Method, get_method

log = logging.getLogger(__name__)

__all__ = ["Trainer", "seed_everything", "resolve_device", "train"]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; derive numpy/python seeds from it so
    # augmentation in workers is reproducible and differs between workers
    import torch

    s = torch.initial_seed() % (2 ** 32)
    random.seed(s)
    np.random.seed(s)


def resolve_device(name: str, dist: DistInfo):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
        if dist.enabled:
            return torch.device("cuda", dist.local_rank)
    return torch.device(name)


class Trainer:
    """``Trainer(cfg).fit()``; ``on_epoch_end(epoch, row)`` callbacks may stop a run early."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None,
                 on_epoch_end: list[Callable[[int, dict], None]] | None = None):
        self.cfg = cfg
        self.resume = resume
        self.on_epoch_end = list(on_epoch_end or [])
        self.run_dir = Path(cfg.output)
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.start_epoch = 0
        self.global_step = 0
        self.tb = None

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        import torch

        cfg = self.cfg
        device_type = "cuda" if cfg.device.startswith("cuda") or (
            cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        self.dist = init_distributed(device_type)
        self.device = resolve_device(cfg.device, self.dist)
        if cfg.deterministic:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        seed_everything(cfg.seed + self.dist.rank)
        if self.dist.is_main:
            self._check_run_dir()

        method_cls = get_method(cfg.method.name)
        self.method: Method = method_cls(cfg, cfg.method.options)
        self.spec = self._preprocess_spec()
        self.train_set = self._dataset(cfg.data.train, augment=cfg.data.augment, split="train")
        self.val_set = self._dataset(cfg.data.val, augment=None, split="val") if cfg.data.val else None

        module = self.method.build(cfg.model, self.spec)
        module.to(self.device)
        if cfg.channels_last:
            module.to(memory_format=torch.channels_last)
        self.module = module
        self.model = module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(module, device_ids=ids, find_unused_parameters=cfg.ddp_find_unused)
        self.method.device = self.device
        self._setup_amp()

        self.train_loader = self._loader(self.train_set, train=True)
        self.iters_per_epoch = len(self.train_loader)
        if cfg.max_iters_per_epoch > 0:
            self.iters_per_epoch = min(self.iters_per_epoch, cfg.max_iters_per_epoch)
        self.optimizer = self._optimizer()
        from .schedules import build_scheduler

        self.scheduler = build_scheduler(self.optimizer, cfg.sched, self.iters_per_epoch, cfg.epochs)

        if self.resume:
            self._load_resume(Path(self.resume))
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
            self._open_tensorboard()

    _OUTPUTS = ("last.pt", "best.pt", "config.yaml", "metrics.csv")

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
        from .models import training_spec

        return training_spec(self.cfg.model, self.cfg.data.crop_scale, self.cfg.data.color_order)

    def _dataset(self, ds_cfg: dict, augment, split: str):
        from .data import build_split

        ds = self.method.wrap_dataset(build_split(ds_cfg, self.spec, augment, split), split)
        if len(ds) == 0:
            raise DataError(f"data.{split} is empty ({ds_cfg}); check the path and the filters")
        log.info("data.%s: %d samples", split, len(ds))
        if split == "train" and self.cfg.data.repeat > 1:
            from torch.utils.data import ConcatDataset

            ds = ConcatDataset([ds] * self.cfg.data.repeat)
        return ds

    def _loader(self, ds, train: bool):
        from torch.utils.data import DataLoader, DistributedSampler

        cfg = self.cfg
        # one sampler type for 1 and N processes: set_epoch(e) reshuffles with seed + e, so the
        # order of an epoch is a function of (seed, epoch) only -- resume-exact
        sampler = DistributedSampler(ds, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                     shuffle=train, seed=cfg.seed, drop_last=False)
        per_rank = math.ceil(len(ds) / self.dist.world_size)
        bs = min(cfg.batch_size, per_rank)
        # a last batch of one breaks BatchNorm in training mode; drop only that case
        drop_last = train and per_rank % bs == 1 and per_rank > 1
        return DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=cfg.workers,
                          worker_init_fn=_worker_init, drop_last=drop_last,
                          pin_memory=self.device.type == "cuda", collate_fn=_collate,
                          persistent_workers=False)

    def _optimizer(self):
        import torch

        o = self.cfg.optim
        groups = self.method.param_groups(self.module)
        for g in groups:
            g["lr"] = o.lr * g.pop("lr_scale", 1.0)
        if o.name == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                   nesterov=o.nesterov)
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return cls(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def _setup_amp(self) -> None:
        import torch

        self.scaler = None
        if not self.cfg.amp:
            self.method.autocast = contextlib.nullcontext
            return
        if self.device.type == "cuda":
            dtype = torch.float16
            self.scaler = torch.amp.GradScaler("cuda")
        else:
            dtype = torch.bfloat16
        dev = self.device.type
        self.method.autocast = lambda: torch.autocast(device_type=dev, dtype=dtype)

    def _open_tensorboard(self) -> None:
        if not self.cfg.log.tensorboard:
            return
        from ..errors import require

        require("tensorboard", "train", "TensorBoard logging (or set log.tensorboard=false)")
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.global_step or None)

    # ------------------------------------------------------------------ resume
    def _load_resume(self, path: Path) -> None:
        if path.is_dir():
            path = path / "last.pt"
        ckpt = load_checkpoint(path)
        if "optimizer" not in ckpt:
            raise UserError(f"{path} holds no training state (best.pt keeps weights only); resume from last.pt")
        if "trainable" in ckpt:
            self.module.load_state_dict(ckpt["trainable"])
        else:
            self.method.pose_model(self.module).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.method.load_state_dict(ckpt.get("method", {}))
        self.start_epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt.get("global_step", 0))
        self.best = ckpt.get("best")
        self.history = list(ckpt.get("history", []))
        rng = ckpt.get("rng", {}).get(self.dist.rank)
        if rng is not None:
            set_rng_state(rng)
        log.info("resumed from %s at epoch %d (step %d)", path, self.start_epoch, self.global_step)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        """Train; returns the last epoch's log row plus the checkpoint paths."""
        self._setup()
        try:
            for epoch in range(self.start_epoch, self.cfg.epochs):
                row = self._run_epoch(epoch)
                for cb in self.on_epoch_end:
                    cb(epoch, row)
        except KeyboardInterrupt:
            if self.dist.is_main:
                log.warning("interrupted; %s holds the last completed epoch - continue with --resume %s",
                            self.run_dir / "last.pt", self.run_dir)
            raise
        finally:
            if self.tb is not None:
                self.tb.flush()
                self.tb.close()
            cleanup_distributed(self.dist)
        result = dict(self.history[-1]) if self.history else {}
        result.update(last=str(self.run_dir / "last.pt"), best=str(self.run_dir / "best.pt"))
        return result

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        import torch
        from tqdm import tqdm

        cfg = self.cfg
        seed_everything(cfg.seed + 1000 * epoch + self.dist.rank)
        self.train_loader.sampler.set_epoch(epoch)
        self.method.on_epoch_start(epoch)
        self.model.train()
        bar = tqdm(total=self.iters_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not self.dist.is_main, dynamic_ncols=True, mininterval=0.5)
        loss_sum, n_seen, t0 = 0.0, 0, time.perf_counter()
        logs_sum: dict[str, float] = {}
        for i, batch in enumerate(self.train_loader):
            if i >= self.iters_per_epoch:
                break
            batch = self._to_device(batch)
            loss, logs = self.method.training_step(batch, self.model)
            if not torch.isfinite(loss):
                raise UserError(f"training loss became {loss.item()} at epoch {epoch + 1}, iteration {i}; "
                                f"lower optim.lr or disable amp")
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
                self._clip()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self._clip()
                self.optimizer.step()
            self.scheduler.step()
            self.global_step += 1
            bs = int(batch["image"].shape[0])
            n_seen += bs
            loss_sum += float(loss.detach()) * bs
            for k, v in logs.items():
                if k != "total":  # the same as the loss
                    logs_sum[k] = logs_sum.get(k, 0.0) + float(v) * bs
            lr = self.optimizer.param_groups[0]["lr"]
            ips = n_seen * self.dist.world_size / max(time.perf_counter() - t0, 1e-9)
            bar.update(1)
            if self.dist.is_main and (i % max(1, cfg.log.every) == 0 or i == self.iters_per_epoch - 1):
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}")
                if self.tb is not None:
                    self.tb.add_scalar("train/loss", float(loss.detach()), self.global_step)
                    self.tb.add_scalar("train/lr", lr, self.global_step)
                    for k, v in logs.items():
                        self.tb.add_scalar(f"train/{k}", float(v), self.global_step)
        bar.close()
        elapsed = time.perf_counter() - t0
        total_seen = int(round(all_reduce_mean(float(n_seen), self.dist) * self.dist.world_size))
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": all_reduce_mean(loss_sum / max(n_seen, 1), self.dist),
            "lr": self.optimizer.param_groups[0]["lr"],
            "images": total_seen,
            "images_per_s": total_seen / max(elapsed, 1e-9),
            "epoch_s": elapsed,
        }
        row.update({f"train_{k}": all_reduce_mean(v / max(n_seen, 1), self.dist) for k, v in logs_sum.items()})
        last_epoch = epoch + 1 == cfg.epochs
        if self.val_set is not None and (last_epoch or (epoch + 1) % max(1, cfg.log.val_every) == 0):
            if self.dist.is_main:
                row.update({f"val_{k}": v for k, v in self.validate().items()})
            barrier(self.dist)
        self.history.append(row)
        if self.dist.is_main:
            self._end_epoch_outputs(epoch, row)
        barrier(self.dist)
        return row

    def _clip(self) -> None:
        if self.cfg.optim.grad_clip > 0:
            import torch

            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.optim.grad_clip)

    def _to_device(self, batch: dict) -> dict:
        import torch

        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device, non_blocking=True)
                if k == "image" and self.cfg.channels_last and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Metrics of the deployable pose model on the validation set (rank 0)."""
        import torch

        from ..metrics import pose_metrics

        pose = self.method.pose_model(self.module)
        was_training = pose.training
        pose.eval()
        loader = self._val_loader()
        preds, gts, eulers = [], [], []
        # always fp32: a bf16 rotation matrix alone is off by ~0.2 deg, too coarse for a metric
        with torch.inference_mode():
            for batch in loader:
                x = batch["image"].to(self.device)
                if self.cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                preds.append(pose(x)["R"].float().cpu().numpy())
                gts.append(batch["R"].numpy())
                eulers.append(batch["euler"].numpy() if "euler" in batch else None)
        pose.train(was_training)
        # the Euler MAE against the dataset's own labels (decoding R would fold |yaw| > 90)
        euler_gt = None if any(e is None for e in eulers) else np.concatenate(eulers)
        return pose_metrics(np.concatenate(preds), np.concatenate(gts), euler_gt=euler_gt, aligned=False)

    def _val_loader(self):
        from torch.utils.data import DataLoader

        if not hasattr(self, "_val_dl"):
            self._val_dl = DataLoader(self.val_set, batch_size=self.cfg.batch_size, shuffle=False,
                                      num_workers=self.cfg.workers, collate_fn=_collate)
        return self._val_dl

    # ------------------------------------------------------------------ outputs
    def _end_epoch_outputs(self, epoch: int, row: dict[str, Any]) -> None:
        metric_key = f"val_{self.cfg.log.best_metric}" if self.val_set is not None else "train_loss"
        if metric_key not in row:
            validated = [k[4:] for k in row if k.startswith("val_")]
            if validated:
                raise UserError(f"log.best_metric={self.cfg.log.best_metric!r} is not a validation metric; "
                                f"choose one of: {', '.join(validated)}")
            improved = False  # no validation this epoch
        else:
            value = float(row[metric_key])
            improved = self.best is None or value < self.best
            if improved:
                self.best = value
        row["best"] = self.best
        state = self._state(epoch)
        save_checkpoint(self.run_dir / "last.pt", state)
        if improved:
            best_state = {k: v for k, v in state.items()
                          if k not in ("optimizer", "scheduler", "scaler", "rng", "trainable", "history")}
            save_checkpoint(self.run_dir / "best.pt", best_state)
        log.info("checkpoint saved: epoch %d -> %s%s", epoch + 1, self.run_dir / "last.pt",
                 " (new best)" if improved else "")
        if self.cfg.log.csv:
            self._write_csv()
        if self.tb is not None:
            for k, v in row.items():
                if k.startswith("val_") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"val/{k[4:]}", v, epoch + 1)
            self.tb.add_scalar("train/epoch_loss", row["train_loss"], epoch + 1)
            self.tb.add_scalar("train/images_per_s", row["images_per_s"], epoch + 1)
            self.tb.flush()
        summary = ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                            if isinstance(v, float) and k in ("train_loss", "val_mae", "val_ge", "images_per_s"))
        log.info("epoch %d/%d: %s", epoch + 1, self.cfg.epochs, summary)

    def _state(self, epoch: int) -> dict[str, Any]:
        pose = self.method.pose_model(self.module)
        meta = pose.metadata()
        meta.provenance.update({"trainer": "edgepose-train", "method": self.cfg.method.name,
                                "epoch": epoch + 1, "data": to_dict(self.cfg.data.train)})
        state = {
            "model": pose.state_dict(),
            "edgepose_metadata": meta.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "method": self.method.state_dict(),
            "epoch": epoch + 1,
            "global_step": self.global_step,
            "config": to_dict(self.cfg),
            "rng": {self.dist.rank: rng_state()},
            "best": self.best,
            "history": list(self.history),
            "metrics": dict(self.history[-1]) if self.history else {},
            "world_size": self.dist.world_size,
        }
        if pose is not self.module:  # a method's wrapper with extra heads: keep them for resume
            state["trainable"] = self.module.state_dict()
        return state

    def _write_csv(self) -> None:
        keys: list[str] = []
        for row in self.history:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for row in self.history:
            w.writerow({k: row.get(k, "") for k in keys})
        # rewritten whole and atomically: a crash mid-write never truncates the log
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())


def _collate(items: list[dict]) -> dict:
    """Stack tensors, keep strings and other values as lists."""
    import torch

    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], np.ndarray):
            out[k] = torch.from_numpy(np.stack(vals))
        else:
            out[k] = vals
    return out


def train(cfg: TrainConfig, resume: str | Path | None = None) -> dict[str, Any]:
    return Trainer(cfg, resume=resume).fit()
