"""argparse value types that validate at parse time: a bad number fails before anything loads, with
argparse's usage line and exit status 2 (docs/runtime.md "Failure behaviour")."""
from __future__ import annotations

import argparse
from typing import Callable

__all__ = ["int_at_least", "int_in_range", "strength_or_off"]


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


def strength_or_off(text: str) -> float | None:
    """``off`` -> None, else a float in [0, 1] (a strength such as ``--equalize 0.5``)."""
    if text.strip().lower() in ("off", "none", "no"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or 'off', got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] or 'off', got {value}")
    return value


strength_or_off.__name__ = "strength"
