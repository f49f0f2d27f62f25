"""Camera mount (extrinsics) and the vehicle-frame head pose.

Vehicle frame (used by every DMS zone): a virtual camera straight ahead of the driver looking back
at them, so the edgepose conventions carry over unchanged: x = the driver's left, y = up,
z = forward (direction of travel).  A head looking down the road has R_vehicle = I;
+yaw = the driver turns to their RIGHT, +pitch = up, angles ordered (pitch, yaw, roll).

Formula (camera-frame form, docs/runtime.md "Vehicle frame")::

    R_vehicle_head = R_vehicle_cam . R_cam_head,   R_cam_head = R^T   (docs/conventions.md)

so in the canonical convention (rows = head axes)::

    R_vehicle = (R_vehicle_cam R^T)^T = R . R_vehicle_cam^T = geometry.relative_to_neutral(R, R_vehicle_cam)

This is the same definition as the runtime's ``vehicle:`` section (:mod:`edgepose.runtime.camera`)
and the mount file uses the same keys, so one file serves both:

* ``road_pose_deg: [pitch, yaw, roll]``: the camera-frame pose (what ``edgepose run`` reports
  without a mount) of the driver looking straight down the road; R_vehicle_cam =
  euler_to_matrix(road_pose_deg).  Easiest to measure: record the driver looking at the road.
  A camera on the steering column, below the line of sight, sees the road-looking driver with
  the head pitched UP (e.g. ``[15, 0, 0]``).
* ``R_vehicle_cam: [[...], [...], [...]]``: the 3x3 camera->vehicle rotation (camera-frame form).

Either key may sit at the top level or under ``vehicle:`` (a runtime config file works as is).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from .. import geometry
from .config import DmsConfigError

__all__ = ["CameraMount"]


class CameraMount:
    """Maps canonical camera-frame head poses to the vehicle frame with a fixed R_vehicle_cam."""

    def __init__(self, R_vehicle_cam: np.ndarray | None = None):
        M = np.eye(3) if R_vehicle_cam is None else np.asarray(R_vehicle_cam, dtype=np.float64)
        if M.shape != (3, 3) or not bool(geometry.is_rotation(M, atol=1e-4)):
            raise DmsConfigError("camera mount R_vehicle_cam must be a 3x3 rotation matrix (orthonormal, det +1)")
        self.R_vehicle_cam = M

    @classmethod
    def from_road_pose(cls, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> "CameraMount":
        """From the camera-frame pose of a driver looking straight down the road (degrees)."""
        return cls(geometry.euler_to_matrix([pitch, yaw, roll]))

    @classmethod
    def from_file(cls, path: str | Path | None) -> "CameraMount":
        if path is None:
            return cls()
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise DmsConfigError(f"cannot read camera mount file {path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise DmsConfigError(f"camera mount file {path} is not valid YAML: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("vehicle"), dict):
            data = data["vehicle"]  # a runtime config file
        hint = "use road_pose_deg: [pitch, yaw, roll] (degrees) or R_vehicle_cam: 3x3"
        if not isinstance(data, dict):
            raise DmsConfigError(f"camera mount file {path} must be a mapping; {hint}")
        unknown = set(data) - {"road_pose_deg", "R_vehicle_cam", "description"}
        if unknown:
            raise DmsConfigError(f"camera mount file {path}: unknown key(s) {sorted(unknown)}; {hint}")
        have = [k for k in ("road_pose_deg", "R_vehicle_cam") if data.get(k) is not None]
        if len(have) != 1:
            raise DmsConfigError(f"camera mount file {path}: give exactly one of road_pose_deg / R_vehicle_cam")
        try:
            value = np.asarray(data[have[0]], dtype=np.float64)
        except (TypeError, ValueError):
            raise DmsConfigError(f"camera mount file {path}: {have[0]} must hold numbers; {hint}") from None
        if have[0] == "road_pose_deg":
            if value.shape != (3,):
                raise DmsConfigError(f"camera mount file {path}: road_pose_deg must be [pitch, yaw, roll], got {value.tolist()}")
            return cls.from_road_pose(*value)
        if value.shape != (3, 3):
            raise DmsConfigError(f"camera mount file {path}: R_vehicle_cam must be 3x3, got shape {value.shape}")
        return cls(value)

    @property
    def C(self) -> np.ndarray:
        """R_vehicle_cam^T: the vehicle-frame pose of a driver looking straight into the lens."""
        return self.R_vehicle_cam.T

    def to_vehicle(self, R_cam: np.ndarray) -> np.ndarray:
        """Canonical camera-frame pose R -> canonical vehicle-frame pose R . R_vehicle_cam^T."""
        return geometry.relative_to_neutral(R_cam, self.R_vehicle_cam)
