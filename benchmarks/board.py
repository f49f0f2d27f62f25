"""Jetson board state for bench reports: the nvpmodel mode and whether jetson_clocks is on.

The parsing of ``nvpmodel -q`` / ``jetson_clocks --show`` lives in :mod:`edgepose.jetson.power`
(one home per fact); this module only flattens its result into the report's ``board`` block.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["BoardState", "board_state_from_power", "read_board_state"]


@dataclass
class BoardState:
    nvpmodel_mode: str | None = None  # "MAXN", "15W", ... (None: not a Jetson / not readable)
    nvpmodel_id: int | None = None
    jetson_clocks: bool | None = None  # True when CPUs and GPU are pinned (MinFreq == MaxFreq)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def board_state_from_power(state: dict) -> BoardState:
    """``edgepose.jetson.power.read_power_state()`` -> BoardState."""
    nvp = state.get("nvpmodel") or {}
    clocks = state.get("jetson_clocks") or {}
    return BoardState(nvpmodel_mode=nvp.get("mode"), nvpmodel_id=nvp.get("id"),
                      jetson_clocks=clocks.get("locked") if clocks else None,
                      errors=list(state.get("errors") or []))


def read_board_state() -> BoardState:
    try:
        from edgepose.jetson.power import read_power_state
    except ImportError as exc:  # an install without the jetson package: record why
        return BoardState(errors=[f"edgepose.jetson.power unavailable: {exc}"])
    return board_state_from_power(read_power_state())
