"""Jetson power mode and clocks for benchmark reports (``nvpmodel -q``, ``jetson_clocks --show``).

Latency on a Jetson depends on the nvpmodel mode (MAXN, 30W, 15W, ...) and on whether
``jetson_clocks`` pinned the clocks to their maximum; every bench report should record both.
The parsers take the tools' text output (tested on recorded outputs); :func:`read_power_state`
runs the tools when they exist and never raises (a bench on a desktop records ``available:
False``).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from typing import Callable

__all__ = ["parse_nvpmodel_query", "parse_jetson_clocks_show", "read_power_state"]

_FREQ_RE = re.compile(r"(\w+)=(\S+)")


def parse_nvpmodel_query(text: str) -> dict:
    """``NV Power Mode: MAXN`` + a line with the mode id -> {"mode": "MAXN", "id": 0}."""
    mode = mid = None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        m = re.match(r"NV Power Mode\s*:\s*(.+)", ln)
        if m:
            mode = m.group(1).strip()
            if i + 1 < len(lines) and lines[i + 1].isdigit():
                mid = int(lines[i + 1])
    if mode is None:
        raise ValueError("no 'NV Power Mode:' line in the nvpmodel output")
    return {"mode": mode, "id": mid}


def _fields(rest: str) -> dict:
    out = {}
    for k, v in _FREQ_RE.findall(rest):
        out[k] = int(v) if v.isdigit() else v
    return out


def parse_jetson_clocks_show(text: str) -> dict:
    """Parse ``jetson_clocks --show``: SoC, CPU governors/frequencies, GPU, EMC, DLA, power mode.

    ``locked`` is True when jetson_clocks pinned the clocks: every online CPU and the GPU run
    with MinFreq == MaxFreq.
    """
    info: dict = {"cpus": {}, "engines": {}}
    for raw in text.splitlines():
        ln = raw.strip()
        if not ln:
            continue
        if ln.startswith("SOC family:"):
            m = re.match(r"SOC family:(\S+)\s+Machine:(.*)", ln)
            if m:
                info["soc"], info["machine"] = m.group(1), m.group(2).strip()
        elif ln.startswith("Online CPUs:"):
            info["online_cpus"] = ln.split(":", 1)[1].strip()
        elif re.match(r"cpu\d+:", ln):
            name, rest = ln.split(":", 1)
            info["cpus"][name] = _fields(rest.split("IdleStates")[0])
        elif ln.startswith("NV Power Mode:"):
            info["power_mode"] = ln.split(":", 1)[1].strip()
        elif ln.startswith("FAN"):
            info["fan"] = ln[3:].strip()
        else:
            m = re.match(r"([A-Z][A-Z0-9_]*)\s+(MinFreq=.*)", ln)
            if m:
                info["engines"][m.group(1)] = _fields(m.group(2))
    cpus = [c for c in info["cpus"].values() if c.get("Online", 1) == 1]
    gpu = info["engines"].get("GPU")
    pinned = [c.get("MinFreq") == c.get("MaxFreq") for c in cpus]
    if gpu:
        pinned.append(gpu.get("MinFreq") == gpu.get("MaxFreq"))
    info["locked"] = bool(pinned) and all(pinned)
    return info


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def read_power_state(run: Callable[[list[str]], str | None] = _run, which=shutil.which) -> dict:
    """What bench reports store: {"available", "nvpmodel", "jetson_clocks", "errors"}."""
    state: dict = {"available": False, "errors": []}
    if which("nvpmodel"):
        text = run(["nvpmodel", "-q"])
        if text is None:
            state["errors"].append("nvpmodel -q failed (run the bench with sudo to record the power mode)")
        else:
            try:
                state["nvpmodel"] = parse_nvpmodel_query(text)
                state["available"] = True
            except ValueError as exc:
                state["errors"].append(f"nvpmodel: {exc}")
    if which("jetson_clocks"):
        text = run(["jetson_clocks", "--show"])
        if text is None:
            state["errors"].append("jetson_clocks --show failed (needs sudo)")
        else:
            state["jetson_clocks"] = parse_jetson_clocks_show(text)
            state["available"] = True
    if not state["available"] and not state["errors"]:
        state["errors"].append("not a Jetson (nvpmodel / jetson_clocks not found)")
    return state
