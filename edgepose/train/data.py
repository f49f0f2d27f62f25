"""Moved to :mod:`edgepose.data.options` (the ``--data`` parser and dataset sections belong to the
data layer, which evaluation and quantization use without the trainer).  Re-exported for the
training and distillation loops until the one engine of issue 15 replaces them."""
from __future__ import annotations

from ..data.options import build_eval_reader, build_split, parse_data_arg

__all__ = ["build_split", "build_eval_reader", "parse_data_arg"]
