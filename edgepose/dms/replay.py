"""Offline DMS over a recorded ``edgepose run --jsonl`` file (same engine as live)."""
from __future__ import annotations

from pathlib import Path

from .inputs import read_run_jsonl
from .observer import DmsObserver

__all__ = ["replay"]


def replay(run_jsonl: str | Path, preset, events_out=None, signals=None, mount=None, overrides=None,
           write_states: bool = False, mqtt=None, progress: bool = True) -> dict:
    """Run the DMS over every frame of ``run_jsonl``; returns the summary (frames, events by type).

    Events are flushed line by line, and Ctrl-C still closes open episodes and the output file.
    """
    from tqdm import tqdm

    obs = DmsObserver(preset, events_out=events_out, mqtt=mqtt, signals=signals, mount=mount,
                      overrides=overrides, write_states=write_states)
    try:
        for inp in tqdm(read_run_jsonl(run_jsonl), unit="frame", desc="dms replay", disable=None if progress else True,
                        leave=False):
            obs.process(inp)
    finally:
        obs.close()
    return obs.summary()
