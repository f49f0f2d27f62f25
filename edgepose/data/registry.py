"""Build readers and datasets from config dicts (the YAML ``data:`` section).

    build_dataset({"format": "aflw2000", "root": "data/AFLW2000", "filter99": True}, spec)
    build_dataset([{"format": "300wlp", "root": ..., "file_list": "files.txt"},
                   {"format": "folder", "labels": "incar/labels.csv", "gray": "keep"}], spec, augment)

Common keys for every format: ``cache`` (folder for a :class:`CropCache`), ``cache_margin``
(default 1.5) and ``augment`` (false disables augmentation for that source).
"""
from __future__ import annotations

import inspect
from typing import Callable

from ..errors import DataError
from ..preprocess import PreprocessSpec
from ..registry import Registry
from .biwi import BIWINpzReader, BIWIReader
from .folder import FolderReader
from .mat import AFLW2000Reader, W300LPReader
from .npz import NpzFacesReader
from .sample import Reader
from .video import VideoReader

__all__ = ["FORMATS", "build_reader", "build_dataset", "register_format", "get_format", "list_formats"]

#: format name -> reader factory, or ``"module:attr"`` for a reader that lives above the data layer
#: (imported when a config first names it; no import for its side effect).
FORMATS: Registry[Callable[..., Reader]] = Registry("dataset format", error=DataError)
FORMATS.add("aflw2000", AFLW2000Reader)
FORMATS.add("300wlp", W300LPReader)
FORMATS.add("biwi", BIWIReader)
FORMATS.add("biwi_npz", BIWINpzReader)
FORMATS.add("folder", FolderReader)
FORMATS.add("video", VideoReader)
FORMATS.add("faces_npz", NpzFacesReader)  # a default-model build's cached face sets (real, profiled, synth)
FORMATS.add("synth", "edgepose.synth.reader:MemoSynthReader")
FORMATS.add("profiled", "edgepose.synth.profile.cache:ProfiledReader")  # `edgepose synth profile` caches
_COMMON = ("format", "cache", "cache_margin", "augment")


def register_format(name: str, factory: Callable[..., Reader] | str) -> None:
    """Add a reader factory (kwargs come from the config dict), or ``"module:attr"`` to import lazily.
    A name may be registered again (a project overriding a built-in reader)."""
    FORMATS.add(name, factory, replace=True)


def list_formats() -> list[str]:
    return FORMATS.names()


def get_format(name: str) -> Callable[..., Reader]:
    """The reader factory of a format (imports a lazily named one)."""
    return FORMATS.get(name)


def build_reader(cfg: dict) -> Reader:
    if not isinstance(cfg, dict) or "format" not in cfg:
        raise DataError(f"a dataset config needs a 'format' key (one of {list_formats()}), got {cfg!r}")
    fmt = cfg["format"]
    factory = get_format(fmt)
    kw = {k: v for k, v in cfg.items() if k not in _COMMON}
    params = inspect.signature(factory).parameters
    valid = _accepted_keys(factory)
    if valid is not None:
        bad = set(kw) - valid
        if bad:
            raise DataError(f"dataset format {fmt!r}: unknown key(s) {sorted(bad)}; valid keys: "
                            f"{sorted(valid | set(_COMMON))}")
    required = [n for n, p in params.items() if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
    missing = [n for n in required if n not in kw]
    if missing:
        raise DataError(f"dataset format {fmt!r}: missing key(s) {missing}")
    return factory(**kw)


def _accepted_keys(factory) -> set[str] | None:
    """Keyword names a factory accepts, following ``**kw`` up a reader class hierarchy;
    None when it accepts anything."""
    keys: set[str] = set()
    funcs = [c.__init__ for c in factory.__mro__ if "__init__" in vars(c)] if inspect.isclass(factory) else [factory]
    for fn in funcs:
        params = inspect.signature(fn).parameters
        keys |= {n for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return keys - {"items", "prefix"}  # internal MatReader arguments
    return None


def build_dataset(cfg: dict | list[dict], spec: PreprocessSpec, augment=None, progress: bool = True):
    """Config dict (or list of dicts) -> :class:`PoseDataset` (or ``ConcatDataset`` of them).

    ``augment`` is an :class:`Augment`, a dict of its fields, or None.
    """
    from .augment import Augment
    from .cache import CropCache
    from .dataset import ConcatDataset, PoseDataset

    if isinstance(augment, dict):
        augment = Augment.from_dict(augment)
    if isinstance(cfg, (list, tuple)):
        if not cfg:
            raise DataError("empty list of datasets")
        parts = [build_dataset(c, spec, augment, progress) for c in cfg]
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)
    reader = build_reader(cfg)
    if cfg.get("cache"):
        reader = CropCache.open(reader, spec, cfg["cache"], float(cfg.get("cache_margin", 1.5)), progress)
    aug = augment if cfg.get("augment", True) else None
    return PoseDataset(reader, spec, aug)
