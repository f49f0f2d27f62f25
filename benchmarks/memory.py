"""Peak memory of one benchmark row.

Host: the rise of the process' peak resident set (``VmHWM``) over the resident set before the
row, after resetting the peak through ``/proc/self/clear_refs`` (Linux >= 4.0) so each row
starts from its own baseline.  It includes the session / model load and the inference arenas.
Before each row the garbage collector runs and glibc's ``malloc_trim(0)`` hands freed heap back
to the OS, so memory freed by earlier rows is not silently reused (which would read as ~0 MB);
other allocators (mimalloc, jemalloc) can still keep some, so treat the figure as a lower bound.  GPU (torch on CUDA): ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["PeakMemory"]

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _release_free_memory() -> None:
    """Return memory freed by earlier rows to the OS so this row's rise is visible."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # 5 = reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


class PeakMemory:
    """``with PeakMemory(cuda=False) as pm: ...``; then ``pm.mb`` and ``pm.kind``."""

    def __init__(self, cuda: bool = False):
        self.cuda = cuda
        self.mb: float | None = None
        self.kind: str | None = None
        self._rss0: int | None = None
        self._reset = False

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
                self._base_cuda = torch.cuda.memory_allocated()
                return self
            self.cuda = False
        _release_free_memory()
        self._reset = _reset_hwm()
        self._rss0 = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            import torch

            self.mb = max(0, torch.cuda.max_memory_allocated() - self._base_cuda) / 2**20
            self.kind = "cuda-max-allocated"
            return
        hwm = _status_kb("VmHWM")
        if self._reset and hwm is not None and self._rss0 is not None:
            self.mb = max(0, hwm - self._rss0) / 1024.0
            self.kind = "rss-delta"
