"""Step 1b of the default-model build: the build's own real faces profiled to large poses (``data.profiled_*``).

The real faces are nearly frontal (v8: 1 % beyond +-30 deg pitch), so the student never saw real pixels at the
poses where it is worst. Face profiling (:mod:`edgepose.synth.profile`, docs/profiling.md) re-renders a photo at
another pose with its own pixels; here its sources are the build's labelled margin crops:

* ``out_dir/real.npz`` (training people) -> ``out_dir/profiled.npz`` (trained on), and
* ``out_dir/real-val.npz`` (held-out people) -> ``out_dir/profiled-val.npz`` (validation only: a held-out
  person is never profiled into training).

**Label.** The profiler fits MediaPipe's mesh to the crop (pose ``R_fit``) and turns the mesh by the camera-frame
rotation ``Q = R_target.T @ R_fit`` (``render.applied_rotation``), so a head that the photo shows at pose ``R``
is shown at ``R @ Q.T`` (``render.compose_label``). The build's best estimate of ``R`` is the teachers' ensemble
label, not the mesh fit, so a profiled render's label is ``R_ens @ Q.T``: the convention and the teachers of the
real labels the student trains on. The fit only decides ``Q`` (and the texture mapping).

**Layout.** The arrays of ``real.npz`` -- ``images`` (BGR uint8, MARGIN x the student crop), ``boxes``, ``R`` --
so :class:`.build_data.ArrayReader` reads them. The stored detector box travels to the render through its
relation to the face-oval + nose-tip box (per axis, in units of that box), so the student's crop frames a
profiled face as the deployment detector framed the unturned one; the render is framed so that box takes the
share of the image it takes in the real crops.

Each face's renders are a function of (face index, its source name, ``seed``): the same arrays for any number of
``data.profiled_workers`` (spawned processes: the GL context and LiteRT are not fork-safe).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgepose.errors import DataError, DependencyError, UserError

from .build_config import MARGIN, BuildConfig

log = logging.getLogger("edgepose.assets.build")

VERSION = 1      # bump when the rendering or labelling rule changes: older caches are then refused
CHUNK = 32       # faces per worker job


def check_profiled(cfg: BuildConfig) -> bool:
    """Validate ``data.profiled_*`` and the profiler's dependencies before the labelling hour; True when on."""
    d = cfg.data
    if d.profiled_n <= 0 and d.profiled_val_n <= 0:
        return False
    from edgepose.synth.scene import parse_pose_range

    if d.profiled_n < 0 or d.profiled_val_n < 0:
        raise UserError(f"data.profiled_n={d.profiled_n}, data.profiled_val_n={d.profiled_val_n}: use counts >= 0 (0 = off)")
    if d.profiled_per_face < 1:
        raise UserError(f"data.profiled_per_face={d.profiled_per_face}: use >= 1 render per source face")
    for name in ("profiled_min_visibility", "profiled_relight_fraction"):
        if not 0.0 <= getattr(d, name) <= 1.0:
            raise UserError(f"data.{name}={getattr(d, name)}: use a share in [0, 1]")
    if not 0.0 <= d.profiled_max_source_yaw <= 180.0:
        raise UserError(f"data.profiled_max_source_yaw={d.profiled_max_source_yaw}: use degrees in [0, 180], e.g. 30")
    if d.profiled_workers < 1:
        raise UserError(f"data.profiled_workers={d.profiled_workers}: use >= 1")
    parse_pose_range(d.profiled_pose_range)
    import importlib.util

    from edgepose.errors import require
    from edgepose.synth.profile.facemesh import model_path

    require("moderngl", "synth", "the face-profiling renderer (data.profiled_*)")
    if importlib.util.find_spec("ai_edge_litert") is None:
        raise DependencyError("data.profiled_* runs MediaPipe's face mesh with LiteRT; install it with "
                              "`pip install 'edgepose[profile]'` (docs/profiling.md) or set data.profiled_n=0")
    if not model_path().exists():
        raise DependencyError(f"face-landmark model not found: {model_path()}; `pip install --no-deps "
                              f"mediapipe==0.10.14` (docs/profiling.md) or set data.profiled_n=0")
    return True


def source_digest(data: dict[str, np.ndarray]) -> str:
    """What a profiled cache was made from: the source faces' labels, boxes, spread, names and crop shape
    (a relabelled or re-detected ``real.npz`` makes every profiled label stale)."""
    h = hashlib.sha256()
    for key in ("R", "boxes", "disagreement"):
        if key in data:
            h.update(np.ascontiguousarray(data[key], np.float32).tobytes())
    h.update(json.dumps([str(s) for s in data.get("sources", [])]).encode())
    h.update(str(tuple(data["images"].shape)).encode())
    return h.hexdigest()[:16]


def profiled_settings(cfg: BuildConfig, spec, source: dict, n: int, split: str) -> dict:
    d = cfg.data
    return {"version": VERSION, "split": split, "n": int(n), "per_face": int(d.profiled_per_face),
            "pose_range": str(d.profiled_pose_range), "min_visibility": float(d.profiled_min_visibility),
            "max_source_yaw": float(d.profiled_max_source_yaw),
            "relight_fraction": float(d.profiled_relight_fraction), "seed": int(cfg.seed),
            "size": int(source["images"].shape[1]), "ssaa": 2, "crop_scale": float(spec.crop.scale),
            "source": source_digest(source)}


def profiled_set(cfg: BuildConfig, source: dict[str, np.ndarray], spec, n: int, cache: Path | None,
                 split: str = "train") -> dict[str, np.ndarray]:
    """``n`` profiled renders of ``source``'s faces (the arrays of ``real.npz`` / ``real-val.npz``), faces with
    the lowest teacher disagreement first (of those within ``data.profiled_max_source_yaw``),
    ``data.profiled_per_face`` each; renders below
    ``data.profiled_min_visibility`` and faces the mesh cannot fit are skipped (counted in ``stats``).
    Cached in ``cache``, refused when made from other faces or with other settings."""
    settings = profiled_settings(cfg, spec, source, n, split)
    if cache is not None and cache.is_file():
        return _cached(cache, settings)
    d = cfg.data
    spread = np.asarray(source.get("disagreement", np.full(len(source["R"]), np.nan)), np.float64)
    order = np.argsort(np.where(np.isfinite(spread), spread, np.inf), kind="stable")  # NaN (one teacher) last
    from edgepose.geometry import matrix_to_euler

    frontal = np.abs(matrix_to_euler(np.asarray(source["R"], np.float64))[:, 1]) <= settings["max_source_yaw"]
    order = order[frontal[order]]
    names = [str(s) for s in source.get("sources", [""] * len(order))]
    rows: dict[str, list] = {k: [] for k in ("images", "boxes", "R", "R_fit", "Q", "visibility", "face", "pose")}
    stats = {"faces_turned_away": int((~frontal).sum()), "faces_tried": 0, "faces_unfitted": 0, "faces_used": 0,
             "renders_below_visibility": 0}
    from tqdm import tqdm

    from edgepose.synth.profile.render import compose_label

    bar = tqdm(total=n, desc=f"profiled {split}")
    for chunk in _chunks(source, order, names, settings, d.profiled_workers):
        for idx, renders in chunk:
            stats["faces_tried"] += 1
            if renders is None:
                stats["faces_unfitted"] += 1
                continue
            used = False
            for image, box, R_fit, Q, vis, k in renders:
                if len(rows["R"]) >= n:
                    break
                if vis < settings["min_visibility"]:
                    stats["renders_below_visibility"] += 1
                    continue
                for key, v in (("images", image), ("boxes", box), ("R", compose_label(source["R"][idx], Q)),
                               ("R_fit", R_fit), ("Q", Q), ("visibility", vis), ("face", idx), ("pose", k)):
                    rows[key].append(v)
                used = True
                bar.update()
            stats["faces_used"] += int(used)
            if len(rows["R"]) >= n:
                break
        if len(rows["R"]) >= n:
            break
    bar.close()
    if not rows["R"]:
        raise DataError(f"no profiled render of the {split} faces: {stats['faces_turned_away']} turned beyond "
                        f"data.profiled_max_source_yaw={settings['max_source_yaw']}, {stats['faces_unfitted']} of "
                        f"{stats['faces_tried']} faces had no face-mesh fit, {stats['renders_below_visibility']} "
                        f"renders were below data.profiled_min_visibility={settings['min_visibility']}")
    if len(rows["R"]) < n:
        log.warning("profiled %s: only %d of %d renders (the faces ran out)", split, len(rows["R"]), n)
    stats["renders"] = len(rows["R"])
    face = np.asarray(rows["face"], np.int64)
    data = {"images": np.stack(rows["images"]).astype(np.uint8), "boxes": np.asarray(rows["boxes"], np.float32),
            "R": np.asarray(rows["R"], np.float32),  # ensemble label composed with Q: what the student learns
            "R_fit": np.asarray(rows["R_fit"], np.float32),  # the profiler's own (mesh-fit) label, for audits
            "Q": np.asarray(rows["Q"], np.float32), "visibility": np.asarray(rows["visibility"], np.float32),
            "face": face.astype(np.int32),  # index of the source face in real.npz / real-val.npz
            "pose": np.asarray(rows["pose"], np.int16),
            "disagreement": spread[face].astype(np.float32),  # the source face's teacher spread (weighting)
            "sources": np.asarray([names[i] for i in face]),
            "settings": np.asarray(json.dumps(settings, sort_keys=True)),
            "stats": np.asarray(json.dumps(stats, sort_keys=True))}
    log.info("profiled %s faces: %d renders of %d faces (%d tried, %d without a face-mesh fit, %d renders below "
             "visibility %.2f)", split, stats["renders"], stats["faces_used"], stats["faces_tried"],
             stats["faces_unfitted"], stats["renders_below_visibility"], settings["min_visibility"])
    if cache is not None:
        np.savez(cache.with_suffix(".tmp.npz"), **data)
        os.replace(cache.with_suffix(".tmp.npz"), cache)
    return data


def _cached(cache: Path, settings: dict) -> dict[str, np.ndarray]:
    """A profiled cache, refused when its source faces or render settings differ from this build's."""
    data = dict(np.load(cache, allow_pickle=False))
    stored = json.loads(str(data["settings"])) if "settings" in data else {}
    diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
    if diff:
        what = {"source": "source faces (real.npz relabelled or re-detected)"}
        said = ", ".join(f"{what.get(k, k)} {a!r} (asked: {b!r})" for k, (a, b) in diff.items())
        raise UserError(f"{cache} was profiled with other settings: {said}; delete that file (or set out_dir to a "
                        f"new folder) to profile the real faces again")
    log.info("profiled faces from %s (%s)", cache, str(data["stats"]))
    return data


def _chunks(source: dict, order: np.ndarray, names: list[str], settings: dict, workers: int):
    """Per chunk of faces (in ``order``), ``[(face index, renders or None)]``, in order; at most ``2 * workers``
    chunks in flight, so that stopping early wastes little and the crops are not all copied at once."""
    jobs = ((source["images"][idx], source["boxes"][idx],
             [(int(i), f"{settings['split']}:{int(i)}:{names[i]}") for i in idx], settings)
            for idx in (order[s:s + CHUNK] for s in range(0, len(order), CHUNK)))
    if workers <= 1:
        yield from map(_profile_chunk, jobs)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_quiet_worker) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.apply_async(_profile_chunk, (job,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _quiet_worker() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


_FITTER = None


def _profile_chunk(job) -> list:
    """Fit and render one chunk of faces (a top-level function: it runs in worker processes)."""
    from edgepose.synth.profile.mesh import FACE_OVAL, NOSE_TIP
    from edgepose.synth.profile.pipeline import FaceFitter, ProfileConfig, profile_face

    global _FITTER
    if _FITTER is None:
        _FITTER = FaceFitter(detector="none")  # the crop's stored detector box seeds the mesh
    images, boxes, faces, s = job
    # the build's own augmentation adds NIR/grey, blur and noise to every part alike: the renders keep plain colour
    cfg = ProfileConfig(k=s["per_face"], size=s["size"], ssaa=s["ssaa"], pose_range=s["pose_range"], seed=s["seed"],
                        ir_fraction=0.0, sun_fraction=0.0, relight_fraction=s["relight_fraction"], blur=0.0,
                        detector="none")
    oval = list(FACE_OVAL) + [NOSE_TIP]  # the profiler's face box (render.ProfileRenderer)
    out = []
    for image, box, (idx, key) in zip(images, boxes, faces):
        fit = _FITTER(image, tuple(float(v) for v in box))
        if fit is None:  # face presence < 0.5
            out.append((idx, None))
            continue
        src = fit.points[oval, :2]
        src_box = (*src.min(0), *src.max(0))
        # frame the render so the carried detector box takes the share of the image it takes in the real crops
        ratio = _side(box) / max(_side(src_box), 1e-6)
        fill = float(np.clip(1.0 / (s["crop_scale"] * MARGIN * ratio), 0.1, 1.0))
        renders = []
        for k, r in enumerate(profile_face(image, fit, replace(cfg, fill=fill), source=key)):
            img = r.image if r.image.ndim == 3 else np.repeat(r.image[..., None], 3, 2)
            renders.append((img, carry_box(box, src_box, r.box), r.R, r.Q, float(r.visibility), k))
        out.append((idx, renders))
    return out


def _side(box) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def carry_box(det_box, src_box, dst_box) -> tuple[float, float, float, float]:
    """``det_box`` expressed in units of ``src_box`` (per axis), re-applied to ``dst_box``: the source's detector
    box relative to its face-oval box, carried to the rendered face-oval box."""
    sx1, sy1, sx2, sy2 = (float(v) for v in src_box)
    dx1, dy1, dx2, dy2 = (float(v) for v in dst_box)
    sw, sh = max(sx2 - sx1, 1e-6), max(sy2 - sy1, 1e-6)
    rel = ((det_box[0] - sx1) / sw, (det_box[1] - sy1) / sh, (det_box[2] - sx1) / sw, (det_box[3] - sy1) / sh)
    w, h = dx2 - dx1, dy2 - dy1
    return (dx1 + rel[0] * w, dy1 + rel[1] * h, dx1 + rel[2] * w, dy1 + rel[3] * h)
