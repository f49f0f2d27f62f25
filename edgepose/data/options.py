"""Dataset sections of a config and the ``--data`` argument -> torch datasets (training) or readers
(evaluation).

Both go through :mod:`edgepose.data`: ``build_dataset(cfg, spec, augment)`` for training and
``build_reader(cfg)`` for evaluation, which needs the raw frames, boxes and labels to make its
rotated / flipped variants.  A dataset mapping names a ``format`` plus the reader's options,
e.g. ``{format: aflw2000, root: /data/AFLW2000, crop: test}`` (see docs/data.md).

The CLI shorthand ``aflw2000:/data/AFLW2000`` becomes ``{format: aflw2000, root: /data/AFLW2000}``
(:func:`parse_data_arg`; ``path`` stands for the reader's first argument: ``root``
for .mat folders, ``labels`` for CSV/JSONL folders).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError

__all__ = ["build_split", "build_eval_reader", "parse_data_arg"]


def parse_data_arg(text: str) -> dict:
    """``format:path[,key=value...]`` -> dataset mapping."""
    import yaml

    if ":" not in text:
        raise DataError(f"--data {text!r}: expected format:path, e.g. aflw2000:/data/AFLW2000")
    fmt, rest = text.split(":", 1)
    fmt = fmt.strip()
    parts = rest.split(",")
    cfg: dict = {"format": fmt, _path_key(fmt): parts[0]}
    for opt in parts[1:]:
        if "=" not in opt:
            raise DataError(f"--data option {opt!r} is not key=value (e.g. aflw2000:/data,crop=test)")
        k, v = opt.split("=", 1)
        cfg[k.strip()] = yaml.safe_load(v)
    return cfg


def _path_key(fmt: str) -> str:
    """The reader's first required argument (``root`` for .mat folders, ``labels`` for CSV ...)."""
    import inspect

    from .registry import get_format

    for name, p in inspect.signature(get_format(fmt)).parameters.items():
        if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD:
            return name
    return "path"


def _check_path(cfg: dict, where: str) -> None:
    if not isinstance(cfg, dict):
        raise DataError(f"{where} must be a mapping like {{format: aflw2000, path: /data/AFLW2000}}, got {cfg!r}")
    for key in ("root", "path", "labels"):
        path = cfg.get(key)
        if isinstance(path, str) and not Path(path).expanduser().exists():
            raise DataError(f"{where}.{key}: dataset path not found: {path}; fix the path "
                            f"(the test fixtures live in $EDGEPOSE_TEST_DATA, default ../shared/data)")


def build_split(cfg: dict, spec, augment, split: str):
    """Training / validation dataset: ``edgepose.data.build_dataset(cfg, spec, augment)``."""
    from .registry import build_dataset

    _check_path(cfg, f"data.{split}")
    return build_dataset(dict(cfg), spec, augment)


def build_eval_reader(cfg: dict, where: str = "--data"):
    """A reader of labelled Samples for ``edgepose eval``."""
    from .registry import build_reader

    _check_path(cfg, where)
    return build_reader(dict(cfg))
