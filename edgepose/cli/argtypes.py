"""argparse value types that validate at parse time: a bad number fails before anything loads, with
argparse's usage line and exit status 2 (docs/runtime.md "Failure behaviour")."""
from __future__ import annotations

import argparse
from typing import Callable

__all__ = ["int_at_least", "int_in_range"]


def int_in_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An ``int`` type accepting ``lo <= value`` (``<= hi`` when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def int_at_least(lo: int) -> Callable[[str], int]:
    return int_in_range(lo)
