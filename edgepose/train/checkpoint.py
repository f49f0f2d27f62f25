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
from ..safe_load import load_torch_file, to_plain

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    import torch

    # numpy's state as plain values (not an ndarray): checkpoints load with weights_only=True,
    # whose restricted unpickler builds tensors and plain containers only.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                   int(has_gauss), float(cached)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Serialise to memory, then write-and-rename: an interrupted save never corrupts ``path``."""
    import torch

    buf = io.BytesIO()
    torch.save(to_plain(state), buf)  # read back with weights_only=True: plain values only
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"checkpoint not found: {path}")
    ckpt = load_torch_file(path, fix="resume from a last.pt written by edgepose-train")
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ModelError(f"{path} is not an edgepose checkpoint (no 'model' entry)")
    return ckpt
