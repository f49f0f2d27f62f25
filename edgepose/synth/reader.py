"""The ``synth`` dataset format: the synthetic head engine as a reader for ``build_dataset``.

``{format: synth, n: 1200, split: train, pose_range: full, size: 96}`` in a config's ``data:``
section.  Samples are deterministic per index, so they are kept in memory after the first render
(CPU budgets re-use the same images every epoch; augmentation still differs per epoch).  The data
registry names this class lazily (``edgepose.data.registry.FORMATS``), so the format works in any
config without importing the teacher methods first.
"""
from __future__ import annotations

import numpy as np

from ..data.sample import Reader, Sample

__all__ = ["MemoSynthReader", "shared_memo"]


# Rendered samples shared by every reader of the same (n, seed, options) in this process: the
# teacher table trains its rows one after another in one process, so the training, validation and
# test sets are rendered once for all rows instead of once per row (renders are deterministic per
# index, so sharing changes nothing but time).
_SHARED_MEMO: dict[tuple, dict[int, Sample]] = {}


def shared_memo(key: tuple) -> dict:
    """The process-wide memo for ``key`` (also used by derived sets such as CLERF's positives,
    which depend on a memoised reader's samples)."""
    return _SHARED_MEMO.setdefault(key, {})


def _memo_key(n: int, seed: int, synth_options: dict) -> tuple:
    return (int(n), int(seed), repr(sorted((k, repr(v)) for k, v in synth_options.items())))


class MemoSynthReader(Reader):
    """:class:`edgepose.synth.SynthHeadDataset` with every rendered sample kept in memory (shared
    by all readers of the same ``n``, ``seed`` and options in this process)."""

    name = "synth"

    def __init__(self, n: int, seed: int = 0, memo: bool = True, **synth_options):
        from .dataset import SynthHeadDataset

        self.inner = SynthHeadDataset(n, seed=seed, resample=False, **synth_options)
        self.memo = bool(memo)
        self._cache: dict[int, Sample] = (shared_memo(_memo_key(n, seed, synth_options))
                                          if self.memo else {})

    @property
    def cfg(self):
        return self.inner.cfg

    def __len__(self) -> int:
        return len(self.inner)

    def get(self, index: int, rng: np.random.Generator | None = None) -> Sample:
        s = self._cache.get(index)
        if s is None:
            s = self.inner.get(index)  # deterministic per index: memoising changes nothing but speed
            if self.memo:
                self._cache[index] = s
        return s

    def describe(self) -> dict:
        return {**self.inner.describe(), "memo": self.memo}
