"""Step 3 of the default-model build: training the student (device, initialisation from the teacher or
a checkpoint, learning-rate groups, weight average, per-epoch validation)."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from edgepose.errors import UserError

from .build_config import BuildConfig
from .build_data import ArrayReader, Repeat, readers_as_dataset

log = logging.getLogger("edgepose.assets.build")


def predict_R(model, data: dict[str, np.ndarray], spec, batch: int = 128) -> np.ndarray:
    import torch

    from edgepose.preprocess import preprocess

    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(data["images"]), batch):
            x = np.stack([preprocess(im, tuple(b), spec) for im, b in zip(data["images"][i:i + batch],
                                                                           data["boxes"][i:i + batch])])
            out.append(model(torch.from_numpy(x).to(device))["R"].double().cpu().numpy())
    return np.concatenate(out)


def train(cfg: BuildConfig, spec, real: dict, synth: dict, val: dict, out: Path, teacher=None,
          real_val: dict | None = None, command: str = "python -m edgepose.assets.build"):
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from edgepose.data.augment import Augment
    from edgepose.losses import geodesic_loss
    from edgepose.metrics import geodesic_errors
    from edgepose.models.pose_model import PoseModel

    device = training_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = PoseModel.build(cfg.student.name, head="6d", preprocess=spec)
    model.provenance.update({"default_model": True, "teacher": cfg.teacher, "data": list(cfg.data.real),
                             "synthetic": cfg.data.synth_n,
                             "command": command})
    copied = init_student(model, cfg, teacher) if cfg.student.init else []
    model.to(device)
    augment = Augment.from_dict(cfg.augment) or Augment()
    weights = None
    if cfg.data.agreement_weighting and "disagreement" in real:
        from edgepose.distill.teacher import agreement_weight

        weights = agreement_weight(real["disagreement"])
        log.info("real faces weighted by teacher agreement: mean weight %.3f, %d of %d below 0.5",
                 float(weights.mean()), int((weights < 0.5).sum()), len(weights))
    ds = readers_as_dataset([Repeat(ArrayReader(real, "real", weights), cfg.data.real_repeat),
                             ArrayReader(synth, "synth")], spec, augment)
    loader = DataLoader(ds, batch_size=cfg.optim.batch_size, shuffle=True, num_workers=cfg.optim.workers,
                        drop_last=True, persistent_workers=cfg.optim.workers > 0, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed))
    opt = torch.optim.AdamW(param_groups(model, copied, cfg.optim.lr, cfg.student.init_lr_scale),
                            lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    total = cfg.optim.epochs * len(loader)
    warm = max(1, cfg.optim.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    from .build_report import write_label_report

    write_label_report(out, {"real": real["R"], "synthetic": synth["R"]})
    log.info("training %s @ %d px on %d real (x%d) + %d synthetic crops, %d steps on %s", cfg.student.name,
             spec.input_size, len(real["images"]), cfg.data.real_repeat, len(synth["images"]), total, device)
    metrics = out / "metrics.jsonl"
    ema = WeightAverage(model, cfg.optim.ema) if cfg.optim.ema > 0 else None
    for epoch in range(1, cfg.optim.epochs + 1):
        model.train()
        t0, tot, n = time.perf_counter(), 0.0, 0
        for b in tqdm(loader, desc=f"epoch {epoch}/{cfg.optim.epochs}", mininterval=30):
            pred = model(b["image"].to(device, non_blocking=True))["R"]
            loss = geodesic_loss(pred, b["R"].to(device, non_blocking=True), b["weight"].to(device, non_blocking=True))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(model)
            tot, n = tot + float(loss.detach()), n + 1
        shipped = ema.model if ema is not None else model
        ge = geodesic_errors(predict_R(shipped, val, spec), val["R"].astype(np.float64))
        row = {"epoch": epoch, "loss": tot / max(1, n), "synth_val_geodesic_mean": float(np.mean(ge)),
               "seconds": time.perf_counter() - t0, "lr": sched.get_last_lr()[0]}
        if real_val is not None:  # held-out people: distance from the teacher's labels (no pose labels needed)
            gr = geodesic_errors(predict_R(shipped, real_val, spec), real_val["R"].astype(np.float64))
            row.update(real_val_vs_teacher_mean=float(np.mean(gr)), real_val_vs_teacher_median=float(np.median(gr)))
        with open(metrics, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        log.info("epoch %d: %s", epoch, row)
        shipped.save_checkpoint(out / "last.pt", epoch=epoch, ema=cfg.optim.ema)
    return shipped.cpu()


def training_device(name: str):
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name!r} is not a torch device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name}: this torch build sees no CUDA GPU (torch {torch.__version__}); "
                        f"build on the CPU with device=cpu, or install a CUDA build of torch")
    return device


def check_student_init(cfg: BuildConfig) -> str | None:
    """Validate ``student.init`` / ``init_lr_scale`` (before the labelling, not after it); returns the init
    kind: None (from scratch), "teacher" or "checkpoint"."""
    _check_lr_scale(cfg.student.init_lr_scale)
    init = cfg.student.init
    if init is None:
        return None
    if str(init) == "teacher":
        return "teacher"
    if str(init).endswith(".pt"):
        if not Path(init).expanduser().is_file():
            raise UserError(f"student.init={init}: checkpoint not found; give an edgepose .pt (e.g. an earlier "
                            f"build's out_dir/last.pt), 'teacher' or null")
        return "checkpoint"
    raise UserError(f"student.init={init!r}: use 'teacher' (the first teacher member's trunk, e.g. WHENet's "
                    f"EfficientNet-B0 for student.name=efficientnet_b0_s4), a checkpoint path (.pt) or null "
                    f"(from scratch)")


def _check_lr_scale(scale: float) -> None:
    if not 0.0 < scale <= 10.0:
        raise UserError(f"student.init_lr_scale={scale}: use a factor in (0, 10], e.g. 0.1 (1 = one learning rate)")


def param_groups(model, initialised: list[str], lr: float, scale: float) -> list[dict]:
    """Two AdamW groups: the parameters copied by ``student.init`` (model names) at ``lr * scale``, the rest at ``lr``."""
    _check_lr_scale(scale)
    names = set(initialised)
    pre = [p for n, p in model.named_parameters() if n in names]
    fresh = [p for n, p in model.named_parameters() if n not in names]
    groups = [{"params": fresh, "lr": lr}] if fresh else []
    if pre:
        groups.append({"params": pre, "lr": lr * scale})
    return groups


def init_student(model, cfg: BuildConfig, teacher) -> list[str]:
    """``student.init``: copy weights into the student where names and shapes match; returns the copied
    parameter names (``backbone.*`` / ``head.*``).

    ``teacher``: the first teacher member's trunk (e.g. WHENet's EfficientNet-B0 into efficientnet_b0_s4).
    A path to an edgepose checkpoint: that model's backbone and head (fine-tune an earlier build, e.g. at
    another input size)."""
    from edgepose.models.pose_model import PoseModel
    from edgepose.models.transfer import copy_matching_weights, sixd_head_from_camera_head

    kind = check_student_init(cfg)
    if kind is None:
        return []
    if kind == "teacher":
        if teacher is None:
            raise UserError("student.init=teacher needs the teacher loaded (internal: pass it to train())")
        source = teacher.members[0]
        what = f"teacher {cfg.teacher[0]} ({source.name})"
        copied = [f"backbone.{n}" for n in copy_matching_weights(model.backbone, source.backbone, what=what)]
        origin = {"teacher": cfg.teacher[0], "backbone": source.name}
        if getattr(source, "head_kind", None) == "3dmm" and model.head_kind == "6d":
            # a 3DDFA_V2 teacher's camera rows are R's first two columns: the student starts as that teacher
            copied += [f"head.{n}" for n in sixd_head_from_camera_head(model.head, source.head, what=what)]
            origin["head"] = "camera rows"
    else:  # "checkpoint"
        path = Path(cfg.student.init).expanduser()
        source = PoseModel.from_checkpoint(path)
        copied = copy_matching_weights(model, source, what=f"checkpoint {path.name} ({source.name})")
        origin = {"checkpoint": str(path), "backbone": source.name}
    model.provenance["initialised_from"] = {**origin, "tensors": len(copied), "lr_scale": cfg.student.init_lr_scale}
    return copied


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers (a copy that is never trained).

    The decay ramps up as ``min(decay, (1 + step) / (10 + step))`` so the average does not remember the
    random initialisation; integer buffers (BatchNorm's batch counter) are copied, not averaged."""

    def __init__(self, model, decay: float):
        import copy

        if not 0.0 < decay < 1.0:
            raise UserError(f"optim.ema={decay}: use a decay in (0, 1), e.g. 0.999, or 0 to switch the average off")
        self.model, self.decay, self.steps = copy.deepcopy(model).eval(), float(decay), 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, model) -> None:
        import torch

        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        with torch.no_grad():
            avg, cur = self.model.state_dict(), model.state_dict()
            for k, v in avg.items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(cur[k].detach(), alpha=1.0 - d)
                else:
                    v.copy_(cur[k])
