"""Camera intrinsics and the camera -> vehicle rotation for cabin cameras.

Perspective: a pose network sees a crop as if the face sat on the optical axis, so a head
off-centre in a wide-angle cabin camera reads as yaw/pitch it does not have.  The runtime
corrects each face by the viewing ray through its crop centre
(:func:`edgepose.geometry.perspective_correction`) with intrinsics ``K``; without a calibration
``K`` is derived from the horizontal field of view (square pixels, principal point at the
image centre).

Vehicle frame
-------------
``R_vehicle_cam`` is the rotation from camera to vehicle axes in the *camera-frame form* of
docs/runtime.md ("Vehicle frame"): ``R3_vehicle_head = R_vehicle_cam . R3_cam_head`` with ``R3 = R^T`` (the
3DDFA camera-frame matrix, :func:`edgepose.geometry.camera_frame`).  In edgepose's canonical
form this is::

    R_vehicle = R_cam @ R_vehicle_cam.T        (= geometry.relative_to_neutral(R_cam, R_vehicle_cam))

The vehicle axes are those of a virtual camera straight ahead of the driver looking back at
them (x = vehicle left for a camera facing rearward, y = up, z = vehicle forward), so the
vehicle-frame Euler angles read like camera angles: yaw 0 / pitch 0 = looking down the road,
+yaw = turning toward the driver's right (image-left of that virtual camera), +pitch = up.
Equivalently, ``R_vehicle_cam`` is the canonical pose the camera reports for a driver looking
straight down the road, which is how it is easiest to measure: record the driver looking at
the road and take the (averaged) camera-frame pose, or give the mount as (pitch, yaw, roll).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .. import geometry
from ..errors import UserError

__all__ = ["intrinsics_from_hfov", "intrinsics_from_values", "VehicleFrame"]


def intrinsics_from_hfov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K for a frame of width x height with the given horizontal field of view."""
    if not 1.0 <= hfov_deg < 179.0:
        raise UserError(f"camera.hfov_deg must be between 1 and 179 degrees, got {hfov_deg}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def intrinsics_from_values(values: Sequence[float]) -> np.ndarray:
    """[fx, fy, cx, cy] (OpenCV calibration values, pixels) -> K."""
    if len(values) != 4 or min(values[0], values[1]) <= 0:
        raise UserError(f"camera.intrinsics must be [fx, fy, cx, cy] with positive focal lengths, got {list(values)}")
    fx, fy, cx, cy = (float(v) for v in values)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


class VehicleFrame:
    """Camera-frame poses -> vehicle-frame poses with a fixed ``R_vehicle_cam``."""

    def __init__(self, R_vehicle_cam: np.ndarray):
        R = np.asarray(R_vehicle_cam, np.float64)
        if R.shape != (3, 3) or not bool(geometry.is_rotation(R, atol=1e-4)):
            raise UserError("vehicle.R_vehicle_cam must be a 3x3 rotation matrix (orthonormal, det +1)")
        self.R_vehicle_cam = R

    @classmethod
    def from_euler(cls, pitch_yaw_roll_deg: Sequence[float]) -> "VehicleFrame":
        """From the camera-frame pose (pitch, yaw, roll) of a driver looking down the road."""
        if len(pitch_yaw_roll_deg) != 3:
            raise UserError(f"vehicle.road_pose_deg must be [pitch, yaw, roll], got {list(pitch_yaw_roll_deg)}")
        return cls(geometry.euler_to_matrix(np.asarray(pitch_yaw_roll_deg, np.float64)))

    def apply(self, R_cam) -> np.ndarray:
        """R_cam (..., 3, 3) canonical camera-frame pose -> canonical vehicle-frame pose."""
        return geometry.relative_to_neutral(np.asarray(R_cam, np.float64), self.R_vehicle_cam)
