"""DMS configuration: dataclasses loaded from a preset YAML (shipped: ``edgepose/dms/presets/*.yaml``).

A preset holds the zone layout (or a ``zones_file`` next to it), the rule thresholds, the
availability and frame-gap limits and the calibration settings.  The camera mount is car-specific
and lives in its own file (``--mount mount.yaml``, see :mod:`edgepose.dms.mount`).  Every key can be
overridden on the command line as ``key=value`` (``long_distraction.threshold_s=2.5``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from ..config import ConfigError, apply_overrides, from_dict, to_dict
from ..errors import UserError

__all__ = [
    "DmsConfigError", "ZoneConfig", "LongDistractionConfig", "VatsConfig", "AddwBand", "AddwConfig",
    "AvailabilityConfig", "IndicatorConfig", "CalibrationConfig", "OutputsConfig", "DmsConfig", "load_preset",
    "resolve_preset_path", "shipped_presets", "PRESET_DIR",
]


def _preset_dir() -> Path:
    # importlib.resources, not a path relative to the source tree: the presets must resolve the same
    # from an editable checkout and from a wheel in site-packages.  The package is a plain folder on
    # disk in both cases (no zip imports), which load_preset needs for zones_file next to the preset.
    return Path(str(resources.files("edgepose.dms.presets")))


#: Presets shipped inside the package; ``--dms euro-ncap-2023`` resolves here.
PRESET_DIR = _preset_dir()

ZONE_CATEGORIES = ("road", "driving", "non_driving")


class DmsConfigError(UserError):
    """A DMS preset, mount or signal file is invalid; the message names the key and the fix."""


@dataclass
class ZoneConfig:
    """A gaze zone in the vehicle frame (degrees; +yaw = the driver turns to their RIGHT, +pitch = up).

    Give either a rectangle (``yaw: [min, max]`` and ``pitch: [min, max]``) or a ``polygon`` of
    ``[yaw, pitch]`` corners.  ``category``: ``road`` (exactly one zone: the forward road view),
    ``driving`` (mirrors, cluster: driving-related) or ``non_driving`` (infotainment, lap, windows).
    """

    name: str = ""
    category: str = "non_driving"
    yaw: list[float] | None = None
    pitch: list[float] | None = None
    polygon: list[list[float]] | None = None


@dataclass
class LongDistractionConfig:
    """Euro NCAP 2023: a single continuous off-road glance of at least ``threshold_s``."""

    enabled: bool = True
    threshold_s: float = 3.0
    include_driving_zones: bool = True  # glances to mirrors/cluster count as off-road too
    min_speed_kmh: float | None = None  # when speed is known and lower, the rule is idle


@dataclass
class VatsConfig:
    """Visual attention time-sharing: more than ``threshold_s`` off-road within ``window_s``."""

    enabled: bool = True
    threshold_s: float = 10.0
    window_s: float = 30.0
    include_driving_zones: bool = True
    min_speed_kmh: float | None = None


@dataclass
class AddwBand:
    """One speed band: ``min_kmh <= speed <= max_kmh`` (``max_kmh: null`` = no upper bound)."""

    min_kmh: float = 0.0
    max_kmh: float | None = None
    warn_after_s: float = 6.0


@dataclass
class AddwConfig:
    """EU ADDW (Delegated Reg. (EU) 2023/2590) speed-dependent warning; the first matching band wins.

    Outside every band (below 20 km/h by default) and when the speed is unknown the rule is idle.
    """

    enabled: bool = False
    include_driving_zones: bool = True
    bands: list[AddwBand] = field(default_factory=lambda: [
        AddwBand(20.0, 50.0, 6.0),
        AddwBand(50.0, None, 3.0),  # the regulation says "before 3.5 s": 3.0 leaves margin for latency
    ])


@dataclass
class AvailabilityConfig:
    """Frame gaps and face loss.

    ``max_gap_s``: two valid observations further apart than this leave the time between them
    UNKNOWN (neither on- nor off-road).  ``not_visible_after_s``: frames arrive but no valid driver
    face for this long -> ``driver_not_visible``.  ``unavailable_after_s``: no frame at all for this
    long -> ``monitoring_unavailable``.
    """

    max_gap_s: float = 0.5
    not_visible_after_s: float = 2.0
    unavailable_after_s: float = 1.0
    min_face_score: float = 0.0


@dataclass
class IndicatorConfig:
    """Glances toward the indicated side are legitimate (they do not count as off-road)."""

    enabled: bool = True
    left_zones: list[str] = field(default_factory=lambda: ["left_mirror", "left_window"])
    right_zones: list[str] = field(default_factory=lambda: ["right_mirror", "right_window"])
    hold_s: float = 2.0  # stays legitimate this long after the indicator goes off (lane change)


@dataclass
class CalibrationConfig:
    """Neutral (road-forward) pose: R_rel = R_vehicle R_n^T (docs/dms.md, "Neutral-pose calibration").

    ``mode``: ``auto`` (at start and on command), ``command`` (only on request), ``off``.
    A window of ``duration_s`` of valid-face time (speed >= ``min_speed_kmh`` when speed is known)
    is collected; the densest direction is found, samples within ``inlier_deg`` of it are averaged
    (quaternion mean).  Fewer than ``min_inlier_fraction`` inliers = not stable: the window slides on.
    """

    mode: str = "auto"
    duration_s: float = 5.0
    min_speed_kmh: float | None = None
    inlier_deg: float = 10.0
    min_inlier_fraction: float = 0.6
    min_samples: int = 10
    max_offset_deg: float = 30.0  # a "neutral" further than this from the mount's forward is rejected


@dataclass
class OutputsConfig:
    """Where a live observer (``edgepose run --dms PRESET``) sends its records and reads its inputs.

    Empty = off.  Paths are relative to the working directory.  Arguments given to
    :class:`~edgepose.dms.observer.DmsObserver` / ``edgepose dms replay`` take precedence.
    """

    events: str = ""  # JSONL path or "-" (stdout)
    write_states: bool = False  # periodic state records in the events JSONL as well
    mqtt: str = ""  # mqtt://host:port/topic/prefix
    mqtt_client_id: str = "edgepose-dms"
    mqtt_signals_topic: str = ""  # vehicle signals in over MQTT
    signals: str = ""  # vehicle signals file (.csv / .jsonl)
    mount: str = ""  # camera mount YAML


@dataclass
class DmsConfig:
    name: str = ""
    drive_side: str = "lhd"  # lhd | rhd (rhd mirrors the zones: yaw -> -yaw, left <-> right)
    zones_file: str = ""  # relative to the preset file; used when ``zones`` is empty
    zones: list[ZoneConfig] = field(default_factory=list)
    enter_margin_deg: float = 2.0
    exit_margin_deg: float = 3.0
    long_distraction: LongDistractionConfig = field(default_factory=LongDistractionConfig)
    vats: VatsConfig = field(default_factory=VatsConfig)
    addw: AddwConfig = field(default_factory=AddwConfig)
    availability: AvailabilityConfig = field(default_factory=AvailabilityConfig)
    indicator: IndicatorConfig = field(default_factory=IndicatorConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    signals_stale_after_s: float = 5.0  # a vehicle signal older than this is unknown
    status_every_s: float = 1.0  # periodic state records (JSONL / retained MQTT status); 0 = off
    outputs: OutputsConfig = field(default_factory=OutputsConfig)


def shipped_presets() -> list[str]:
    """Names of the shipped presets (YAMLs with a top-level ``name:``; zones, mount and timeline
    examples live in the same folder but are not presets)."""
    names = []
    for f in sorted(PRESET_DIR.glob("*.yaml")):
        try:
            data = yaml.safe_load(f.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and "name" in data:
            names.append(f.stem)
    return names


def resolve_preset_path(preset: str | Path) -> Path:
    """An existing path, or the name of a file shipped in ``edgepose/dms/presets`` (``euro-ncap-2023``,
    ``euro-ncap-2023.yaml``, also ``mount-example`` and ``example-timeline``)."""
    p = Path(preset).expanduser()
    if p.is_file():
        return p
    if p.parent == Path("."):  # a bare name; a path with folders must exist as given
        for cand in (PRESET_DIR / p.name, PRESET_DIR / f"{p.name}.yaml"):
            if cand.is_file():
                return cand
    raise DmsConfigError(f"DMS preset not found: {preset}; give a YAML path or one of the shipped presets: "
                         f"{', '.join(shipped_presets()) or '(none)'}")


def _read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise DmsConfigError(f"cannot read {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise DmsConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DmsConfigError(f"{what} {path} must hold a mapping at the top level")
    return data


def load_preset(preset: str | Path | None = None, overrides: list[str] | None = None) -> DmsConfig:
    """Defaults <- preset YAML (+ its zones_file) <- ``key=value`` overrides, validated."""
    data = to_dict(DmsConfig())
    base_dir = Path(".")
    if preset is not None:
        path = resolve_preset_path(preset)
        base_dir = path.parent
        data.update(_read_yaml(path, "DMS preset"))
    try:
        apply_overrides(data, overrides or [])
        if not data.get("zones") and data.get("zones_file"):
            zpath = Path(data["zones_file"])
            zpath = zpath if zpath.is_absolute() else base_dir / zpath
            if not zpath.is_file():
                raise DmsConfigError(f"zones_file {zpath} not found; give a path relative to the preset")
            zdata = _read_yaml(zpath, "zones file")
            if "zones" not in zdata:
                raise DmsConfigError(f"zones file {zpath} has no 'zones:' list")
            data["zones"] = zdata["zones"]
        cal = data.get("calibration")
        if isinstance(cal, dict) and cal.get("mode") is False:
            cal["mode"] = "off"  # YAML 1.1 reads a bare `off` as false
        cfg = from_dict(DmsConfig, data)
    except ConfigError as exc:
        raise DmsConfigError(f"DMS preset {preset}: {exc}") from None
    validate(cfg)
    return cfg


def validate(cfg: DmsConfig) -> None:
    """Reject configurations that would silently misbehave."""
    if cfg.drive_side not in ("lhd", "rhd"):
        raise DmsConfigError(f"drive_side must be 'lhd' or 'rhd', got {cfg.drive_side!r}")
    if not cfg.zones:
        raise DmsConfigError("the DMS preset defines no zones; add 'zones:' or 'zones_file: zones-lhd.yaml'")
    names = [z.name for z in cfg.zones]
    if len(set(names)) != len(names) or "" in names:
        raise DmsConfigError(f"zone names must be unique and non-empty, got {names}")
    for z in cfg.zones:
        if z.category not in ZONE_CATEGORIES:
            raise DmsConfigError(f"zone {z.name}: category must be one of {ZONE_CATEGORIES}, got {z.category!r}")
    if sum(z.category == "road" for z in cfg.zones) != 1:
        raise DmsConfigError("exactly one zone must have category 'road' (the forward road view)")
    if cfg.enter_margin_deg < 0 or cfg.exit_margin_deg < 0:
        raise DmsConfigError("enter_margin_deg and exit_margin_deg must be >= 0")
    a = cfg.availability
    if a.max_gap_s <= 0 or a.not_visible_after_s <= 0 or a.unavailable_after_s <= 0:
        raise DmsConfigError("availability.* durations must be > 0")
    if cfg.vats.window_s <= cfg.vats.threshold_s:
        raise DmsConfigError("vats.window_s must be longer than vats.threshold_s")
    for b in cfg.addw.bands:
        if b.warn_after_s <= 0 or (b.max_kmh is not None and b.max_kmh < b.min_kmh):
            raise DmsConfigError(f"addw band {b}: need warn_after_s > 0 and max_kmh >= min_kmh")
    if cfg.calibration.mode not in ("auto", "command", "off"):
        raise DmsConfigError(f"calibration.mode must be auto, command or off, got {cfg.calibration.mode!r}")
    if cfg.long_distraction.threshold_s <= 0:
        raise DmsConfigError("long_distraction.threshold_s must be > 0")
