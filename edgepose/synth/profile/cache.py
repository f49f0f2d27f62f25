"""The profiled-face cache: uint8 crops in chunks, resumable, refused when its settings differ.

Layout of ``root/``::

    profile.json              format, version, the render settings, the source list's digest
    chunks/00000/             one chunk = the renders of ``chunk_faces`` consecutive sources:
        images.npy            (N, S, S, 3) uint8 BGR (NIR renders: three equal channels)
        R.npy R_src.npy       (N, 3, 3) float32: the label, the fitted source pose
        box.npy               (N, 4) float32 face box (x1, y1, x2, y2)
        visibility.npy ir.npy face.npy pose.npy   (N,) per render: visibility, NIR flag,
                              global face index, render index k within the face
        faces.json            the chunk's sources: id, fitted or skipped, fit residual

A chunk folder appears only complete (written as ``NNNNN.tmp`` then renamed), so an
interrupted build resumes at the first missing chunk.  ``.npy`` files are memory-mapped when
read, so a DataLoader worker touches only the crops it uses.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ...data.sample import Reader, Sample
from ...errors import DataError, UserError

__all__ = ["build_cache", "ProfiledReader", "check_settings", "FORMAT", "VERSION"]

log = logging.getLogger(__name__)

FORMAT, VERSION = "edgepose-profile-cache", 1
_ARRAYS = ("images", "R", "R_src", "box", "visibility", "ir", "face", "pose")


def _digest(sources: list[str]) -> str:
    return hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16]


def check_settings(root: Path, settings: dict) -> dict | None:
    """The stored header, or None for a new cache; raises when the cache was built otherwise."""
    head = root / "profile.json"
    if not head.exists():
        return None
    stored = json.loads(head.read_text())
    if stored.get("format") != FORMAT or stored.get("version") != VERSION:
        raise UserError(f"{root} is not an edgepose profile cache of version {VERSION}; choose another --out "
                        "or pass --overwrite")
    diff = {k: (stored["settings"].get(k), v) for k, v in settings.items() if stored["settings"].get(k) != v}
    if diff:
        said = ", ".join(f"{k}: cached {a!r}, asked {b!r}" for k, (a, b) in sorted(diff.items()))
        raise UserError(f"{root} was built with other settings ({said}); choose another --out or pass "
                        "--overwrite to rebuild it")
    return stored


def _chunk_job(args) -> tuple[int, int, int]:
    """Worker: fit and render one chunk of sources; write it atomically.  (chunk, faces, renders)."""
    index, sources, first_face, cfg_dict, detector_model, out = args
    from .pipeline import FaceFitter, ProfileConfig, load_source, profile_face

    cfg = ProfileConfig(**cfg_dict, detector_model=detector_model)
    fitter = _worker_fitter(cfg)
    rows = {k: [] for k in _ARRAYS}
    faces = []
    for j, src in enumerate(sources):
        img = load_source(src)
        fit = fitter(img) if img is not None else None
        faces.append({"source": src, "fitted": fit is not None,
                      "residual": None if fit is None else round(fit.residual, 5)})
        if fit is None:
            continue
        for k, res in enumerate(profile_face(img, fit, cfg, src)):
            im = res.image if res.image.ndim == 3 else np.repeat(res.image[..., None], 3, 2)
            for name, v in (("images", im), ("R", res.R), ("R_src", res.R_src), ("box", res.box),
                            ("visibility", res.visibility), ("ir", res.scene.ir), ("face", first_face + j),
                            ("pose", k)):
                rows[name].append(v)
    tmp = Path(out) / "chunks" / f"{index:05d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    S = cfg.size
    dtypes = {"images": np.uint8, "R": np.float32, "R_src": np.float32, "box": np.float32,
              "visibility": np.float32, "ir": bool, "face": np.int32, "pose": np.int16}
    empty = {"images": (0, S, S, 3), "R": (0, 3, 3), "R_src": (0, 3, 3), "box": (0, 4)}
    for name in _ARRAYS:
        arr = np.asarray(rows[name], dtypes[name]) if rows[name] else np.zeros(empty.get(name, (0,)), dtypes[name])
        np.save(tmp / f"{name}.npy", arr)
    (tmp / "faces.json").write_text(json.dumps(faces))
    os.replace(tmp, tmp.with_suffix(""))
    return index, sum(f["fitted"] for f in faces), len(rows["R"])


_FITTER = None


def _worker_fitter(cfg):
    global _FITTER
    if _FITTER is None:
        from .pipeline import FaceFitter

        _FITTER = FaceFitter(cfg.detector, cfg.detector_model, cfg.min_presence)
    return _FITTER


def build_cache(inputs, out, cfg=None, workers: int = 1, chunk_faces: int = 64, overwrite: bool = False,
                progress: bool = True) -> Path:
    """Profile every face of ``inputs`` (images, folders, videos) into the cache ``out``.
    Resumes an interrupted build of the same settings; refuses one of other settings."""
    from .pipeline import ProfileConfig, list_sources

    cfg = (cfg or ProfileConfig()).validate()
    root = Path(out)
    sources = list_sources(inputs, cfg.video_step)
    settings = {**cfg.render_settings(), "sources": _digest(sources), "n_sources": len(sources),
                "chunk_faces": int(chunk_faces)}
    if overwrite and root.exists():
        shutil.rmtree(root / "chunks", ignore_errors=True)
        (root / "profile.json").unlink(missing_ok=True)
    if check_settings(root, settings) is None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "profile.json").write_text(json.dumps({"format": FORMAT, "version": VERSION, "settings": settings},
                                                      indent=1, sort_keys=True))
    jobs = []
    cfg_dict = cfg.render_settings()
    for c, start in enumerate(range(0, len(sources), chunk_faces)):
        if not (root / "chunks" / f"{c:05d}").is_dir():
            jobs.append((c, sources[start:start + chunk_faces], start, cfg_dict, cfg.detector_model, str(root)))
    done = len(range(0, len(sources), chunk_faces)) - len(jobs)
    if done:
        log.info("%s: %d chunk(s) already built, %d to go", root, done, len(jobs))
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="profile", unit="chunk", disable=not progress)
    if workers <= 1:
        for j in jobs:
            _chunk_job(j)
            bar.update()
    else:
        import multiprocessing as mp

        # spawn: EGL contexts and LiteRT interpreters are not fork-safe
        with mp.get_context("spawn").Pool(workers, initializer=_quiet_worker) as pool:
            for _ in pool.imap_unordered(_chunk_job, jobs):
                bar.update()
    bar.close()
    return root


def _quiet_worker() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class ProfiledReader(Reader):
    """A profile cache as an :mod:`edgepose.data` reader (dataset format ``profiled``):
    ``{format: profiled, root: cache/profiled, min_visibility: 0.3}``.  Samples carry the label,
    the face box, and ``extra`` = visibility, NIR flag, face index and render index k."""

    name = "profiled"

    def __init__(self, root: str, min_visibility: float = 0.0, gray: str = "keep"):
        self.root = Path(root).expanduser()
        head = self.root / "profile.json"
        if not head.exists():
            raise DataError(f"{self.root} is not a profile cache (no profile.json); build one with "
                            "`edgepose synth profile SOURCES --out DIR`")
        self.header = json.loads(head.read_text())
        chunks = sorted(p for p in (self.root / "chunks").glob("[0-9]*") if p.is_dir() and p.suffix == "")
        if not chunks:
            raise DataError(f"{self.root} has no finished chunks; run `edgepose synth profile` into it again to resume")
        if gray not in ("keep", "bgr"):
            raise DataError(f"profiled: gray must be 'keep' (NIR renders as one channel) or 'bgr', got {gray!r}")
        self.gray = gray
        self._arrays = [{n: np.load(c / f"{n}.npy", mmap_mode="r") for n in _ARRAYS} for c in chunks]
        keep = []
        for ci, a in enumerate(self._arrays):
            ok = np.flatnonzero(np.asarray(a["visibility"]) >= float(min_visibility))
            keep.append(np.column_stack([np.full(len(ok), ci), ok]))
        self.index = np.concatenate(keep).astype(np.int64) if keep else np.zeros((0, 2), np.int64)
        if len(self.index) == 0:
            raise DataError(f"{self.root}: no render has visibility >= {min_visibility}; lower min_visibility")
        self.size = int(self.header["settings"]["size"])

    def __len__(self) -> int:
        return len(self.index)

    def column(self, name: str) -> np.ndarray:
        """One per-render array (``R``, ``visibility``, ``face``, ``pose`` ...) in reader order."""
        # the index is chunk-major, so per-chunk selections concatenate in reader order
        return np.concatenate([np.asarray(a[name])[self.index[self.index[:, 0] == c, 1]]
                               for c, a in enumerate(self._arrays)])

    def get(self, index: int, rng: np.random.Generator | None = None) -> Sample:
        c, i = self.index[index]
        a = self._arrays[c]
        img = np.array(a["images"][i])
        ir = bool(a["ir"][i])
        if ir and self.gray == "keep":
            img = np.ascontiguousarray(img[..., 0])
        return Sample(image=img, R=np.asarray(a["R"][i], np.float64), box=tuple(float(v) for v in a["box"][i]),
                      landmarks=None, source=f"profiled:{c}:{i}",
                      extra={"visibility": float(a["visibility"][i]), "ir": ir, "face": int(a["face"][i]),
                             "pose": int(a["pose"][i])})

    def describe(self) -> dict:
        return {"format": "profiled", "root": str(self.root), "samples": len(self), **self.header["settings"]}
