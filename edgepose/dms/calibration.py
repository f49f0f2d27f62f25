"""Neutral-pose (road-forward) calibration: R_rel = R_vehicle . R_n^T (docs/dms.md, "Neutral-pose calibration").

The camera mount is never exact and every driver sits differently, so "looking at the road" is
learnt from the driver: over a window of valid-face time the densest head direction (the mode:
drivers look at the road most of the time) is found, the samples within ``inlier_deg`` of it are
kept, and their rotation mean (Markley's quaternion average) becomes R_n.  If too few samples
agree the driver was not stable yet and the window slides on.  Times are stream timestamps.
"""
from __future__ import annotations

import logging
from collections import deque

import numpy as np

from .. import geometry
from .config import CalibrationConfig

__all__ = ["NeutralCalibrator", "rotation_mean", "modal_rotation"]

log = logging.getLogger(__name__)

#: at most this many samples enter the O(n^2) mode search (subsampled evenly)
_MAX_MODE_SAMPLES = 240


def rotation_mean(Rs: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotations: dominant eigenvector of sum q q^T (sign-invariant)."""
    q = geometry.matrix_to_quat(np.asarray(Rs, dtype=np.float64))
    w, v = np.linalg.eigh(q.T @ q)
    return geometry.quat_to_matrix(v[:, int(np.argmax(w))])


def modal_rotation(Rs: np.ndarray, inlier_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean of the densest cluster, inlier mask): the sample with most neighbours within
    ``inlier_deg`` seeds the cluster; robust to glances away that make up a minority."""
    Rs = np.asarray(Rs, dtype=np.float64)
    idx = np.linspace(0, len(Rs) - 1, min(len(Rs), _MAX_MODE_SAMPLES)).round().astype(int)
    sub = Rs[idx]
    d = geometry.geodesic_distance(sub[:, None], sub[None, :])
    seed = sub[int(np.argmax((d <= inlier_deg).sum(1)))]
    inliers = geometry.geodesic_distance(Rs, seed[None]) <= inlier_deg
    mean = rotation_mean(Rs[inliers])
    # one refinement around the mean (the seed is a single noisy sample)
    inliers = geometry.geodesic_distance(Rs, mean[None]) <= inlier_deg
    return rotation_mean(Rs[inliers]), inliers


class NeutralCalibrator:
    """Collects vehicle-frame poses and produces R_n; ``request()`` starts a new calibration."""

    def __init__(self, cfg: CalibrationConfig):
        self.cfg = cfg
        self.R_neutral = np.eye(3)
        self.calibrated = False
        self.calibrated_at: float | None = None
        self.collecting = cfg.mode == "auto"
        self._samples: deque[tuple[float, np.ndarray]] = deque()
        self.last_result: dict | None = None

    def request(self) -> None:
        """Recalibrate from the next frames (API / MQTT command); the old R_n stays in use meanwhile."""
        if self.cfg.mode == "off":
            log.warning("recalibration requested but calibration.mode is off; ignored")
            return
        self.collecting = True
        self._samples.clear()

    def set_neutral(self, R_n: np.ndarray, t: float | None = None) -> None:
        self.R_neutral = np.asarray(R_n, dtype=np.float64)
        self.calibrated = True
        self.calibrated_at = t

    def relative(self, R_vehicle: np.ndarray) -> np.ndarray:
        return geometry.relative_to_neutral(R_vehicle, self.R_neutral)

    def add(self, t: float, R_vehicle: np.ndarray, speed_kmh: float | None) -> dict | None:
        """Feed one valid observation; returns a result dict when a calibration completes."""
        if not self.collecting:
            return None
        c = self.cfg
        if c.min_speed_kmh is not None and speed_kmh is not None and speed_kmh < c.min_speed_kmh:
            return None
        self._samples.append((t, np.asarray(R_vehicle, dtype=np.float64)))
        while self._samples and t - self._samples[0][0] > c.duration_s:
            self._samples.popleft()
        if t - self._samples[0][0] < c.duration_s * 0.98 or len(self._samples) < c.min_samples:
            return None
        Rs = np.stack([R for _, R in self._samples])
        R_n, inliers = modal_rotation(Rs, c.inlier_deg)
        frac = float(inliers.mean())
        offset = float(geometry.geodesic_distance(R_n, np.eye(3)))
        if frac < c.min_inlier_fraction:
            return None  # not stable yet: keep sliding
        if offset > c.max_offset_deg:
            log.warning("calibration rejected: neutral pose is %.1f deg from the mount's forward "
                        "(> calibration.max_offset_deg=%.1f); check the camera mount", offset, c.max_offset_deg)
            self._samples.clear()
            return None
        self.set_neutral(R_n, t)
        self.collecting = False
        self._samples.clear()
        pitch, yaw, roll = geometry.matrix_to_euler(R_n)
        self.last_result = {"t": t, "inlier_fraction": round(frac, 3), "samples": int(len(Rs)),
                            "neutral": {"yaw": round(float(yaw), 3), "pitch": round(float(pitch), 3), "roll": round(float(roll), 3)}}
        return self.last_result
