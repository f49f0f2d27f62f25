"""The ``roi-heads`` stage of the default-model build: face-presence + box heads on a FROZEN pose trunk.

    edgepose models build --config configs/default-model/build.yaml --stage roi-heads            # after a build
    edgepose models build ... --stage roi-heads out_dir=runs/default-model-v10 roi_heads.out_dir=runs/roi

It runs after any build (``roi_heads.enabled: true`` in the recipe runs it as the build's last step)
and attaches :class:`edgepose.models.roi_heads.RoiHeads` to whatever trunk the build shipped:

1. **Samples** (crops in the model's own preprocessing, from the build's caches, read only):
   *positives* are the real faces of ``real.npz`` with jittered boxes (IoU >= ``min_iou_positive``
   with the detector box; target = the detector box in the crop's units, what the tracker needs
   to re-crop the next frame) and the synthetic heads of ``synth.npz`` inside the driver's
   pose range (presence only: their boxes are the renderer's, not the detector's);
   *negatives* are random boxes on the frames of face-free media (``roi_heads.negatives``,
   e.g. ``videos/no_face.mp4``) and badly shifted boxes on the real faces (IoU <= 0.05).
   Validation: ``real-val.npz`` (held-out people) and the last ``val_fraction`` of each
   negative video's frames.
2. **Features**: the frozen trunk's pooled features of every crop, computed once (eval mode: the
   trunk and its BatchNorm statistics stay exactly as shipped, so the pose outputs do not change).
3. **Training** through the one engine (:mod:`edgepose.train.engine`) with :class:`RoiHeadsObjective`
   (binary cross-entropy on presence + smooth-L1 on the box where it has a target); only the
   heads' parameters are in the optimizer.
4. **Export + INT8** of the pose model with its heads (``build.export_all``: the presence / box
   outputs join the pose outputs, the heads stay float like the pose head), ``--install`` copies them.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepose.errors import DataError, UserError
from edgepose.metadata import atomic_write_text
from edgepose.methods.method import Method

from .build_config import RoiHeadsSection

log = logging.getLogger("edgepose.assets.build")


# -- box <-> crop units ------------------------------------------------------------------------------------
def jitter_box(box: np.ndarray, rng: np.random.Generator, shift: float, scale: float) -> np.ndarray:
    """A box moved by up to ``shift`` x its size and resized by up to ``1 + scale`` (aspect +-10 %)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2 + rng.uniform(-shift, shift) * w
    cy = (y1 + y2) / 2 + rng.uniform(-shift, shift) * h
    s = float(np.exp(rng.uniform(-np.log1p(scale), np.log1p(scale))))
    a = float(np.exp(rng.uniform(-0.1, 0.1)))
    w, h = w * s * a, h * s / a
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def shifted_box(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A box of the face's size 1.2-2 face sizes away in a random direction (IoU with the face ~0)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    ang = rng.uniform(0, 2 * np.pi)
    d = rng.uniform(1.2, 2.0)
    dx, dy = np.cos(ang) * d * w, np.sin(ang) * d * h
    return np.array([x1 + dx, y1 + dy, x2 + dx, y2 + dy])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes (:func:`edgepose.runtime.detection.iou_matrix`)."""
    from edgepose.runtime.detection import iou_matrix

    return float(iou_matrix(a, b)[0, 0])


# -- samples -----------------------------------------------------------------------------------------------
@dataclass
class Samples:
    """Crops described as (image index, box) with their targets; ``images`` are the source images."""

    images: list[np.ndarray] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    presence: list[float] = field(default_factory=list)
    target: list[np.ndarray] = field(default_factory=list)  # detector box in crop units, NaN = none
    kind: list[str] = field(default_factory=list)

    def add(self, image_index: int, box, presence: float, target, kind: str) -> None:
        self.index.append(image_index)
        self.boxes.append(np.asarray(box, np.float64))
        self.presence.append(float(presence))
        self.target.append(np.full(4, np.nan) if target is None else np.asarray(target, np.float64))
        self.kind.append(kind)

    def __len__(self) -> int:
        return len(self.index)


def face_samples(out: Samples, images: np.ndarray, boxes: np.ndarray, spec, cfg: RoiHeadsSection,
                 rng: np.random.Generator, with_box: bool, kind: str, shifted: float) -> None:
    """Jittered positives (target: the detector box in crop units when ``with_box``) and shifted negatives."""
    from edgepose.preprocess import box_in_crop, crop_box

    base = len(out.images)
    out.images.extend(images)  # views into the cache arrays, no copies
    for i, box in enumerate(boxes):
        box = np.asarray(box, np.float64)
        for _ in range(20):  # rejection: keep the jitter that still overlaps the face
            jb = jitter_box(box, rng, cfg.jitter_shift, cfg.jitter_scale)
            if box_iou(jb, box) >= cfg.min_iou_positive:
                break
        else:
            jb = box
        target = box_in_crop(box, crop_box(jb, spec.crop)) if with_box else None
        out.add(base + i, jb, 1.0, target, kind)
        if rng.random() < shifted:
            out.add(base + i, shifted_box(box, rng), 0.0, None, kind + "-shifted")


def negative_detectors(cfg: RoiHeadsSection, root: Path) -> list:
    """The detectors of ``hard_negative_detectors`` ("NAME" or "NAME=PATH", a relative PATH under the data root)."""
    from edgepose.runtime.detectors import create_detector

    dets = []
    for spec in cfg.hard_negative_detectors:
        name, _, path = spec.partition("=")
        if path and not Path(path).is_absolute():
            path = str(root / path)
        dets.append(create_detector(name, model_path=path or None, intra_op_threads=1))
    return dets


def video_negatives(out: Samples, path: Path, cfg: RoiHeadsSection, rng: np.random.Generator,
                    split: str, detectors: list = ()) -> int:
    """Random face-sized boxes on a face-free video's frames (train: the first frames, val: the last), and every
    box ``detectors`` find there (kind ``detector-false``: the false boxes ROI mode would otherwise follow)."""
    from edgepose.data.video import iter_video_frames

    try:
        frames = [frame for _, frame in iter_video_frames(path)]
    except DataError as exc:
        raise DataError(f"roi_heads.negatives: {exc}") from None
    cut = int(round(len(frames) * (1.0 - cfg.val_fraction)))
    chosen = frames[:cut:cfg.frame_step] if split == "train" else frames[cut::cfg.frame_step]
    for frame in chosen:
        h, w = frame.shape[:2]
        out.images.append(frame)
        k = len(out.images) - 1
        for _ in range(cfg.boxes_per_frame):
            bw = float(np.exp(rng.uniform(np.log(32), np.log(min(w, h) * 0.8))))
            bh = bw * float(np.exp(rng.uniform(np.log(0.9), np.log(1.4))))  # detector boxes are taller than wide
            x1, y1 = rng.uniform(-0.2 * bw, w - 0.8 * bw), rng.uniform(-0.2 * bh, h - 0.8 * bh)
            out.add(k, (x1, y1, x1 + bw, y1 + bh), 0.0, None, "no-face")
        for det in detectors:
            for d in det.detect(frame):
                x1, y1, x2, y2 = (float(v) for v in d.box[:4])
                if x2 > x1 and y2 > y1:
                    out.add(k, (x1, y1, x2, y2), 0.0, None, "detector-false")
    return len(chosen)


def synth_positive_indices(synth: dict, cfg: RoiHeadsSection, rng: np.random.Generator) -> np.ndarray:
    from edgepose import geometry

    eul = np.abs(geometry.matrix_to_euler(synth["R"].astype(np.float64)))
    ok = np.flatnonzero((eul <= np.asarray(cfg.synth_max_deg, np.float64)).all(axis=1))
    return np.sort(rng.choice(ok, min(cfg.synth_positives, len(ok)), replace=False)) if len(ok) else ok


def trunk_features(model, samples: Samples, spec, batch: int = 256, desc: str = "features") -> np.ndarray:
    """The frozen trunk's pooled features of every sample's crop (eval mode, no gradients)."""
    import torch
    from tqdm import tqdm

    from edgepose.preprocess import preprocess

    model.eval()
    feats = []
    with torch.no_grad():
        for s in tqdm(range(0, len(samples), batch), desc=desc, unit="batch", leave=False):
            x = np.stack([preprocess(samples.images[samples.index[j]], samples.boxes[j], spec)
                          for j in range(s, min(s + batch, len(samples)))])
            feats.append(model.forward_features(torch.from_numpy(x)).float().numpy())
    return np.concatenate(feats) if feats else np.zeros((0, model.num_features), np.float32)


def cached_features(model, train_s: Samples, val_s: Samples, spec, cfg, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Trunk features of both splits, kept in ``out/roi-features.npz`` under a key of the trunk's weights, the
    stage's sample settings and the seed (the features are most of the stage's time; retraining the heads
    with other loss or optimizer settings reuses them)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if not name.startswith("roi_heads."):
            h.update(name.encode())
            h.update(t.detach().cpu().numpy().tobytes())
    r = cfg.roi_heads
    sample_keys = ("negatives", "boxes_per_frame", "frame_step", "val_fraction", "jitter_shift", "jitter_scale",
                   "min_iou_positive", "shifted_negatives", "synth_positives", "synth_max_deg", "profiled_positives")
    h.update(json.dumps({k: getattr(r, k) for k in sample_keys} | {"seed": cfg.seed, "n": [len(train_s), len(val_s)]},
                        sort_keys=True).encode())
    key = h.hexdigest()
    cache = out / "roi-features.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                log.info("trunk features from %s", cache)
                return z["train"], z["val"]
    f_train = trunk_features(model, train_s, spec, desc="trunk features (train)")
    f_val = trunk_features(model, val_s, spec, desc="trunk features (val)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "roi-features.partial.npz"
    np.savez(tmp, key=np.asarray(key), train=f_train, val=f_val)
    tmp.replace(cache)
    return f_train, f_val


# -- the objective -----------------------------------------------------------------------------------------
def roi_stage_module(pose_model):
    """What the engine trains: the pose model (trunk + pose head frozen) whose ``roi_heads`` read features;
    ``Method.pose_model`` finds ``.pose_model``, so checkpoints hold the whole model with its heads."""
    from torch import nn

    class RoiHeadsStage(nn.Module):
        def __init__(self, pm):
            super().__init__()
            self.pose_model = pm

        def forward(self, features):
            return self.pose_model.roi_heads(features)

    return RoiHeadsStage(pose_model)


class RoiHeadsObjective(Method):
    """Binary cross-entropy on presence + ``box_weight`` x smooth-L1 on the crop-unit box (where targeted)."""

    name = "build-roi-heads"

    def __init__(self, cfg: RoiHeadsSection):
        super().__init__(cfg, None)

    def param_groups(self, module) -> list[dict]:
        return [{"params": list(self.pose_model(module).roi_heads.parameters())}]

    def train_mode(self, model) -> None:
        model.eval()  # the trunk's BatchNorm statistics are the shipped ones
        self.pose_model(model).roi_heads.train()

    def training_step(self, batch: dict, model):
        import torch
        import torch.nn.functional as F

        with self.autocast():
            out = model(batch["features"])
        presence = out["presence"].float().squeeze(1)
        loss_p = F.binary_cross_entropy_with_logits(presence, batch["presence"].float())
        mask = batch["box_mask"].bool()
        if mask.any():
            loss_b = F.smooth_l1_loss(out["box"].float()[mask], batch["box"].float()[mask], beta=0.05)
        else:
            loss_b = presence.sum() * 0.0
        loss = loss_p + self.cfg.box_weight * loss_b
        return loss, {"presence": float(loss_p.detach()), "box": float(loss_b.detach())}


class FeatureSet:
    """(features, presence, box target, box mask) rows as the engine's dataset."""

    def __init__(self, feats: np.ndarray, samples: Samples):
        self.feats = feats.astype(np.float32)
        self.presence = np.asarray(samples.presence, np.float32)
        target = np.stack(samples.target) if len(samples) else np.zeros((0, 4))
        self.mask = np.isfinite(target).all(axis=1)
        self.box = np.nan_to_num(target, nan=0.0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> dict:
        # 0-d arrays, not numpy scalars: the engine's collate stacks arrays and keeps other values as lists
        return {"features": self.feats[i], "presence": np.asarray(self.presence[i]), "box": self.box[i],
                "box_mask": np.asarray(self.mask[i])}


def evaluate_heads(heads, feats: np.ndarray, samples: Samples, spec) -> dict[str, float]:
    """Presence accuracy (at 0.5) on positives / negatives, and the box's IoU with the detector box
    (beside the jittered input box's IoU: what the refinement gains)."""
    import torch

    from edgepose.preprocess import box_from_crop, crop_box

    with torch.no_grad():
        out = heads(torch.from_numpy(feats.astype(np.float32)))
    p = torch.sigmoid(out["presence"]).squeeze(1).numpy()
    box = out["box"].numpy()
    y = np.asarray(samples.presence)
    row = {"presence_acc_pos": float((p[y == 1] >= 0.5).mean()) if (y == 1).any() else float("nan"),
           "presence_acc_neg": float((p[y == 0] < 0.5).mean()) if (y == 0).any() else float("nan")}
    kinds = np.asarray(samples.kind)
    if ((kinds == "detector-false") & (y == 0)).any():  # the false boxes a detector feeds ROI mode: rejected?
        sel = (kinds == "detector-false") & (y == 0)
        row["presence_acc_detector_false"] = float((p[sel] < 0.5).mean())
    ious, ious_in, kinds = [], [], []
    for j in range(len(samples)):
        t = samples.target[j]
        if not np.isfinite(t).all():
            continue
        crop = crop_box(samples.boxes[j], spec.crop)
        truth = box_from_crop(t, crop)
        ious.append(box_iou(box_from_crop(box[j], crop), truth))
        ious_in.append(box_iou(samples.boxes[j], truth))
        kinds.append(samples.kind[j])
    if ious:
        row.update(box_iou_mean=float(np.mean(ious)), input_box_iou_mean=float(np.mean(ious_in)))
        kinds = np.asarray(kinds)
        for kind in sorted(set(kinds.tolist())):  # frontal real faces and large poses apart
            sel = kinds == kind
            row[f"box_iou_mean_{kind}"] = float(np.mean(np.asarray(ious)[sel]))
    return row


# -- the stage ---------------------------------------------------------------------------------------------
def _load_cache(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"roi-heads stage: {path} not found ({what}); run `edgepose models build` first, or point "
                        f"out_dir= at a finished build")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k in ("images", "boxes", "R", "manifest")}


def negative_videos(r, root: Path) -> list[Path]:
    """``roi_heads.negatives`` resolved under the data root; a missing file is one line naming it (the build
    checks this before any labelling or training, not after)."""
    out = []
    for name in r.negatives:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise UserError(f"roi_heads.negatives: {path} not found (a face-free video under the data root; "
                            f"or roi_heads.enabled=false)")
        out.append(path)
    return out


def train_roi_heads(cfg, root: Path, out: Path, command: str = "edgepose models build --stage roi-heads",
                    model=None):
    """Train the heads on ``model`` (a PoseModel; None = ``roi_heads.model`` or ``out_dir/last.pt``) with the
    build caches of ``cfg.out_dir``; writes ``out/last.pt`` + ``out/metrics.jsonl``; returns the PoseModel
    with its heads (CPU, eval mode)."""
    import torch

    from edgepose.models.pose_model import PoseModel
    from edgepose.train.config import OptimConfig, SchedConfig
    from edgepose.train.engine import Engine, EngineConfig

    r: RoiHeadsSection = cfg.roi_heads
    build_dir = Path(cfg.out_dir)
    if model is None:
        src = Path(r.model) if r.model else build_dir / "last.pt"
        if not src.is_file():
            raise UserError(f"roi-heads stage: pose model {src} not found; build it first or set roi_heads.model=")
        model = PoseModel.from_checkpoint(src)
    model = model.cpu().eval()
    for p in model.parameters():  # frozen: only the new heads learn
        p.requires_grad_(False)
    torch.manual_seed(cfg.seed)  # the heads' initial weights: the same stage gives the same heads
    heads = model.add_roi_heads(r.hidden)
    spec = model.preprocess
    rng = np.random.default_rng(cfg.seed)

    train_s, val_s = Samples(), Samples()
    real = _load_cache(build_dir / "real.npz", "the build's real faces")
    face_samples(train_s, real["images"], real["boxes"], spec, r, rng, True, "real", r.shifted_negatives)
    val_path = build_dir / "real-val.npz"
    if val_path.is_file():
        rv = _load_cache(val_path, "held-out people")
        face_samples(val_s, rv["images"], rv["boxes"], spec, r, rng, True, "real", r.shifted_negatives)
    if r.synth_positives > 0 and (build_dir / "synth.npz").is_file():
        synth = _load_cache(build_dir / "synth.npz", "synthetic heads")
        idx = synth_positive_indices(synth, r, rng)
        face_samples(train_s, synth["images"][idx], synth["boxes"][idx], spec, r, rng, False, "synth", 0.0)
    if r.profiled_positives > 0 and (build_dir / "profiled.npz").is_file():
        prof = _load_cache(build_dir / "profiled.npz", "profiled faces")
        idx = np.sort(rng.choice(len(prof["images"]), min(r.profiled_positives, len(prof["images"])), replace=False))
        face_samples(train_s, prof["images"][idx], prof["boxes"][idx], spec, r, rng, True, "profiled",
                     r.shifted_negatives)
        del prof
        if (build_dir / "profiled-val.npz").is_file():  # held-out people at large poses
            pv = _load_cache(build_dir / "profiled-val.npz", "profiled held-out people")
            face_samples(val_s, pv["images"], pv["boxes"], spec, r, rng, True, "profiled", r.shifted_negatives)
    frames = 0
    detectors = negative_detectors(r, root)
    try:
        for path in negative_videos(r, root):
            frames += video_negatives(train_s, path, r, rng, "train", detectors)
            video_negatives(val_s, path, r, rng, "val", detectors)
    finally:
        for det in detectors:
            det.close()
    log.info("roi-heads samples: %d train (%d positive), %d validation, %d negative frames",
             len(train_s), int(sum(train_s.presence)), len(val_s), frames)

    torch.set_grad_enabled(True)
    f_train, f_val = cached_features(model, train_s, val_s, spec, cfg, out)
    # start the box at the mean target: a head that first learns the constant wastes epochs on it
    pos = np.stack([t for t in train_s.target if np.isfinite(t).all()])
    with torch.no_grad():
        heads.box.bias.copy_(torch.from_numpy(pos.mean(axis=0).astype(np.float32)))
        rate = float(np.mean(train_s.presence))
        heads.presence.bias.fill_(float(np.log(rate / (1 - rate))))

    objective = RoiHeadsObjective(r)
    engine_cfg = EngineConfig(
        epochs=r.epochs, optim=OptimConfig(name="adamw", lr=r.lr, weight_decay=r.weight_decay),
        sched=SchedConfig(name="cosine", warmup_iters=20), device="cpu", seed=cfg.seed, output=str(out),
        best_metric=None, write_best=False, desc="roi-heads epoch", val_every=5)
    engine = Engine(engine_cfg, objective)
    loader = engine.loader(FeatureSet(f_train, train_s), r.batch_size, 0, train=True, drop_last=True)
    stage = roi_stage_module(model)

    def validate(shipped) -> dict[str, float]:
        return {f"val_{k}": v for k, v in evaluate_heads(shipped.roi_heads, f_val, val_s, spec).items()}

    model.provenance["roi_heads"] = {
        "command": command, "trunk": "frozen", "hidden": r.hidden,
        "positives": {"real": int(sum(1 for k in train_s.kind if k == "real")),
                      "profiled": int(sum(1 for k in train_s.kind if k == "profiled")),
                      "synthetic": int(sum(1 for k in train_s.kind if k == "synth"))},
        "negatives": {"no_face_boxes": int(sum(1 for k in train_s.kind if k == "no-face")),
                      "shifted_boxes": int(sum(1 for k in train_s.kind if k.endswith("-shifted"))),
                      "detector_boxes": int(sum(1 for k in train_s.kind if k == "detector-false")),
                      "hard_negative_detectors": list(r.hard_negative_detectors),
                      "media": [str(n) for n in r.negatives]}}
    result = engine.fit(stage, loader, validate=validate, provenance={"stage": "roi-heads"})
    shipped = engine.shipped_model.cpu().eval()
    shipped.provenance["roi_heads"]["validation"] = {k: v for k, v in result.items()
                                                     if k.startswith("val_") and isinstance(v, float)}
    atomic_write_text(out / "roi-heads-report.json", json.dumps(shipped.provenance["roi_heads"], indent=2) + "\n")
    log.info("roi-heads validation: %s", shipped.provenance["roi_heads"]["validation"])
    return shipped, real
