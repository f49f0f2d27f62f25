"""Steps 1 and 2 of the default-model build: real faces labelled by the teacher (cached, guarded) and
synthetic heads with exact labels (rendered in parallel processes), plus the array readers that feed
them to training."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from edgepose.errors import DataError, UserError

from .build_config import FORBIDDEN, MARGIN, BuildConfig, resolve_path

log = logging.getLogger("edgepose.assets.build")


def downscale_crops(data: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Cached margin crops for a larger student, resampled to ``size`` px for a smaller one.

    A stored crop covers ``MARGIN`` x the student's crop box, whatever its pixel size, so the face region and the
    labels stay the same; boxes are continuous image coordinates (pixel i covers [i, i + 1), edgepose.preprocess),
    so they scale by ``size / stored``. INTER_AREA averages the source pixels a target pixel covers (no aliasing)."""
    import cv2

    stored = int(data["images"].shape[1])
    k = size / stored
    out = dict(data)
    out["images"] = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in data["images"]])
    out["boxes"] = (np.asarray(data["boxes"], np.float64) * k).astype(data["boxes"].dtype)
    return out


# -- 1. real faces + teacher labels ----------------------------------------------------------------
def real_faces(cfg: BuildConfig, root: Path, teacher, spec, out: Path, media: list[str] | None = None,
               cache_name: str = "real.npz") -> dict[str, np.ndarray]:
    """Detector faces of the real media (``media``, default ``data.real``), teacher-labelled; cached in
    ``out/<cache_name>``. The cache is refused when its teachers, crop size or media differ."""
    import torch
    from tqdm import tqdm

    from edgepose.data.augment import transform_points
    from edgepose.data.faces import DetectedFaceReader, DetectorSettings, detect_faces
    from edgepose.distill.teacher import flip_tta_labels
    from edgepose.preprocess import CropPolicy, PreprocessSpec, crop_image, normalize, to_bgr

    cache = out / cache_name
    sources = media_paths(root, cfg.data.real if media is None else media)
    m = int(round(spec.input_size * MARGIN))  # stored crop size for this student
    if cache.is_file():
        data = dict(np.load(cache, allow_pickle=False))
        labelled_by = [str(t) for t in data.get("teachers", np.asarray(["whenet"]))]
        if labelled_by != list(cfg.teacher):
            raise UserError(f"{cache} holds labels from teacher {labelled_by}, the config asks for {list(cfg.teacher)}: "
                            f"delete that file (or set out_dir to a new folder) to relabel the real faces")
        stored = int(data["images"].shape[1])
        if stored < m:
            raise UserError(f"{cache} holds {stored} px face crops, made for a {round(stored / MARGIN)} px student; "
                            f"student.input_size={spec.input_size} needs {m} px: delete that file (or set out_dir "
                            f"to a new folder) to crop the real faces again")
        cached = sorted(m["sha256"] for m in json.loads(str(data["manifest"])))
        if cached != sorted(media_digests(sources)):
            raise UserError(f"{cache} holds faces from other media files than {', '.join(map(str, sources))}: "
                            f"delete that file (or set out_dir to a new folder) to detect and label them again")
        log.info("real faces + teacher labels from %s", cache)
        if stored > m:
            data = downscale_crops(data, m)
            log.info("%s: %d px crops resampled to %d px for a %d px student (same face region; labels unchanged)",
                     cache, stored, m, spec.input_size)
        return data
    st = DetectorSettings(name=cfg.data.detector, model_path=str(resolve_path(root, cfg.data.detector_model) or "") or None,
                          video_step=cfg.data.video_step, max_frames_per_video=cfg.data.max_frames_per_video,
                          max_faces=cfg.data.max_faces, min_face=cfg.data.min_face,
                          pad_large_faces=cfg.data.pad_large_faces)
    boxes, manifest = detect_faces(sources, st, cache_dir=out / "faces")
    reader = DetectedFaceReader(boxes, st)
    t_specs = teacher.specs  # one crop per ensemble member, each by its own preprocessing
    margin_spec = PreprocessSpec(input_size=m, color_order="BGR",
                                 crop=CropPolicy(**{**spec.crop.to_dict(), "scale": spec.crop.scale * MARGIN}))
    crops, bxs, Rs, spread, members, src = [], [], [], [], [], []
    batch_x: list[list[np.ndarray]] = [[] for _ in t_specs]  # [member][face]
    batch_f: list[list[np.ndarray]] = [[] for _ in t_specs]

    def flush():
        if not batch_x[0]:
            return
        R, d, Rm = flip_tta_labels(teacher, [torch.from_numpy(np.stack(b)) for b in batch_x],
                                   [torch.from_numpy(np.stack(b)) for b in batch_f])
        Rs.extend(R.numpy())
        spread.extend(d.numpy())
        members.extend(Rm.transpose(0, 1).numpy())
        for b in (*batch_x, *batch_f):
            b.clear()

    for s in tqdm(reader, total=len(reader), desc="teacher labels"):
        frame = to_bgr(s.image)
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
            "disagreement": np.asarray(spread, np.float32),  # teachers' spread per face (deg; NaN: one teacher)
            "member_R": np.asarray(members, np.float32),  # (N, members, 3, 3): each teacher's own answer
            "sources": np.asarray(src), "manifest": np.asarray(json.dumps(manifest)),
            "teachers": np.asarray(list(cfg.teacher))}
    np.savez(cache.with_suffix(".tmp.npz"), **data)
    os.replace(cache.with_suffix(".tmp.npz"), cache)
    log.info("%d real faces from %d files", len(crops), len(manifest))
    return data


def media_paths(root: Path, names: list[str]) -> list[Path]:
    """``data.real`` / ``data.real_val`` entries as paths; refuses evaluation data and names what is missing."""
    sources = [resolve_path(root, s) for s in names]
    for s in sources:
        if any(f in str(s).lower() for f in FORBIDDEN):
            raise UserError(f"{s}: the AFLW2000 / 300W-LP / BIWI samples are evaluation data (non-commercial); "
                            f"never train the shipped model on them")
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(f"real media not found: {', '.join(missing[:3])}{more}; pass --data-root (the shared data "
                        f"folder, see docs/models.md) or set EDGEPOSE_TEST_DATA")
    return sources


_UTKFACE_NAME = re.compile(r"^(\d{1,3})_[01]_\d_\d+\.jpg")


def person_age(path: Path) -> int | None:
    """The age a UTKFace file name states (``26_1_2_2017...jpg.chip.jpg``), else None."""
    m = _UTKFACE_NAME.match(path.name)
    return int(m.group(1)) if m else None


def source_group(path: Path) -> str:
    """Who is in a file, as far as its name tells: ``owner__repo`` for files named ``owner__repo__clip`` (one
    repository's clips often show the same person), else the file's name (not its path: the split must not
    depend on where the data folder is mounted)."""
    parts = path.name.split("__")
    return "__".join(parts[:2]) if len(parts) >= 3 else path.name


def held_out(group: str, fraction: float) -> bool:
    """A stable draw per group (sha256 of its name): the same groups are held out on every machine and run."""
    import hashlib

    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 2 ** 32 < fraction


def select_media(cfg: BuildConfig, root: Path) -> tuple[list[str], list[str]]:
    """``data.real`` and ``data.real_val`` as file lists: ``data.min_age`` drops images of children (UTKFace
    names carry the age), ``data.real_val_split`` moves whole source groups of ``data.real`` to the held-out
    list. Returns (training files, held-out files) as strings, sorted."""
    from edgepose.data.faces import list_media

    d = cfg.data
    if not 0.0 <= d.real_val_split < 1.0:
        raise UserError(f"data.real_val_split={d.real_val_split}: use a share in [0, 1), e.g. 0.1")

    def adult(f: Path) -> bool:
        age = person_age(f)
        return age is None or age >= d.min_age

    train = [f for f in list_media(media_paths(root, d.real)) if adult(f)]
    val = [f for f in list_media(media_paths(root, d.real_val)) if adult(f)] if d.real_val else []
    if d.real_val_split > 0:
        drawn = [f for f in train if held_out(source_group(f), d.real_val_split)]
        train = [f for f in train if not held_out(source_group(f), d.real_val_split)]
        # public face sets repeat images under other names: a drawn copy of a training image stays out
        seen = {_digest(str(f), *_stamp(f)) for f in train}
        val += [f for f in drawn if _digest(str(f), *_stamp(f)) not in seen]
    if not train:
        raise UserError("data.real leaves no training file (data.min_age / data.real_val_split took them all)")
    # absolute paths: media_paths() would otherwise join a relative data root a second time
    return sorted(str(f.resolve()) for f in train), sorted({str(f.resolve()) for f in val})


def media_digests(sources: list[Path]) -> list[str]:
    from edgepose.data.faces import list_media

    return [_digest(str(f), *_stamp(f)) for f in list_media(sources)]


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=None)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a media file, once per (path, size, mtime) in a build: the held-out check and the
    cache check both ask, and footage can be gigabytes."""
    from edgepose.metadata import file_sha256

    return file_sha256(path)


def check_held_out(root: Path, train: list[str], held_out: list[str]) -> None:
    """``data.real_val`` must not share a file (by content) with ``data.real``: it would validate on training faces."""
    if not held_out:
        return
    shared = set(media_digests(media_paths(root, train))) & set(media_digests(media_paths(root, held_out)))
    if shared:
        raise UserError(f"data.real_val shares {len(shared)} file(s) with data.real (same content): a held-out "
                        f"set must hold other media (other people), or the validation measures the training faces")


# -- 2. synthetic heads ------------------------------------------------------------------------------
def synth_set(n: int, seed: int, split: str, pose_range: str, identities: int, size: int, full_fraction: float,
              cache: Path | None, workers: int = 1) -> dict[str, np.ndarray]:
    """Rendered heads (exact R_crop labels, face boxes); ``full_fraction`` of them uniform on SO(3).

    Each render is a pure function of (seed, index), so ``workers`` processes produce exactly the
    arrays one process does, in the same order."""
    from tqdm import tqdm

    settings = {"n": n, "seed": seed, "split": split, "pose_range": pose_range, "identities": identities,
                "size": size, "full_fraction": full_fraction}
    if cache is not None and cache.is_file():
        return _cached_renders(cache, settings)
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
        with _pool(workers, len(jobs)) as pool:
            for part in pool.imap(_render_range, jobs) if pool else map(_render_range, jobs):  # in index order
                for dst, new in zip((imgs, boxes, Rs), part):
                    dst.extend(new)
                bar.update(len(part[0]))
        bar.close()
    data = {"images": np.stack(imgs), "boxes": np.asarray(boxes, np.float32), "R": np.asarray(Rs, np.float32),
            "settings": np.asarray(json.dumps(settings, sort_keys=True))}
    if cache is not None:
        np.savez(cache.with_suffix(".tmp.npz"), **data)
        os.replace(cache.with_suffix(".tmp.npz"), cache)
    return data


def _cached_renders(cache: Path, settings: dict) -> dict[str, np.ndarray]:
    """A synthetic cache, refused when it was rendered with other settings (another ``data.synth_size``
    would otherwise train a 160 px student on 128 px heads without a word). Caches written before the
    settings were recorded are checked by what their arrays show: count and size."""
    data = dict(np.load(cache, allow_pickle=False))
    fix = "delete that file (or set out_dir to a new folder) to render the synthetic heads again"
    if "settings" in data:
        stored = json.loads(str(data["settings"]))
        diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
        if diff:
            said = ", ".join(f"{k} {a!r} (asked: {b!r})" for k, (a, b) in diff.items())
            raise UserError(f"{cache} was rendered with other settings: {said}; {fix}")
    else:
        shown = (int(data["images"].shape[0]), int(data["images"].shape[1]))
        if shown != (settings["n"], settings["size"]):
            raise UserError(f"{cache} holds {shown[0]} renders of {shown[1]} px, the config asks for "
                            f"{settings['n']} of {settings['size']} px; {fix}")
        log.info("%s predates recorded render settings: its count and size match, the rest is not checked", cache)
    return data


def _render_range(job) -> tuple[list, list, list]:
    """Render indices [start, stop) of one synthetic set (a top-level function: it runs in worker processes)."""
    from edgepose.preprocess import to_bgr
    from edgepose.synth import SynthHeadDataset

    (m, seed, split, identities, pose_range, size), start, stop = job
    ds = SynthHeadDataset(m, seed=seed, split=split, n_identities=identities, pose_range=pose_range, size=size)
    imgs, boxes, Rs = [], [], []
    for i in range(start, stop):
        s = ds[i]
        imgs.append(to_bgr(s.image))
        boxes.append(s.box)
        Rs.append(s.R)
    return imgs, boxes, Rs


def _pool(workers: int, jobs: int):
    """A spawn process pool for ``workers`` > 1 (EGL is not fork-safe), else a context holding None."""
    if workers <= 1:
        return contextlib.nullcontext()
    import multiprocessing as mp

    return mp.get_context("spawn").Pool(min(workers, jobs))


class ArrayReader:
    """Images + boxes + rotations held in arrays, as an :class:`edgepose.data.Reader`."""

    name = "arrays"

    def __init__(self, data: dict[str, np.ndarray], tag: str, weights: np.ndarray | None = None):
        self.images, self.boxes, self.R, self.tag = data["images"], data["boxes"], data["R"], tag
        self.weights = weights  # per-sample loss weight (teacher agreement), None = 1

    def __len__(self) -> int:
        return len(self.images)

    def get(self, index: int, rng=None):
        from edgepose.data.sample import Sample

        extra = {} if self.weights is None else {"weight": float(self.weights[index])}
        return Sample(image=self.images[index], R=self.R[index].astype(np.float64),
                      box=tuple(float(v) for v in self.boxes[index]), source=f"{self.tag}:{index}", extra=extra)

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


def readers_as_dataset(readers, spec, augment):
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
