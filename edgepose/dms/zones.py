"""Gaze zones in the vehicle frame and the zone tracker with entry/exit hysteresis.

Angles are vehicle-frame head yaw/pitch in degrees, in edgepose's convention carried over to the
vehicle frame (:mod:`edgepose.dms.mount`): +yaw = the driver turns to their RIGHT, +pitch = up.
With the roll-last order R = Rz(roll) Ry(yaw) Rx(pitch) the nose direction depends on yaw and pitch
only, so roll never moves a glance between zones.

Hysteresis works on the signed distance to a zone's boundary (positive inside): a zone is entered
only ``enter_margin`` degrees inside its edge and left only ``exit_margin`` degrees outside it, so
a head resting on a boundary never flickers between two zones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DmsConfig, DmsConfigError, ZoneConfig

__all__ = ["Zone", "ZoneTracker", "build_zones", "mirror_zone", "OTHER_ZONE"]

#: The name reported for a direction outside every zone (counts as off-road, not driving-related).
OTHER_ZONE = "other"


@dataclass(frozen=True)
class Zone:
    name: str
    category: str  # road | driving | non_driving
    polygon: np.ndarray  # (K, 2) [yaw, pitch] corners, counter-clockwise or clockwise

    @property
    def is_road(self) -> bool:
        return self.category == "road"

    def signed_distance(self, yaw: float, pitch: float) -> float:
        """Degrees to the boundary: > 0 inside, < 0 outside."""
        p = np.array([yaw, pitch], dtype=np.float64)
        a = self.polygon
        b = np.roll(a, -1, axis=0)
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
        dist = float(np.min(np.linalg.norm(a + t[:, None] * ab - p, axis=1)))
        # even-odd ray casting for inside/outside
        inside = False
        for (x1, y1), (x2, y2) in zip(a, b):
            if (y1 > p[1]) != (y2 > p[1]):
                x_cross = x1 + (p[1] - y1) * (x2 - x1) / (y2 - y1)
                if p[0] < x_cross:
                    inside = not inside
        return dist if inside else -dist


def _zone_polygon(z: ZoneConfig) -> np.ndarray:
    if z.polygon is not None:
        poly = np.asarray(z.polygon, dtype=np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
            raise DmsConfigError(f"zone {z.name}: polygon must be a list of at least 3 [yaw, pitch] corners")
        return poly
    if z.yaw is None or z.pitch is None or len(z.yaw) != 2 or len(z.pitch) != 2:
        raise DmsConfigError(f"zone {z.name}: give 'yaw: [min, max]' and 'pitch: [min, max]', or a 'polygon'")
    (y0, y1), (p0, p1) = sorted(z.yaw), sorted(z.pitch)
    if y0 == y1 or p0 == p1:
        raise DmsConfigError(f"zone {z.name}: empty rectangle yaw={z.yaw} pitch={z.pitch}")
    return np.array([[y0, p0], [y1, p0], [y1, p1], [y0, p1]], dtype=np.float64)


def _swap_side(name: str) -> str:
    """left_mirror <-> right_mirror (the physical side swaps when the layout is mirrored)."""
    out = []
    for part in name.split("_"):
        out.append({"left": "right", "right": "left"}.get(part, part))
    return "_".join(out)


def mirror_zone(zone: Zone) -> Zone:
    """Mirror image for the other drive side: yaw -> -yaw, left <-> right in the name."""
    poly = zone.polygon.copy()
    poly[:, 0] *= -1.0
    return Zone(_swap_side(zone.name), zone.category, poly[::-1].copy())


def build_zones(cfg: DmsConfig) -> list[Zone]:
    """Zones from the config; ``drive_side: rhd`` mirrors a left-hand-drive layout."""
    zones = [Zone(z.name, z.category, _zone_polygon(z)) for z in cfg.zones]
    if cfg.drive_side == "rhd":
        zones = [mirror_zone(z) for z in zones]
    return zones


class ZoneTracker:
    """Current zone with hysteresis; ``reset()`` after unknown time (no memory across gaps)."""

    def __init__(self, zones: list[Zone], enter_margin: float, exit_margin: float):
        self.zones = zones
        self.enter_margin = float(enter_margin)
        self.exit_margin = float(exit_margin)
        self.current: Zone | None = None
        self._by_name = {z.name: z for z in zones}

    def reset(self) -> None:
        self.current = None
        self._left_other = False

    def category(self, name: str) -> str:
        z = self._by_name.get(name)
        return z.category if z is not None else "non_driving"

    def update(self, yaw: float, pitch: float) -> str:
        """Zone name for this direction (``OTHER_ZONE`` outside all zones)."""
        dists = [(z.signed_distance(yaw, pitch), z) for z in self.zones]
        if self.current is not None:
            d_cur = next(d for d, z in dists if z is self.current)
            if d_cur >= -self.exit_margin:
                return self.current.name
        # enter the zone we are deepest inside, if deep enough; the first-ever frame (no history)
        # uses plain containment so a start on a boundary still gets a zone
        margin = self.enter_margin if self.current is not None or self._left_other else 0.0
        best_d, best = max(dists, key=lambda dz: dz[0])
        if best_d >= margin:
            self.current = best
            self._left_other = False
            return best.name
        if self.current is not None:
            # left the current zone but no other zone is entered yet: "other" (off-road)
            self.current = None
            self._left_other = True
        return OTHER_ZONE

    _left_other = False
