"""The one training engine: every optimizer step in edgepose happens in :meth:`Engine.fit`.

Teacher training (``edgepose-train``), distillation (``edgepose distill``), the default-model build and
quantization-aware fine-tuning all drive this loop through a :class:`~edgepose.methods.method.Method` (the
objective: what to build and how one batch becomes a loss).  The engine owns everything generic:

* devices and DDP (``torchrun`` sets ``RANK``/``WORLD_SIZE``; one process is a world of one);
* the optimizer (AdamW / Adam / SGD, per-group ``lr_scale``), the per-iteration warm-up + cosine/step
  schedule (:mod:`.schedules`), gradient clipping, AMP (bf16 on the CPU, fp16 + GradScaler on CUDA);
* an exponential moving average of the weights (:class:`.ema.WeightAverage`; the average is what is
  validated and saved as the model);
* resume: ``last.pt`` holds the optimizer, schedule, scaler, average, method state, RNG state and the
  history; each epoch re-seeds from ``seed + 1000 * epoch + rank`` and the sampler reshuffles with
  ``seed + epoch``, so an epoch never depends on how the run got there;
* outputs (rank 0 only, atomic): ``last.pt`` every epoch, ``best.pt`` when the selection metric
  improves, ``metrics.jsonl`` (one line per epoch), optional ``metrics.csv`` and TensorBoard;
* a progress bar with loss, learning rate and images/s.

Row keys of the metrics log: ``epoch``, ``train_loss``, ``train_<part>`` (the method's logged parts),
``lr``, ``images``, ``images_per_s``, ``epoch_s``, then whatever the caller's ``validate`` returns.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import UserError
from ..metadata import atomic_write_text
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import OptimConfig, SchedConfig
from .distributed import DistInfo, all_reduce_mean, barrier, cleanup_distributed, init_distributed

if TYPE_CHECKING:  # pragma: no cover
    from ..methods.method import Method

log = logging.getLogger(__name__)

__all__ = ["EngineConfig", "Engine", "seed_everything", "resolve_device", "collate"]

#: the files a run folder holds (checked against the inputs before anything is written)
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv")


@dataclass
class EngineConfig:
    """What the loop needs; each front end (train / distill / build / QAT) fills it from its own config."""

    epochs: int = 1
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    amp: bool = False  # bf16 autocast on the CPU, fp16 + GradScaler on CUDA
    ema: float = 0.0  # weight-average decay (0 = off); the average is validated and saved
    channels_last: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = True
    seed: int = 0
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    max_iters_per_epoch: int = 0  # 0 = the whole loader
    ddp_find_unused: bool = False
    output: str | None = None  # run folder; None = nothing is written (QAT works in memory)
    best_metric: str | None = None  # row key, lower is better; None = the latest epoch is the best
    write_best: bool = True
    val_every: int = 1  # epochs between validations (the last epoch is always validated)
    log_every: int = 10  # iterations between progress-bar / TensorBoard updates
    metrics_csv: bool = False
    tensorboard: bool = False
    progress: bool = True
    desc: str = "epoch"  # progress-bar label


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
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name!r} is not a torch device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={name}: this torch build sees no CUDA GPU (torch {torch.__version__}); "
                            f"use device=cpu or device=auto, or install a CUDA build of torch")
        if dist.enabled:
            return torch.device("cuda", dist.local_rank)
    return device


def collate(items: list[dict]) -> dict:
    """Stack tensors and arrays, keep strings and other values as lists."""
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


class Engine:
    """``Engine(cfg, method)``; then :meth:`loader` for the data and :meth:`fit` to train.

    The device and the process group are set up in the constructor, before any dataset is built, so
    front ends can ask :attr:`dist` which rank they are."""

    def __init__(self, cfg: EngineConfig, method: "Method",
                 on_epoch_end: list[Callable[[int, dict], None]] | None = None):
        import torch

        self.cfg = cfg
        self.method = method
        self.on_epoch_end = list(on_epoch_end or [])
        self.run_dir = Path(cfg.output) if cfg.output else None
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.start_epoch = 0
        self.global_step = 0
        self.tb = None
        self.ema = None
        if cfg.epochs < 1:
            raise UserError(f"epochs={cfg.epochs}: train for at least one epoch")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device_type = "cuda" if cfg.device.startswith("cuda") or (
            cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        self.dist = init_distributed(device_type)
        self.device = resolve_device(cfg.device, self.dist)
        torch.backends.cudnn.deterministic = bool(cfg.deterministic)
        torch.backends.cudnn.benchmark = not cfg.deterministic
        seed_everything(cfg.seed + self.dist.rank)
        method.device = self.device

    # ------------------------------------------------------------------ data
    def loader(self, dataset, batch_size: int, workers: int = 0, train: bool = True, drop_last: bool | None = None,
               collate_fn: Callable = collate):
        """A DataLoader whose order is a function of (seed, epoch) only, for one or N processes.

        ``drop_last=None``: drop only a last batch of one (it breaks BatchNorm in training mode)."""
        from torch.utils.data import DataLoader, DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                     shuffle=train, seed=self.cfg.seed, drop_last=False)
        per_rank = math.ceil(len(dataset) / self.dist.world_size)
        bs = max(1, min(batch_size, per_rank))
        if drop_last is None:
            drop_last = train and per_rank % bs == 1 and per_rank > 1
        elif drop_last and per_rank < bs:
            drop_last = False  # smaller than one batch: keep it rather than train on nothing
        return DataLoader(dataset, batch_size=bs, sampler=sampler, num_workers=workers,
                          worker_init_fn=_worker_init, drop_last=drop_last,
                          pin_memory=self.device.type == "cuda", collate_fn=collate_fn,
                          persistent_workers=False)

    # ------------------------------------------------------------------ set-up
    def _prepare(self, module, loader, resume: str | Path | None) -> None:
        import torch

        cfg = self.cfg
        module.to(self.device)
        if cfg.channels_last:
            module.to(memory_format=torch.channels_last)
        self.module = module
        self.model = module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(module, device_ids=ids, find_unused_parameters=cfg.ddp_find_unused)
        self._setup_amp()
        self.loader_ = loader
        self.iters_per_epoch = len(loader)
        if cfg.max_iters_per_epoch > 0:
            self.iters_per_epoch = min(self.iters_per_epoch, cfg.max_iters_per_epoch)
        if self.iters_per_epoch < 1:
            raise UserError("the training data gives no full batch; lower the batch size or add data")
        self.optimizer = self._optimizer()
        from .schedules import build_scheduler

        self.scheduler = build_scheduler(self.optimizer, cfg.sched, self.iters_per_epoch, cfg.epochs)
        if cfg.ema > 0:
            from .ema import WeightAverage

            self.ema = WeightAverage(self.method.pose_model(module), cfg.ema)
        if resume:
            self._load_resume(Path(resume))
        if self.dist.is_main and self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._open_tensorboard()

    def _optimizer(self):
        import torch

        o = self.cfg.optim
        groups = self.method.param_groups(self.module)
        for g in groups:
            g["lr"] = o.lr * g.pop("lr_scale", 1.0)
        if o.name == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                   nesterov=o.nesterov)
        if o.name not in ("adamw", "adam"):
            raise UserError(f"optim.name={o.name!r}: use adamw, adam or sgd")
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
        if not self.cfg.tensorboard:
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
        if self.ema is not None:
            if not ckpt.get("ema"):
                raise UserError(f"{path} was trained without a weight average; resume with ema=0 or start afresh")
            self.ema.load_state_dict(ckpt["ema"])
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
    def fit(self, module, loader, validate: Callable[[Any], dict[str, float]] | None = None,
            resume: str | Path | None = None, provenance: dict | None = None,
            checkpoint_extra: dict | None = None) -> dict[str, Any]:
        """Train ``module`` (what ``method.build`` returned) on ``loader`` (from :meth:`loader`).

        ``validate(pose_model) -> {name: value}`` runs on rank 0 in eval mode (the weight average when
        one is kept); its keys go into the epoch's row as they are.  ``provenance`` is merged into the
        checkpoints' metadata and ``checkpoint_extra`` (e.g. the resolved config) into every checkpoint.
        Returns the last row plus the checkpoint paths."""
        self.validate_fn = validate
        self.provenance = dict(provenance or {})
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self._prepare(module, loader, resume)
        try:
            for epoch in range(self.start_epoch, self.cfg.epochs):
                row = self._run_epoch(epoch)
                for cb in self.on_epoch_end:
                    cb(epoch, row)
        except KeyboardInterrupt:
            if self.dist.is_main and self.run_dir is not None:
                log.warning("interrupted; %s holds the last completed epoch - continue with --resume %s",
                            self.run_dir / "last.pt", self.run_dir)
            raise
        finally:
            if self.tb is not None:
                self.tb.flush()
                self.tb.close()
            cleanup_distributed(self.dist)
        result = dict(self.history[-1]) if self.history else {}
        if self.run_dir is not None:
            result.update(last=str(self.run_dir / "last.pt"), best=str(self.run_dir / "best.pt"))
        return result

    @property
    def shipped_model(self):
        """The weights that are validated, saved and exported: the average when one is kept."""
        return self.ema.model if self.ema is not None else self.method.pose_model(self.module)

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        import torch
        from tqdm import tqdm

        cfg = self.cfg
        seed_everything(cfg.seed + 1000 * epoch + self.dist.rank)
        sampler = getattr(self.loader_, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        self.method.on_epoch_start(epoch)
        self.method.train_mode(self.model)
        self._validated_keys: set[str] = set()
        bar = tqdm(total=self.iters_per_epoch, desc=f"{cfg.desc} {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (self.dist.is_main and cfg.progress), dynamic_ncols=True, mininterval=0.5)
        loss_sum, n_seen, t0 = 0.0, 0, time.perf_counter()
        logs_sum: dict[str, float] = {}
        for i, batch in enumerate(self.loader_):
            if i >= self.iters_per_epoch:
                break
            batch = self._to_device(batch)
            loss, logs = self.method.training_step(batch, self.model)
            if not torch.isfinite(loss):
                raise UserError(f"training loss became {loss.item()} at epoch {epoch + 1}, iteration {i}; "
                                f"lower optim.lr or disable amp")
            self._step(loss)
            bs = _batch_size(batch)
            n_seen += bs
            loss_sum += float(loss.detach()) * bs
            for k, v in logs.items():
                if k != "total":  # the same as the loss
                    logs_sum[k] = logs_sum.get(k, 0.0) + float(v) * bs
            bar.update(1)
            if self.dist.is_main and (i % max(1, cfg.log_every) == 0 or i == self.iters_per_epoch - 1):
                lr = self.optimizer.param_groups[0]["lr"]
                ips = n_seen * self.dist.world_size / max(time.perf_counter() - t0, 1e-9)
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
        if self.validate_fn is not None and (last_epoch or (epoch + 1) % max(1, cfg.val_every) == 0):
            if self.dist.is_main:
                row.update(self._validate())
            barrier(self.dist)
        self.history.append(row)
        if self.dist.is_main:
            self._end_epoch_outputs(epoch, row)
        barrier(self.dist)
        return row

    def _step(self, loss) -> None:
        """The one optimizer step of the code base: backward, clip, step, schedule, average."""
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
        if self.ema is not None:
            self.ema.update(self.method.pose_model(self.module))
        self.global_step += 1

    def _clip(self) -> None:
        if self.cfg.optim.grad_clip > 0:
            import torch

            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)

    def _to_device(self, batch: dict) -> dict:
        import torch

        def move(v):
            return v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v

        out = {}
        for k, v in batch.items():
            # a list of tensors is one input per model (distillation: one crop per ensemble member)
            v = type(v)(move(x) for x in v) if isinstance(v, (list, tuple)) else move(v)
            if k == "image" and self.cfg.channels_last and isinstance(v, torch.Tensor) and v.ndim == 4:
                v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    def _validate(self) -> dict[str, float]:
        import torch

        model = self.shipped_model
        was_training = model.training
        model.eval()
        try:
            # always fp32: a bf16 rotation matrix alone is off by ~0.2 deg, too coarse for a metric
            with torch.inference_mode():
                metrics = dict(self.validate_fn(model))
            self._validated_keys = set(metrics)
            return metrics
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ outputs
    def _end_epoch_outputs(self, epoch: int, row: dict[str, Any]) -> None:
        key = self.cfg.best_metric
        if key is None:
            improved = True  # the latest epoch is the one kept
        elif key not in row:
            if self._validated_keys:
                raise UserError(f"best metric {key!r} is not a validation metric; choose one of: "
                                f"{', '.join(sorted(self._validated_keys))}")
            improved = False  # not validated this epoch
        else:
            value = float(row[key])
            improved = self.best is None or value < self.best
            if improved:
                self.best = value
        if key is not None:
            row["best"] = self.best
        if self.run_dir is None:
            return
        state = self._state(epoch)
        save_checkpoint(self.run_dir / "last.pt", state)
        if improved and self.cfg.write_best:
            keep = {k: v for k, v in state.items()
                    if k not in ("optimizer", "scheduler", "scaler", "rng", "trainable", "history", "ema")}
            save_checkpoint(self.run_dir / "best.pt", keep)
        log.info("checkpoint saved: epoch %d -> %s%s", epoch + 1, self.run_dir / "last.pt",
                 " (new best)" if improved and key is not None else "")
        self._write_logs(row)
        summary = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "best")
        log.info("epoch %d/%d: %s", epoch + 1, self.cfg.epochs, summary)

    def _write_logs(self, row: dict[str, Any]) -> None:
        # rewritten whole from the history (which last.pt also holds) and atomically: after a kill and a
        # resume the log has exactly the epochs the checkpoint has, never a half line or a lost row
        atomic_write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))
        if self.cfg.metrics_csv:
            keys: list[str] = []
            for r in self.history:
                keys += [k for k in r if k not in keys]
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
            w.writeheader()
            for r in self.history:
                w.writerow({k: r.get(k, "") for k in keys})
            # rewritten whole and atomically: a crash mid-write never truncates the log
            atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "best") and not k.startswith("train_"):
                    self.tb.add_scalar(f"val/{k[4:] if k.startswith('val_') else k}", v, row["epoch"])
            self.tb.add_scalar("train/epoch_loss", row["train_loss"], row["epoch"])
            self.tb.add_scalar("train/images_per_s", row["images_per_s"], row["epoch"])
            self.tb.flush()

    def _state(self, epoch: int) -> dict[str, Any]:
        from ..safe_load import to_plain

        shipped = self.shipped_model
        meta = shipped.metadata()
        meta.provenance.update({**self.provenance, "epoch": epoch + 1})
        state = {
            "model": shipped.state_dict(),
            "edgepose_metadata": to_plain(meta.to_dict(), arrays="list"),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "method": self.method.state_dict(),
            "epoch": epoch + 1,
            "global_step": self.global_step,
            "rng": {self.dist.rank: rng_state()},
            "best": self.best,
            "history": list(self.history),
            "metrics": dict(self.history[-1]) if self.history else {},
            "world_size": self.dist.world_size,
            **self.checkpoint_extra,
        }
        if self.method.pose_model(self.module) is not self.module or self.ema is not None:
            # a method's wrapper with extra heads, or trained weights beside their average: keep them for resume
            state["trainable"] = self.module.state_dict()
        return state


def _batch_size(batch: dict) -> int:
    for v in batch.values():
        if hasattr(v, "shape") and len(v.shape) > 0:
            return int(v.shape[0])
    return 1
