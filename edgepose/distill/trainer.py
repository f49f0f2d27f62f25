"""The distillation loop: config dataclasses, training, checkpoints and the final ONNX export.

``distill(cfg) -> dict`` writes into ``cfg.out_dir``: ``config.yaml`` (resolved), ``metrics.jsonl``
(one line per epoch), ``last.pt`` (every epoch, atomic), ``best.pt`` (lowest validation MAE when
``data.val`` is set, else the last epoch), ``manifest.json`` (files + sha256 of the unlabelled
data) and ``student.onnx`` (+ sidecar) when ``export_onnx``.  Ctrl-C saves ``last.pt`` first.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepose.config import ConfigError, load_config, save_config
from edgepose.errors import DataError, UserError

from .losses import DistillLossConfig

__all__ = ["StudentConfig", "DistillDataConfig", "DistillOptimConfig", "DistillConfig", "load_distill_config",
           "distill"]

log = logging.getLogger(__name__)


@dataclass
class StudentConfig:
    name: str = "mobilenetv3_small"  # any registry model: mobilenetv3_*, repvgg_a0, resnet18, ...
    head: str = "6d"  # 6d | 6d+bins (KL needs the teacher's bins)
    input_size: int = 128  # 112..160 for in-car students
    pretrained: str | None = None  # local ImageNet weights file
    color_order: str = "RGB"
    crop_scale: float | None = None  # default: the (first) teacher's crop policy = deployment policy


@dataclass
class DistillDataConfig:
    unlabelled: list[str] = field(default_factory=list)  # images / videos / folders -> face detector
    labelled: list[dict] = field(default_factory=list)  # e.g. {format: aflw2000, root: ...}
    val: dict | None = None  # labelled set for model selection
    detector: str = "yunet"
    detector_model: str | None = None
    video_step: int = 10
    max_frames_per_video: int = 200
    jitter_scale: float = 0.1
    jitter_shift: float = 0.05
    max_faces: int = 1  # per image / video frame (mosaics and group photos hold several)
    cache_dir: str | None = None  # default: <edgepose cache>/distill
    # online: the teacher runs on every (jittered) training crop; cached: it labels every face once
    # (flip-TTA) and the student trains under exact geometric augmentation (edgepose.distill.cached)
    teacher_labels: str = "online"
    teacher_flip_tta: bool = True  # cached mode: label = chordal mean of T(x) and flip(T(flip x)); 2x teacher cost
    augment: dict | None = None  # cached mode: edgepose.data.augment.Augment fields (None = CACHED_AUGMENT)


@dataclass
class DistillOptimConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    workers: int = 0


@dataclass
class DistillConfig:
    teacher: list[str] = field(default_factory=lambda: ["whenet"])
    student: StudentConfig = field(default_factory=StudentConfig)
    data: DistillDataConfig = field(default_factory=DistillDataConfig)
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)
    optim: DistillOptimConfig = field(default_factory=DistillOptimConfig)
    out_dir: str = "runs/distill"
    seed: int = 0
    threads: int = 0  # torch intra-op threads (0 = default)
    export_onnx: bool = True


def load_distill_config(path: str | Path | None, overrides: list[str] | None = None) -> DistillConfig:
    cfg = load_config(DistillConfig, path, overrides)
    if isinstance(cfg.teacher, str):
        cfg.teacher = [cfg.teacher]
    if not cfg.teacher:
        raise ConfigError("teacher: give a checkpoint, 'whenet' or a list of them")
    if not (cfg.data.unlabelled or cfg.data.labelled):
        raise ConfigError("data: set data.unlabelled (images / videos / folders) and/or data.labelled datasets")
    if not 32 <= cfg.student.input_size <= 512:
        raise ConfigError(f"student.input_size {cfg.student.input_size} out of range (in-car students use 112..160)")
    if cfg.optim.epochs < 1 or cfg.optim.batch_size < 1 or cfg.optim.lr <= 0:
        raise ConfigError("optim.epochs and optim.batch_size must be >= 1 and optim.lr > 0")
    if cfg.student.head not in ("6d", "6d+bins", "bins"):
        raise ConfigError(f"student.head must be 6d, 6d+bins or bins (got {cfg.student.head!r})")
    if cfg.data.teacher_labels not in ("online", "cached"):
        raise ConfigError(f"data.teacher_labels must be online or cached (got {cfg.data.teacher_labels!r})")
    if cfg.data.teacher_labels == "cached" and (cfg.loss.kl > 0 or cfg.loss.feature > 0):
        raise ConfigError("data.teacher_labels=cached keeps only teacher rotations: set loss.kl=0 and "
                          "loss.feature=0, or use data.teacher_labels=online")
    if cfg.data.max_faces < 1:
        raise ConfigError(f"data.max_faces must be >= 1 (got {cfg.data.max_faces})")
    return cfg


#: Cached-label augmentation: detector-like box noise, +-25 deg in-plane rotation, flips, light/IR looks.
CACHED_AUGMENT = {"flip_p": 0.5, "rotate_p": 0.5, "rotate_deg": 25.0, "box_scale": 0.1, "box_shift": 0.05,
                  "brightness": 0.15, "contrast": 0.3, "blur_p": 0.2, "noise_p": 0.2, "gray_p": 0.2, "nir_p": 0.1}


def _student(cfg: DistillConfig, teacher):
    from edgepose.models.pose_model import PoseModel
    from edgepose.preprocess import CropPolicy, PreprocessSpec

    t_crop = teacher.specs[0].crop
    crop = CropPolicy(**{**t_crop.to_dict(), **({"scale": cfg.student.crop_scale} if cfg.student.crop_scale else {})})
    spec = PreprocessSpec(input_size=cfg.student.input_size, color_order=cfg.student.color_order, crop=crop)
    bins = teacher.bins if "bins" in cfg.student.head and teacher.bins else None
    model = PoseModel.build(cfg.student.name, head=cfg.student.head, pretrained=cfg.student.pretrained,
                            bins=bins, preprocess=spec)
    return model


def _readers(cfg: DistillConfig, specs, cache_dir: Path) -> tuple[list, dict]:
    from edgepose.train.data import build_eval_reader

    from .data import cache_spec, unlabelled_reader
    from edgepose.data.faces import DetectorSettings

    readers, manifest = [], {}
    if cfg.data.unlabelled:
        st = DetectorSettings(name=cfg.data.detector, model_path=cfg.data.detector_model,
                              video_step=cfg.data.video_step, max_frames_per_video=cfg.data.max_frames_per_video,
                              max_faces=cfg.data.max_faces)
        r, files = unlabelled_reader(cfg.data.unlabelled, st, cache_spec(specs), cache_dir)
        readers.append(r)
        manifest = {"unlabelled": files, "faces": len(r), "detector": st.key()}
    if any(str(d.get("format")) == "synth" for d in [*cfg.data.labelled, cfg.data.val or {}]):
        import edgepose.methods  # noqa: F401  registers the synth format

    for i, ds in enumerate(cfg.data.labelled):
        readers.append(build_eval_reader(dict(ds), where=f"data.labelled[{i}]"))
    if sum(len(r) for r in readers) == 0:
        raise DataError("the distillation data is empty (no detected faces, no labelled samples)")
    return readers, manifest


def _val_mae(model, reader) -> float:
    import numpy as np
    import torch

    from edgepose.metrics import euler_mae
    from edgepose.quantize.report import eval_batch

    x, R = eval_batch(reader, model.preprocess)
    model.eval()
    with torch.no_grad():
        P = torch.cat([model(torch.from_numpy(x[i:i + 64]))["R"] for i in range(0, len(x), 64)]).numpy()
    return float(euler_mae(P.astype(np.float64), R)["mae"])


def distill(cfg: DistillConfig, progress: bool = True) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from edgepose.metadata import atomic_write_text

    from .data import PairedCropDataset, collate
    from .losses import DistillLoss
    from .teacher import load_teacher

    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    from edgepose.io_safety import check_outputs, with_sidecars

    # a teacher checkpoint inside out_dir (e.g. a previous run's best.pt) must not be overwritten
    check_outputs(with_sidecars([("teacher", t) for t in cfg.teacher if Path(str(t)).is_file()]),
                  with_sidecars([(f"out_dir {n}", out / n) for n in ("config.yaml", "manifest.json", "best.pt",
                                                                      "last.pt", "metrics.jsonl", "student.onnx")]),
                  dir_outputs=[("out_dir", out)])
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    teacher = load_teacher(cfg.teacher)
    student = _student(cfg, teacher)
    if cfg.data.cache_dir:
        cache_dir = Path(cfg.data.cache_dir)
    else:
        from edgepose.runtime.fetch import cache_dir as _cache

        cache_dir = _cache() / "distill"
    readers, manifest = _readers(cfg, [*teacher.specs, student.preprocess], cache_dir)
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    val_reader = None
    cached = cfg.data.teacher_labels == "cached"
    if cfg.data.val:
        from edgepose.train.data import build_eval_reader

        val_reader = build_eval_reader(dict(cfg.data.val), where="data.val")
    if cached:
        from edgepose.data.augment import Augment

        from .cached import AugmentedDistillDataset, collate_cached, teacher_labels

        labels = teacher_labels(teacher, readers, flip_tta=cfg.data.teacher_flip_tta, progress=progress)
        ds = AugmentedDistillDataset(readers, labels, student.preprocess,
                                     Augment.from_dict(cfg.data.augment if cfg.data.augment is not None
                                                       else CACHED_AUGMENT), seed=cfg.seed)
    else:
        ds = PairedCropDataset(readers, student.preprocess, teacher.specs, cfg.data.jitter_scale,
                               cfg.data.jitter_shift, seed=cfg.seed)
    loader = DataLoader(ds, batch_size=cfg.optim.batch_size, shuffle=True, num_workers=cfg.optim.workers,
                        collate_fn=collate_cached if cached else collate, drop_last=len(ds) > cfg.optim.batch_size,
                        generator=torch.Generator().manual_seed(cfg.seed))
    criterion = DistillLoss(cfg.loss, student.num_features, teacher.num_features, dict(student.bins), teacher.bins)
    params = list(student.parameters()) + list(criterion.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    total = cfg.optim.epochs * len(loader)
    warm = max(1, int(cfg.optim.warmup_epochs * len(loader)))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    student.provenance.update({"distilled_from": teacher.describe(), "command": " ".join(sys.argv),
                               "data": {"unlabelled": cfg.data.unlabelled, "labelled": cfg.data.labelled}})
    history, best, best_mae = [], out / "best.pt", math.inf
    epoch = 0
    try:
        for epoch in range(1, cfg.optim.epochs + 1):
            ds.epoch = epoch
            student.train()
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            for batch in tqdm(loader, desc=f"distill {epoch}/{cfg.optim.epochs}", disable=not progress, leave=False):
                t_out = {"R": batch["R_t"]} if cached else teacher(batch["teacher"])
                s_out = student(batch["student"])
                loss, parts = criterion(s_out, t_out, batch["R"], batch["has_gt"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                sched.step()
                for k, v in {"loss": float(loss.detach()), **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v
            row = {"epoch": epoch, **{k: v / len(loader) for k, v in sums.items()},
                   "seconds": time.perf_counter() - t0, "lr": sched.get_last_lr()[0]}
            if val_reader is not None:
                row["val_mae"] = _val_mae(student, val_reader)
            history.append(row)
            with open(out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
            student.save_checkpoint(out / "last.pt", epoch=epoch, config=_cfg_dict(cfg))
            score = row.get("val_mae", -epoch)  # without validation: the latest epoch
            if score < best_mae:
                best_mae = score
                student.save_checkpoint(best, epoch=epoch, config=_cfg_dict(cfg))
    except KeyboardInterrupt:
        student.save_checkpoint(out / "last.pt", epoch=epoch, config=_cfg_dict(cfg), interrupted=True)
        log.warning("interrupted: saved %s", out / "last.pt")
        raise
    result: dict[str, Any] = {"out_dir": str(out), "best": str(best), "history": history}
    if cfg.export_onnx:
        from edgepose.export import export_onnx
        from edgepose.models.pose_model import PoseModel

        import numpy as np

        real = np.stack([ds[i]["student"].numpy() for i in range(min(8, len(ds)))])
        rep = export_onnx(PoseModel.from_checkpoint(best), out / "student.onnx", real_inputs=real,
                          command=" ".join(sys.argv))
        result["onnx"] = str(rep.path)
    return result


def _cfg_dict(cfg: DistillConfig) -> dict:
    from edgepose.config import to_dict

    return to_dict(cfg)
