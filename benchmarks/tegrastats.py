"""tegrastats: parse its lines (every Jetson generation) and sample it during a benchmark.

Line formats seen in the wild (recorded samples with sources: ``tests/data/tegrastats/``):

* JetPack 5/6 (Orin, Xavier NX on JP5): ``VDD_IN 5299mW/5299mW VDD_CPU_GPU_CV 773mW/773mW ...``
  = instantaneous / running-average milliwatts, temperatures ``tj@48.875C`` (``-256C`` = sensor
  off), ``GR3D_FREQ 0%@[305,305]``, optional leading ``MM-DD-YYYY HH:MM:SS`` timestamp.
* JetPack 4 (Nano, TX1/TX2, Xavier): the same without the ``mW`` unit (``POM_5V_IN 1022/1022``,
  ``VDD_IN 3056/3056``); AGX Xavier names its rails ``GPU``/``CPU``/``SOC``/``CV``/``SYS5V``.

Board power: ``VDD_IN`` (Orin NX / Nano, Xavier NX, TX2) or ``POM_5V_IN`` (Nano); boards
without an input rail (AGX Orin, AGX Xavier) get the sum of their rails, as jetson-stats
does.  Compute power: ``VDD_CPU_GPU_CV`` when present, else the sum of the CPU/GPU/CV rails.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from edgepose.errors import UserError

__all__ = ["TegraSample", "parse_line", "parse_lines", "TegrastatsSampler", "summarize_power",
           "TOTAL_RAILS", "COMPUTE_RAIL"]

log = logging.getLogger(__name__)

#: rails that measure the whole module input, in order of preference
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
#: the Orin NX / Orin Nano / Xavier NX rail that feeds CPU + GPU + CV engines
COMPUTE_RAIL = "VDD_CPU_GPU_CV"

_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
# a rail: NAME inst/avg with optional mW units; MB/kB-suffixed pairs (RAM, SWAP, IRAM) never match
_RAIL = re.compile(r"(?<![\w@])([A-Za-z][A-Za-z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_TEMP = re.compile(r"(?<![\w@%])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C(?=\s|$)")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]", re.IGNORECASE)
_GR3D = re.compile(r"\bGR3D(?:_FREQ)? (\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"\bEMC(?:_FREQ)? (\d+)%(?:@(\d+))?")
#: tokens that look like rails but are not power (none so far; kept for clarity)
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM"})
#: sensors whose value is a constant placeholder, not a measurement
_FIXED_SENSORS = frozenset({"PMIC"})


@dataclass
class TegraSample:
    """One tegrastats line, parsed.  Power in milliwatts, temperatures in deg C."""

    rails_mw: dict[str, float] = field(default_factory=dict)  # instantaneous
    rails_avg_mw: dict[str, float] = field(default_factory=dict)  # tegrastats' running average
    temps_c: dict[str, float] = field(default_factory=dict)
    cpu_load: list[float | None] = field(default_factory=list)  # per core, None = off
    cpu_freq_mhz: list[int | None] = field(default_factory=list)
    gr3d_pct: float | None = None
    gr3d_freq_mhz: list[int] = field(default_factory=list)
    emc_pct: float | None = None
    emc_freq_mhz: int | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    timestamp: str | None = None  # as printed by tegrastats (JetPack 6 prints one)
    t: float | None = None  # time.monotonic() when the sampler read the line

    @property
    def total_mw(self) -> float | None:
        """Module input power: VDD_IN / POM_5V_IN, else the sum of all rails (AGX boards)."""
        for name in TOTAL_RAILS:
            if name in self.rails_mw:
                return self.rails_mw[name]
        return float(sum(self.rails_mw.values())) if self.rails_mw else None

    @property
    def total_source(self) -> str | None:
        for name in TOTAL_RAILS:
            if name in self.rails_mw:
                return name
        return "sum of rails" if self.rails_mw else None

    @property
    def compute_mw(self) -> float | None:
        """CPU + GPU + CV power: VDD_CPU_GPU_CV, else the sum of rails named CPU/GPU/CV."""
        if COMPUTE_RAIL in self.rails_mw:
            return self.rails_mw[COMPUTE_RAIL]
        parts = [v for k, v in self.rails_mw.items()
                 if k not in TOTAL_RAILS and re.search(r"(?:^|_)(CPU|GPU|CV)(?:_|$)", k)]
        return float(sum(parts)) if parts else None

    @property
    def cpu_load_mean(self) -> float | None:
        on = [v for v in self.cpu_load if v is not None]
        return float(np.mean(on)) if on else None

    @property
    def max_temp_c(self) -> float | None:
        """Hottest real sensor; PMIC is excluded (JetPack 4 always prints a fixed PMIC@100C)."""
        real = [v for k, v in self.temps_c.items() if k.upper() not in _FIXED_SENSORS]
        return max(real) if real else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(total_mw=self.total_mw, total_source=self.total_source, compute_mw=self.compute_mw)
        return d


def _parse_cpu(body: str) -> tuple[list[float | None], list[int | None]]:
    loads, freqs = [], []
    for tok in (t.strip() for t in body.split(",")):
        if not tok or tok.lower() == "off":
            loads.append(None)
            freqs.append(None)
            continue
        m = re.match(r"(\d+)%(?:@(\d+))?", tok)
        if m:
            loads.append(float(m.group(1)))
            freqs.append(int(m.group(2)) if m.group(2) else None)
    return loads, freqs


def parse_line(line: str) -> TegraSample | None:
    """Parse one tegrastats line; None for lines that are not statistics (blank, banners)."""
    text = line.strip()
    if not text or text.startswith("#"):  # recorded logs carry comment headers
        return None
    if "RAM " not in text and not _RAIL.search(text):
        return None
    s = TegraSample()
    m = _TIMESTAMP.match(text)
    if m:
        s.timestamp = m.group(1)
        text = text[m.end():]
    m = _RAM.search(text)
    if m:
        s.ram_used_mb, s.ram_total_mb = int(m.group(1)), int(m.group(2))
    m = _CPU.search(text)
    if m:
        s.cpu_load, s.cpu_freq_mhz = _parse_cpu(m.group(1))
    m = _GR3D.search(text)
    if m:
        s.gr3d_pct = float(m.group(1))
        s.gr3d_freq_mhz = [int(f) for f in (m.group(2) or "").split(",") if f]
    m = _EMC.search(text)
    if m:
        s.emc_pct = float(m.group(1))
        s.emc_freq_mhz = int(m.group(2)) if m.group(2) else None
    for name, inst, avg in _RAIL.findall(text):
        if name in _NOT_RAILS or name == "NC":  # "NC" = a not-connected INA3221 channel (AGX Orin)
            continue
        s.rails_mw[name] = float(inst)
        s.rails_avg_mw[name] = float(avg)
    for name, value in _TEMP.findall(text):
        v = float(value)
        if v > -200:  # -256C marks a powered-off sensor (CV engines, idle GPU on JetPack 6)
            s.temps_c[name] = v
    if not s.rails_mw and s.ram_used_mb is None:
        return None
    return s


def parse_lines(lines: Iterable[str]) -> list[TegraSample]:
    return [s for s in (parse_line(l) for l in lines) if s is not None]


def _mean(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def summarize_power(samples: Sequence[TegraSample], duration_s: float | None = None,
                    inferences: int | None = None) -> dict:
    """Mean power per rail, board / compute mean W, max temperature, GR3D / EMC load, energy.

    Energy = mean board power x ``duration_s`` (mJ); per inference = energy / ``inferences``.
    With fewer than one sample per interval this is a coarse estimate: the report keeps the
    sample count so readers can judge it.
    """
    if not samples:
        return {"samples": 0}
    rails = sorted({k for s in samples for k in s.rails_mw})
    out: dict = {"samples": len(samples),
                 "rails_mean_mw": {r: _mean(s.rails_mw.get(r) for s in samples) for r in rails},
                 "total_source": samples[0].total_source}
    total = _mean(s.total_mw for s in samples)
    compute = _mean(s.compute_mw for s in samples)
    out["total_w"] = total / 1000.0 if total is not None else None
    out["compute_w"] = compute / 1000.0 if compute is not None else None
    temps = [s.max_temp_c for s in samples if s.max_temp_c is not None]
    out["max_temp_c"] = max(temps) if temps else None
    out["gr3d_pct"] = _mean(s.gr3d_pct for s in samples)
    out["emc_pct"] = _mean(s.emc_pct for s in samples)
    out["cpu_pct"] = _mean(s.cpu_load_mean for s in samples)
    if duration_s and total is not None:
        out["duration_s"] = float(duration_s)
        out["energy_mj"] = total * float(duration_s)  # mW x s = mJ
        if inferences:
            out["energy_mj_per_inference"] = out["energy_mj"] / inferences
    return out


class TegrastatsSampler:
    """Runs ``tegrastats --interval N`` in the background and keeps every parsed line.

    Use as a context manager around the work; ``window(t0, t1)`` selects the samples read
    between two ``time.monotonic()`` stamps.  ``command`` replaces the executable (a different
    path on the board, or a recorded-log player in tests).
    """

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None):
        if interval_ms < 10:
            raise UserError(f"tegrastats interval {interval_ms} ms is too short; use >= 10 ms")
        self.interval_ms = int(interval_ms)
        self.command = list(command) if command else ["tegrastats"]
        self.samples: list[TegraSample] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @staticmethod
    def available(command: str = "tegrastats") -> bool:
        return shutil.which(command) is not None

    def start(self) -> "TegrastatsSampler":
        exe = shutil.which(self.command[0]) or self.command[0]
        cmd = [exe, *self.command[1:], "--interval", str(self.interval_ms)]
        try:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        except OSError as exc:
            raise UserError(f"cannot start tegrastats ({' '.join(cmd)}): {exc}; power sampling needs a Jetson "
                            f"(or disable it with power: false in the suite)") from None
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            s = parse_line(line)
            if s is not None:
                s.t = time.monotonic()
                with self._lock:
                    self.samples.append(s)

    def stop(self) -> list[TegraSample]:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=3)
            self._thread = None
        return list(self.samples)

    def window(self, t0: float, t1: float) -> list[TegraSample]:
        with self._lock:
            return [s for s in self.samples if s.t is not None and t0 <= s.t <= t1]

    def __enter__(self) -> "TegrastatsSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
