"""Camera mount (extrinsics) and the vehicle-frame head pose.

Vehicle frame (used by every DMS zone): a virtual camera straight ahead of the driver looking back
at them, so the edgepose conventions carry over unchanged: x = the driver's left, y = up,
z = forward (direction of travel).  A head looking down the road has R_vehicle = I;
+yaw = the driver turns to their RIGHT, +pitch = up, angles ordered (pitch, yaw, roll).

Formula (camera-frame form, deployment.md 7.2)::

    R_vehicle_head = R_vehicle_cam . R_cam_head,   R_cam_head = R^T   (hpe-methods.md 1.2)

so in the canonical convention (rows = head axes)::

    R_vehicle = (R_vehicle_cam R^T)^T = R . R_vehicle_cam^T = R . C,   C = R_vehicle_cam^T

The mount file gives C directly as ``yaw/pitch/roll``: **the vehicle-frame head pose of a driver
who looks straight into the lens** (the pose at which the camera sees a frontal face, R = I).
A camera on the steering column below the line of sight has ``pitch: -20``; one on the left
A-pillar of a left-hand-drive car ``yaw: -40``.  Alternatively ``R_vehicle_cam`` gives the 3x3
camera->vehicle rotation in camera-frame form.

Mount file (YAML)::

    yaw: -10.0      # degrees
    pitch: -18.0
    roll: 0.0
    # or:  R_vehicle_cam: [[...], [...], [...]]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from .. import geometry
from .config import DmsConfigError

__all__ = ["CameraMount"]


class CameraMount:
    """Maps camera-frame head poses (canonical R) to the vehicle frame."""

    def __init__(self, C: np.ndarray | None = None):
        C = np.eye(3) if C is None else np.asarray(C, dtype=np.float64)
        if C.shape != (3, 3) or not bool(geometry.is_rotation(C, atol=1e-4)):
            raise DmsConfigError("camera mount must be a 3x3 rotation matrix (orthonormal, det +1)")
        self.C = C

    @classmethod
    def from_angles(cls, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> "CameraMount":
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
        if not isinstance(data, dict):
            raise DmsConfigError(f"camera mount file {path} must be a mapping (yaw/pitch/roll or R_vehicle_cam)")
        unknown = set(data) - {"yaw", "pitch", "roll", "R_vehicle_cam", "description"}
        if unknown:
            raise DmsConfigError(f"camera mount file {path}: unknown key(s) {sorted(unknown)}; "
                                 "use yaw/pitch/roll (degrees) or R_vehicle_cam (3x3)")
        if "R_vehicle_cam" in data:
            if any(k in data for k in ("yaw", "pitch", "roll")):
                raise DmsConfigError(f"camera mount file {path}: give either yaw/pitch/roll or R_vehicle_cam, not both")
            try:
                M = np.asarray(data["R_vehicle_cam"], dtype=np.float64)
            except (TypeError, ValueError):
                raise DmsConfigError(f"camera mount file {path}: R_vehicle_cam must be a 3x3 list of numbers") from None
            if M.shape != (3, 3):
                raise DmsConfigError(f"camera mount file {path}: R_vehicle_cam must be 3x3, got shape {M.shape}")
            return cls(M.T)
        try:
            return cls.from_angles(float(data.get("yaw", 0.0)), float(data.get("pitch", 0.0)), float(data.get("roll", 0.0)))
        except (TypeError, ValueError):
            raise DmsConfigError(f"camera mount file {path}: yaw/pitch/roll must be numbers in degrees") from None

    @property
    def R_vehicle_cam(self) -> np.ndarray:
        return self.C.T

    def to_vehicle(self, R_cam: np.ndarray) -> np.ndarray:
        """Canonical camera-frame pose R -> canonical vehicle-frame pose R . C."""
        # R . C = R . (R_vehicle_cam)^T: the same product as a neutral-pose offset
        return geometry.relative_to_neutral(R_cam, self.R_vehicle_cam)

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.C, np.eye(3)))
