"""The one way edgepose reads a PyTorch file: ``torch.load(weights_only=True)``, never full unpickling.

A ``.pt`` / ``.pth`` / ``.pkl`` file is a pickle; full unpickling runs whatever code the file names
(``__reduce__``), so a model file from anywhere could run a shell command.  Every checkpoint edgepose
writes holds tensors, plain containers and JSON-able values only (resume state included), which the
restricted unpickler reads.  A file that needs more is refused with one line naming the reason and
the fix; third-party weights go through ``edgepose import`` (which also reads with
``weights_only=True``).  docs/security.md lists the trusted inputs.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

from .errors import ModelError, first_line

__all__ = ["load_torch_file", "to_plain"]

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path: str | os.PathLike, *, what: str = "checkpoint", fix: str = "",
                    map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line :class:`ModelError` messages.

    ``what`` names the file in messages ("checkpoint", "pretrained weights", ...); ``fix`` is the
    advice appended for a file edgepose cannot use (how to re-create or import it)."""
    import torch

    path = Path(path)
    fix = fix or ("re-create it with `edgepose train`, or convert third-party weights with "
                  "`edgepose import <teacher> FILE -o model.pt`")
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found is None:  # not an object the restricted unpickler refused: random or damaged bytes
            raise ModelError(f"cannot read {path} as a PyTorch {what} (not a valid pickle); it is truncated, "
                             f"damaged or not a PyTorch file - {fix}") from None
        raise ModelError(f"refusing to load {path}: this {what} holds Python objects ({found.group(1)}) that only full "
                         f"unpickling can build, and unpickling can run code from the file; edgepose reads "
                         f"tensors and plain containers only - {fix}") from None
    except Exception as exc:  # noqa: BLE001 - zip / EOF / runtime errors from a damaged or foreign file
        first = first_line(exc)
        raise ModelError(f"cannot read {path} as a PyTorch {what} ({type(exc).__name__}: {first}); it is "
                         f"truncated, damaged or not a PyTorch file - {fix}") from None


def to_plain(obj: Any, arrays: str = "tensor") -> Any:
    """``obj`` with the values the restricted unpickler cannot build made plain, for writing:
    NumPy scalars -> Python numbers, NumPy arrays -> tensors (``arrays="list"``: lists, for metadata
    that also goes to JSON sidecars), paths -> str.  Tensors, containers
    and JSON types pass through; anything else raises ``TypeError`` at save time (a checkpoint that
    saves but cannot be read back is worse)."""
    import numpy as np
    import torch

    if obj is None or isinstance(obj, (str, bool, int, float, torch.Tensor, torch.dtype, torch.Size)):
        return obj
    if isinstance(obj, dict):
        return {k: to_plain(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, arrays) for v in obj]
        return tuple(items) if isinstance(obj, tuple) and type(obj) is tuple else items
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist() if arrays == "list" else torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in an edgepose checkpoint (tensors, numbers, strings "
                    f"and containers only: checkpoints are read with torch.load(weights_only=True))")
