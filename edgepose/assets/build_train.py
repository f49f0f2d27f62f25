"""Step 3 of the default-model build: training the student.

What is the build's own: the student's initialisation (from the teacher or a checkpoint), its two
learning-rate groups, the weighted geodesic objective and the per-epoch validation (synthetic heads with
exact labels, held-out people against the teachers).  The loop -- optimizer, schedule, EMA, AMP, DDP,
resume, checkpoints, ``metrics.jsonl`` -- is the one training engine (:mod:`edgepose.train.engine`)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgepose.errors import UserError

from edgepose.methods.method import Method

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


class GeodesicObjective(Method):
    """The build's objective: per-face weighted geodesic distance from the (ensemble) label."""

    name = "build-geodesic"

    def __init__(self, cfg: BuildConfig, copied: list[str]):
        super().__init__(cfg, None)
        self.copied = copied
        self.noise = None  # edgepose.train.quant_noise.QuantNoise, attached at the first step when enabled
        self._noise_state: dict = {}

    def state_dict(self) -> dict:
        return {"quant_noise": self.noise.state_dict()} if self.noise is not None else dict(self._noise_state)

    def load_state_dict(self, state: dict) -> None:
        self._noise_state = dict(state)  # applied when the hooks are attached (the model is not known yet)

    def param_groups(self, module) -> list[dict]:
        return param_groups(module, self.copied, 1.0, self.cfg.student.init_lr_scale, as_scale=True)

    def training_step(self, batch: dict, model):
        from edgepose.losses import geodesic_loss

        from edgepose.train.consistency import consistency_term, with_jittered_views

        o, images = self.cfg.optim, batch["image"]
        if o.quant_noise > 0 and self.noise is None:
            from edgepose.train.quant_noise import QuantNoise

            self.noise = QuantNoise(o.quant_noise).attach(model)
            self.noise.load_state_dict(self._noise_state.get("quant_noise", {}))
        k = 0
        if o.consistency > 0:
            images, k = with_jittered_views(images, o.consistency_fraction, o.consistency_shift, o.consistency_scale)
        with self.autocast():
            pred = model(images)["R"]
        n = batch["R"].shape[0]
        loss = geodesic_loss(pred[:n].float(), batch["R"], batch["weight"])
        if not k:
            return loss, {}
        term = consistency_term(pred, k, o.consistency_target)
        return loss + o.consistency * term, {"consistency_deg": float(term.detach()) * 57.29577951308232}


def train(cfg: BuildConfig, spec, real: dict, synth: dict, val: dict, out: Path, teacher=None,
          real_val: dict | None = None, command: str = "edgepose models build",
          resume: str | Path | None = None, profiled: dict | None = None, profiled_val: dict | None = None):
    """``profiled`` / ``profiled_val``: the build's real faces rendered at large poses (``profiled.npz``,
    trained on; ``profiled-val.npz``, held-out people, validated on), or None (:mod:`.build_profiled`)."""
    from edgepose.data.augment import Augment
    from edgepose.metrics import geodesic_errors
    from edgepose.models.pose_model import PoseModel
    from edgepose.train.config import SchedConfig
    from edgepose.train.engine import Engine, EngineConfig

    o = cfg.optim
    warm = max(1, o.warmup_steps)
    engine_cfg = EngineConfig(
        epochs=o.epochs, optim=o, sched=SchedConfig(name="cosine", warmup_iters=warm, warmup_start=1.0 / warm),
        amp=cfg.amp, ema=o.ema, device=cfg.device, seed=cfg.training_seed(), output=str(out), best_metric=None,
        write_best=False, desc="epoch")
    objective = GeodesicObjective(cfg, [])
    engine = Engine(engine_cfg, objective)
    model = PoseModel.build(cfg.student.name, head="6d", preprocess=spec)
    model.provenance.update({"default_model": True, "teacher": cfg.teacher, "data": list(cfg.data.real),
                             "synthetic": cfg.data.synth_n,
                             "command": command})
    if profiled is not None:  # only then: a build without the option keeps v8's provenance exactly
        model.provenance["profiled"] = {"renders": int(len(profiled["images"])),
                                        "faces": int(len(np.unique(profiled["face"]))),
                                        "pose_range": cfg.data.profiled_pose_range}
    objective.copied = init_student(model, cfg, teacher) if cfg.student.init else []
    augment = Augment.from_dict(cfg.augment) or Augment()
    weights = agreement_weights(cfg, real, "real")
    readers = [Repeat(ArrayReader(real, "real", weights), cfg.data.real_repeat), ArrayReader(synth, "synth")]
    if profiled is not None:  # a render inherits its source face's label, so its agreement weight too
        readers.append(ArrayReader(profiled, "profiled", agreement_weights(cfg, profiled, "profiled")))
    ds = readers_as_dataset(readers, spec, augment)
    loader = engine.loader(ds, o.batch_size, o.workers, train=True, drop_last=True)
    from .build_report import write_label_report

    if engine.dist.is_main:
        parts = {"real": real["R"], "synthetic": synth["R"]}
        if profiled is not None:
            parts["profiled"] = profiled["R"]
        write_label_report(out, parts)
    log.info("training %s @ %d px on %d real (x%d) + %d synthetic + %d profiled crops, %d steps on %s",
             cfg.student.name, spec.input_size, len(real["images"]), cfg.data.real_repeat, len(synth["images"]),
             0 if profiled is None else len(profiled["images"]), o.epochs * len(loader), engine.device)

    def validate(shipped) -> dict[str, float]:
        ge = geodesic_errors(predict_R(shipped, val, spec), val["R"].astype(np.float64))
        row = {"synth_val_geodesic_mean": float(np.mean(ge))}
        if real_val is not None:  # held-out people: distance from the teacher's labels (no pose labels needed)
            gr = geodesic_errors(predict_R(shipped, real_val, spec), real_val["R"].astype(np.float64))
            row.update(real_val_vs_teacher_mean=float(np.mean(gr)), real_val_vs_teacher_median=float(np.median(gr)))
        if profiled_val is not None:  # held-out people at large poses: ensemble label composed with the rotation
            gp = geodesic_errors(predict_R(shipped, profiled_val, spec), profiled_val["R"].astype(np.float64))
            row.update(profiled_val_geodesic_mean=float(np.mean(gp)), profiled_val_geodesic_median=float(np.median(gp)))
        return row

    engine.fit(model, loader, validate=validate, resume=resume, provenance={"ema": o.ema})
    if objective.noise is not None:  # training is over: the exported and head-trained model carries no hooks
        objective.noise.detach()
    return engine.shipped_model.cpu()


def agreement_weights(cfg: BuildConfig, data: dict, part: str) -> np.ndarray | None:
    """Per-face weights from the teachers' disagreement (``data.agreement_weighting``), else None."""
    if not (cfg.data.agreement_weighting and "disagreement" in data):
        return None
    from edgepose.distill.teacher import agreement_weight

    weights = agreement_weight(data["disagreement"])
    log.info("%s faces weighted by teacher agreement: mean weight %.3f, %d of %d below 0.5", part,
             float(weights.mean()), int((weights < 0.5).sum()), len(weights))
    return weights


def training_device(name: str):
    """``device=`` checked before the hour of labelling, not after it (the engine uses the same rule)."""
    from edgepose.train.distributed import DistInfo
    from edgepose.train.engine import resolve_device

    return resolve_device(name, DistInfo())


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


def param_groups(model, initialised: list[str], lr: float, scale: float, as_scale: bool = False) -> list[dict]:
    """Two AdamW groups: the parameters copied by ``student.init`` (model names) at ``lr * scale``, the rest at
    ``lr``.  ``as_scale``: give the factor as ``lr_scale`` (the engine multiplies its own ``optim.lr``)."""
    _check_lr_scale(scale)
    names = set(initialised)
    pre = [p for n, p in model.named_parameters() if n in names]
    fresh = [p for n, p in model.named_parameters() if n not in names]
    key, fresh_v, pre_v = ("lr_scale", 1.0, scale) if as_scale else ("lr", lr, lr * scale)
    groups = [{"params": fresh, key: fresh_v}] if fresh else []
    if pre:
        groups.append({"params": pre, key: pre_v})
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
