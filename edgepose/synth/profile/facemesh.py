"""Dense face landmarks: MediaPipe Face Mesh (468 points with depth) run through LiteRT.

Why this model: it is the only dense (468-vertex) face fit with depth whose weights ship inside a
registry package under a permissive licence (Apache-2.0, in the ``mediapipe`` 0.10.x wheels as
``mediapipe/modules/face_landmark/face_landmark.tflite``), it runs in ~2 ms per face on one CPU
core, and its topology is fixed, so one triangulation and one canonical shape serve every face.
The mediapipe Python runtime itself is not used: its 0.10.x wheels need protobuf < 5, which
breaks onnx >= 1.16 in the same environment; the model file is read from the installed wheel
(``pip install --no-deps mediapipe==0.10.14``) and run with ``ai-edge-litert``'s interpreter.

Points come back in SOURCE IMAGE pixels: ``x`` right, ``y`` down, ``z`` toward the viewer (the
model's depth, negated, in the same pixel scale as x), so the set is a weak-perspective 3D face.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...errors import DependencyError, ModelError, UserError

__all__ = ["FaceMesh", "MeshPoints", "model_path", "N_POINTS"]

N_POINTS = 468
_INPUT = 192
_SCALE = 1.5          # MediaPipe's ROI: 1.5 x the landmark box, square, rotated upright
_EYES = (33, 263)     # outer eye corners (subject's right, left) define the ROI rotation
_MIN_PRESENCE = 0.5   # the model's face-presence output (sigmoid) must exceed this


@dataclass
class MeshPoints:
    points: np.ndarray   # (468, 3) float64: x, y image pixels (y down), z toward the viewer (pixels)
    presence: float      # the model's face-presence probability on the last pass


def model_path() -> Path:
    """The face-landmark model inside the installed ``mediapipe`` wheel (not imported)."""
    env = os.environ.get("EDGEPOSE_FACEMESH_MODEL")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("face profiling needs MediaPipe's face-landmark model; install it with "
                              "`pip install --no-deps mediapipe==0.10.14` (see docs/profiling.md) or set "
                              "EDGEPOSE_FACEMESH_MODEL to a face_landmark.tflite")
    return Path(spec.submodule_search_locations[0]) / "modules" / "face_landmark" / "face_landmark.tflite"


class FaceMesh:
    """``FaceMesh()(image, box=None) -> MeshPoints | None``.  ``box`` (x1, y1, x2, y2) seeds the
    region; without it the whole image is taken as the face region (tight face crops).  Two
    refinement passes re-crop around the previous landmarks (upright, 1.5 x their box), as
    MediaPipe's tracking graph does."""

    def __init__(self, path: str | os.PathLike | None = None, passes: int = 3, threads: int = 1):
        path = Path(path) if path else model_path()
        if not path.exists():
            raise ModelError(f"face-landmark model not found: {path}; reinstall mediapipe 0.10.x "
                             "(`pip install --no-deps mediapipe==0.10.14`) or set EDGEPOSE_FACEMESH_MODEL")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise DependencyError("face profiling runs MediaPipe's model with LiteRT; install it with "
                                  "`pip install 'edgepose[profile]'`") from None
        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()
        self._in = self.interp.get_input_details()[0]["index"]
        outs = self.interp.get_output_details()
        self._pts = next(o["index"] for o in outs if int(np.prod(o["shape"])) == N_POINTS * 3)
        self._flag = next(o["index"] for o in outs if int(np.prod(o["shape"])) == 1)
        self.passes = max(int(passes), 1)

    def _run(self, rgb: np.ndarray, center, size: float, angle: float) -> tuple[np.ndarray, float]:
        """Landmarks of the square ROI (centre, side, angle in radians CCW) mapped back to the image."""
        c, s = np.cos(angle), np.sin(angle)
        k = size / _INPUT
        # crop pixel (a, b) -> image: centre + k * Rot(angle) (a - 96, b - 96); image y runs down
        A = np.array([[k * c, k * s, 0.0], [-k * s, k * c, 0.0]])
        A[:, 2] = np.asarray(center) - A[:, :2] @ np.array([_INPUT / 2, _INPUT / 2])
        crop = cv2.warpAffine(rgb, cv2.invertAffineTransform(A), (_INPUT, _INPUT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        self.interp.set_tensor(self._in, (crop.astype(np.float32) / 255.0)[None])
        self.interp.invoke()
        raw = self.interp.get_tensor(self._pts).reshape(N_POINTS, 3).astype(np.float64)
        presence = float(1.0 / (1.0 + np.exp(-float(self.interp.get_tensor(self._flag).ravel()[0]))))
        xy = raw[:, :2] @ A[:, :2].T + A[:, 2]
        return np.column_stack([xy, -raw[:, 2] * k]), presence

    def __call__(self, image: np.ndarray, box=None) -> MeshPoints | None:
        if image is None or image.ndim not in (2, 3) or image.shape[0] < 16 or image.shape[1] < 16:
            raise UserError("face profiling needs an image of at least 16x16 pixels (BGR or grey)")
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        if box is None:  # a tight face crop: the face box is about the central 75 %
            x1, y1, x2, y2 = 0.125 * w, 0.125 * h, 0.875 * w, 0.875 * h
        else:
            x1, y1, x2, y2 = (float(v) for v in box)
        center, size, angle = np.array([(x1 + x2) / 2, (y1 + y2) / 2]), _SCALE * max(x2 - x1, y2 - y1), 0.0
        pts, presence = None, 0.0
        for _ in range(self.passes):
            pts, presence = self._run(rgb, center, size, angle)
            if presence < _MIN_PRESENCE:
                return None
            lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
            d = pts[_EYES[1], :2] - pts[_EYES[0], :2]
            angle = float(np.arctan2(-d[1], d[0]))  # rotate the crop so the eye line is level
            center = (lo + hi) / 2
            # the rotated landmark box, as MediaPipe measures it
            c, s = np.cos(angle), np.sin(angle)
            q = (pts[:, :2] - center) @ np.array([[c, -s], [s, c]]).T
            size = _SCALE * float(np.ptp(q, 0).max())
        return MeshPoints(points=pts, presence=presence)
