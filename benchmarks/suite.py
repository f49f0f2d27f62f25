"""Bench suites: YAML files (``benchmarks/suites/*.yaml``) loaded into dataclasses.

``load_suite("default")`` finds a packaged suite by name; any other value is a file path.
``${data}`` in paths expands to the test-data folder (``$EDGEPOSE_TEST_DATA``, else
``../shared/data`` relative to the working directory) and ``${cache}`` to the edgepose cache.
Overrides use the config module's ``key=value`` syntax (``iters=50``, ``batch_sizes=[1,8]``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgepose.config import ConfigError, load_config

__all__ = ["SourceSpec", "PeerSpec", "DatasetSpec", "CalibrationSpec", "PipelineSpec", "Suite", "load_suite",
           "suite_path", "list_suites", "expand_path", "BACKEND_NAMES", "PRECISION_NAMES", "SUITES_DIR"]

SUITES_DIR = Path(__file__).resolve().parent / "suites"
BACKEND_NAMES = ("torch", "ort-cpu", "ort-cuda", "ort-trt", "tensorrt")
PRECISION_NAMES = ("fp32", "fp16", "int8-cpu", "int8-tensorrt")


def data_root() -> Path:
    env = os.environ.get("EDGEPOSE_TEST_DATA")
    return Path(env) if env else Path("../shared/data")


def expand_path(value: str | None) -> Path | None:
    if not value:
        return None
    text = str(value)
    if "${data}" in text:
        text = text.replace("${data}", str(data_root()))
    if "${cache}" in text:
        from edgepose.runtime.fetch import cache_dir

        text = text.replace("${cache}", str(cache_dir()))
    return Path(os.path.expanduser(os.path.expandvars(text)))


@dataclass
class SourceSpec:
    """Where a peer's model comes from (exactly one of these)."""

    path: str | None = None  # .pt checkpoint, .onnx or .engine file
    import_teacher: str | None = None  # importer name ("whenet"): the cached weights, else the first of `weights`
    weights: list[str] = field(default_factory=list)  # for import_teacher: upstream files to try after the cache
    arch: str | None = None  # registry model with untrained weights: latency only
    # the model shipped inside the package (edgepose.defaults): fp32 | int8-cpu | int8-tensorrt; found
    # through the installed package, so a suite can name it without a checkout-relative path
    default_model: str | None = None
    head: str = "6d"
    input_size: int | None = None  # for arch


@dataclass
class PeerSpec:
    name: str = ""
    role: str = "student"  # imported-teacher | teacher | student
    source: SourceSpec = field(default_factory=SourceSpec)
    input_sizes: list[int] = field(default_factory=list)  # export sizes; [] = the model's own size
    note: str = ""
    # precisions this suite does not build for the peer, each with the reason the report shows
    skip_precisions: dict = field(default_factory=dict)


@dataclass
class DatasetSpec:
    name: str = ""
    format: str = "aflw2000"  # any edgepose.data reader format
    root: str = ""
    max_samples: int | None = None
    options: dict = field(default_factory=dict)  # extra reader keys
    # "dataset": the dataset's own face boxes (AFLW2000: from its landmarks; `edgepose eval`'s crops);
    # "detector": the boxes YuNet finds (detector_model), as `edgepose run` and docs/models.md's fixtures crop
    boxes: str = "dataset"
    detector_model: str | None = None


@dataclass
class CalibrationSpec:
    sources: list[str] = field(default_factory=list)  # images / videos / folders for INT8 calibration
    max_crops: int = 64
    method: str = "minmax"


@dataclass
class PipelineSpec:
    enabled: bool = True
    video: str = ""
    detector: str = "yunet"
    detector_model: str | None = None
    detector_size: int | None = None
    every: int = 1
    peers: list[str] = field(default_factory=list)  # [] = every peer with artifacts
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    backends: list[str] = field(default_factory=lambda: ["ort-cpu"])
    warmup_frames: int = 10
    max_frames: int | None = None
    encode: bool = True  # overlay + H.264 MP4 like `edgepose run --output`


@dataclass
class Suite:
    name: str = "suite"
    description: str = ""
    device: str = "cpu"
    threads: int | None = None  # intra-op threads (None: the engine's default)
    warmup: int = 10
    iters: int = 100
    max_seconds: float = 5.0  # cap of the timed phase per row (after 5 iterations)
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    backends: list[str] = field(default_factory=lambda: ["torch", "ort-cpu"])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    peers: list[PeerSpec] = field(default_factory=list)
    accuracy: list[DatasetSpec] = field(default_factory=list)
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    pipeline: PipelineSpec = field(default_factory=PipelineSpec)
    power: str = "auto"  # auto (when tegrastats exists) | on | off
    power_interval_ms: int = 100

    def validate(self) -> "Suite":
        bad = [b for b in self.backends + self.pipeline.backends if b not in BACKEND_NAMES]
        if bad:
            raise ConfigError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKEND_NAMES)}")
        bad = [p for p in self.precisions + self.pipeline.precisions if p not in PRECISION_NAMES]
        if bad:
            raise ConfigError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(PRECISION_NAMES)}")
        if not self.peers:
            raise ConfigError("the suite lists no peers; add at least one under 'peers:'")
        bad = [f"{p.name}: {k}" for p in self.peers for k in p.skip_precisions if k not in PRECISION_NAMES]
        if bad:
            raise ConfigError(f"skip_precisions names unknown precision(s) ({', '.join(bad)}); "
                              f"choose from {', '.join(PRECISION_NAMES)}")
        names = [p.name for p in self.peers]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"every peer needs a unique name (got {names})")
        for p in self.peers:
            given = [k for k in SOURCE_KINDS if getattr(p.source, k)]
            if len(given) != 1:
                raise ConfigError(f"peer {p.name!r}: give exactly one of "
                                  f"{', '.join('source.' + k for k in SOURCE_KINDS)} (got {given or 'none'})")
            _check_default_model(p)
            if p.source.weights and not p.source.import_teacher:
                raise ConfigError(f"peer {p.name!r}: source.weights is for source.import_teacher (the upstream files "
                                  f"to import); give the model file as source.path instead")
        unknown = set(self.pipeline.peers) - set(names)
        if unknown:
            raise ConfigError(f"pipeline.peers names unknown peer(s) {', '.join(sorted(unknown))}; peers: {', '.join(names)}")
        if any(b < 1 for b in self.batch_sizes) or not self.batch_sizes:
            raise ConfigError(f"batch_sizes must be positive integers, got {self.batch_sizes}")
        if self.iters < 1 or self.warmup < 0:
            raise ConfigError(f"iters must be >= 1 and warmup >= 0 (got iters={self.iters}, warmup={self.warmup})")
        bad = [f"{d.name or d.format}: {d.boxes!r}" for d in self.accuracy if d.boxes not in BOX_SOURCES]
        if bad:
            raise ConfigError(f"accuracy boxes must be one of {', '.join(BOX_SOURCES)} (got {', '.join(bad)})")
        if self.power not in ("auto", "on", "off"):
            raise ConfigError(f"power must be auto, on or off, got {self.power!r}")
        return self


SOURCE_KINDS = ("path", "import_teacher", "arch", "default_model")
BOX_SOURCES = ("dataset", "detector")


def _check_default_model(peer: PeerSpec) -> None:
    if not peer.source.default_model:
        return
    from edgepose.defaults import PROFILES as DEFAULT_PROFILES

    if peer.source.default_model not in DEFAULT_PROFILES:
        raise ConfigError(f"peer {peer.name!r}: source.default_model must be one of {', '.join(DEFAULT_PROFILES)} "
                          f"(got {peer.source.default_model!r}); fp32 also brings the shipped INT8 files")


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(name_or_path: str | os.PathLike) -> Path:
    text = str(name_or_path)
    p = Path(text)
    if p.is_file():
        return p
    if p.suffix.lower() in (".yaml", ".yml") or "/" in text:
        raise ConfigError(f"suite file not found: {p}")
    packaged = SUITES_DIR / f"{text}.yaml"
    if not packaged.is_file():
        raise ConfigError(f"unknown suite {text!r}; packaged suites: {', '.join(list_suites())} (or give a .yaml path)")
    return packaged


def load_suite(name_or_path: str | os.PathLike = "default", overrides: list[str] | None = None) -> tuple[Suite, Path]:
    path = suite_path(name_or_path)
    return load_config(Suite, path, overrides).validate(), path
