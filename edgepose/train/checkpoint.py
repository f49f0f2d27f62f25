"""Checkpoint I/O: atomic writes, full training state for ``--resume``.

Layout (docs/architecture.md): ``{"model": state_dict, "edgepose_metadata": meta.to_dict(),
"optimizer", "scheduler", "scaler", "epoch", "global_step", "config", "rng", "best", "method"}``.
``epoch`` is the number of COMPLETED epochs, so resuming starts at index ``epoch``.
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..metadata import atomic_write_bytes

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Serialise to memory, then write-and-rename: an interrupted save never corrupts ``path``."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    import torch

    path = Path(path)
    if not path.exists():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem means the same thing to a user
        raise ModelError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); "
                         f"it may be truncated or not an edgepose checkpoint") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ModelError(f"{path} is not an edgepose checkpoint (no 'model' entry)")
    return ckpt
