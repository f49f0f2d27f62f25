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

from .errors import ModelError

__all__ = ["load_torch_file"]

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
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ModelError(f"cannot read {path} as a PyTorch {what} ({type(exc).__name__}: {first}); it is "
                         f"truncated, damaged or not a PyTorch file - {fix}") from None
