"""Helpers for importers of PyTorch weights: read a state dict, rename keys, load strictly."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from ..errors import ModelError
from ..safe_load import load_torch_file

__all__ = ["read_state_dict", "rename_keys", "load_strict"]


def read_state_dict(path: str | os.PathLike) -> dict:
    """A state dict from ``.pth`` / ``.pkl`` / ``.pt``: unwraps ``{"state_dict"|"model_state_dict"|"model": sd}``
    and DataParallel's ``module.`` prefix.  Only tensors are unpickled (``weights_only=True``)."""
    path = Path(path)
    obj = load_torch_file(path, what="weights file", fix="pass the upstream state-dict file (name -> tensor)")
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(hasattr(v, "shape") for v in obj.values()):
        raise ModelError(f"{path} does not hold a state dict (name -> tensor)")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def rename_keys(sd: dict, rules: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> dict:
    """Apply regex ``(pattern, replacement)`` rules in order to every key; drop keys matching ``drop``."""
    rules, drop = list(rules), [re.compile(d) for d in drop]
    out = {}
    for k, v in sd.items():
        if any(d.match(k) for d in drop):
            continue
        new = k
        for pat, rep in rules:
            new = re.sub(pat, rep, new)
        out[new] = v
    return out


def load_strict(model, sd: dict, what: str) -> None:
    """Load with every key accounted for; names the first offenders otherwise."""
    ours = model.state_dict()
    missing = sorted(k for k in ours if k not in sd and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in sd if k not in ours)
    shape = sorted(k for k in sd if k in ours and tuple(sd[k].shape) != tuple(ours[k].shape))
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shape:
            parts.append("shape mismatch at " + ", ".join(f"{k} {tuple(sd[k].shape)} vs {tuple(ours[k].shape)}"
                                                         for k in shape[:3]))
        raise ModelError(f"{what}: the weights do not fit: " + "; ".join(parts)
                         + ". Check the architecture option (--arch) and that the file is the upstream release")
    model.load_state_dict(sd, strict=False)
