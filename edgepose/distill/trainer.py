"""Distillation's front end: config dataclasses, data, teacher and student, then the one training engine.

``distill(cfg) -> dict`` writes into ``cfg.out_dir``: ``config.yaml`` (resolved), ``metrics.jsonl``
(one line per epoch), ``last.pt`` (every epoch, atomic, with the full training state for ``resume``),
``best.pt`` (lowest validation MAE when ``data.val`` is set, else the last epoch), ``manifest.json``
(files + sha256 of the unlabelled data) and ``student.onnx`` (+ sidecar) when ``export_onnx``.  The loop
itself -- optimizer, schedule, AMP, DDP under ``torchrun``, EMA, resume, checkpoints, logs -- is
:mod:`edgepose.train.engine`, driven by :class:`.objective.DistillObjective`.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepose.config import ConfigError, load_config, save_config
from edgepose.errors import DataError
from edgepose.train.config import OptimConfig

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
class DistillOptimConfig(OptimConfig):
    """``edgepose-train``'s optimizer section (name, lr, betas, ...) plus the loop's own settings."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    epochs: int = 10
    batch_size: int = 32
    warmup_epochs: float = 0.5
    workers: int = 0
    ema: float = 0.0  # weight-average decay (e.g. 0.999; 0 = off): the average is validated, saved and exported


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
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (the teacher runs on the same device)
    amp: bool = False  # bf16 autocast on the CPU, fp16 + GradScaler on CUDA
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
    from edgepose.data.options import build_eval_reader

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
    device = next(model.parameters()).device
    with torch.no_grad():
        P = torch.cat([model(torch.from_numpy(x[i:i + 64]).to(device))["R"].float().cpu()
                       for i in range(0, len(x), 64)]).numpy()
    return float(euler_mae(P.astype(np.float64), R)["mae"])


def distill(cfg: DistillConfig, progress: bool = True, resume: str | Path | None = None) -> dict[str, Any]:
    """Distil ``cfg.teacher`` into a student; ``resume``: a run folder or its ``last.pt``."""
    from edgepose.metadata import atomic_write_text
    from edgepose.train.config import SchedConfig
    from edgepose.train.engine import Engine, EngineConfig

    from .data import PairedCropDataset, collate
    from .losses import DistillLoss
    from .objective import DistillModule, DistillObjective
    from .teacher import load_teacher

    out = Path(cfg.out_dir)
    from edgepose.io_safety import check_outputs, with_sidecars

    # a teacher checkpoint inside out_dir (e.g. a previous run's best.pt) must not be overwritten
    check_outputs(with_sidecars([("teacher", t) for t in cfg.teacher if Path(str(t)).is_file()]),
                  with_sidecars([(f"out_dir {n}", out / n) for n in ("config.yaml", "manifest.json", "best.pt",
                                                                      "last.pt", "metrics.jsonl", "student.onnx")]),
                  dir_outputs=[("out_dir", out)])
    cached = cfg.data.teacher_labels == "cached"
    val_reader = None
    if cfg.data.val:
        from edgepose.data.options import build_eval_reader

        val_reader = build_eval_reader(dict(cfg.data.val), where="data.val")
    o = cfg.optim
    engine_cfg = EngineConfig(
        epochs=o.epochs, optim=o, sched=SchedConfig(name="cosine", warmup_epochs=o.warmup_epochs),
        amp=cfg.amp, ema=o.ema, device=cfg.device, seed=cfg.seed, threads=cfg.threads, output=str(out),
        best_metric="val_mae" if val_reader is not None else None, progress=progress, desc="distill")
    objective = DistillObjective(cfg, None, cached)
    engine = Engine(engine_cfg, objective)
    if engine.dist.is_main:
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
    if engine.dist.is_main:
        atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
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
    objective.teacher, objective.datasets = (None if cached else teacher), [ds]
    loader = engine.loader(ds, o.batch_size, o.workers, train=True, drop_last=len(ds) > o.batch_size,
                           collate_fn=collate_cached if cached else collate)
    criterion = DistillLoss(cfg.loss, student.num_features, teacher.num_features, dict(student.bins), teacher.bins)
    student.provenance.update({"distilled_from": teacher.describe(), "command": " ".join(sys.argv),
                               "data": {"unlabelled": cfg.data.unlabelled, "labelled": cfg.data.labelled}})

    def validate(model) -> dict[str, float]:
        return {"val_mae": _val_mae(model, val_reader)}

    engine.fit(DistillModule(student, criterion), loader, validate=validate if val_reader is not None else None,
               resume=resume, checkpoint_extra={"config": _cfg_dict(cfg)})
    best = out / "best.pt"
    result: dict[str, Any] = {"out_dir": str(out), "best": str(best), "history": engine.history}
    if cfg.export_onnx and engine.dist.is_main:
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
