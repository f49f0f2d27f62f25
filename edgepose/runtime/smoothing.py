"""One Euro filtering of head pose on SO(3), driven by frame timestamps.

One Euro filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass filter whose cutoff rises with
the signal's speed, so jitter at rest is removed while fast head turns lag little.  With
T_e = t_i - t_{i-1} from the buffer timestamps (variable frame rates are handled exactly):

    alpha(f_c) = 1 / (1 + tau / T_e),  tau = 1 / (2 pi f_c)
    dx_i  = (x_i - x^_{i-1}) / T_e;  dx^_i = alpha(d_cutoff) dx_i + (1 - alpha(d_cutoff)) dx^_{i-1}
    f_c   = min_cutoff + beta * |dx^_i|
    x^_i  = alpha(f_c) x_i + (1 - alpha(f_c)) x^_{i-1}

Rotations are filtered as unit quaternions (w, x, y, z): each new quaternion is first put in
the hemisphere of the previous output (q and -q are the same rotation; without this a sign
flip would be "smoothed" through a 180-degree swing), the four components are filtered, and the
result is renormalised.  |dq/dt| is about half the angular speed in rad/s, which sets the scale
of ``beta``.  Euler angles are never filtered (their +-180 wrap and gimbal lock would break it).
"""
from __future__ import annotations

import math

import numpy as np

from .. import geometry

__all__ = ["OneEuroFilter", "QuaternionOneEuroFilter", "PoseSmoother"]


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Vector One Euro filter; ``__call__(x, t_seconds) -> filtered x``.

    ``reset_after`` (seconds): a gap longer than this (face lost, dropped frames) restarts the
    filter instead of smoothing across it.  A timestamp that does not increase returns the
    previous output unchanged (duplicate buffers must not divide by zero).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
                 reset_after: float | None = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset_after = reset_after
        self.reset()

    def reset(self) -> None:
        self.x_prev: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None
        self.t_prev: float | None = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x_prev is not None and self.reset_after is not None and t - self.t_prev > self.reset_after:
            self.reset()
        if self.x_prev is None:
            self.x_prev, self.dx_prev, self.t_prev = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t_prev
        if dt <= 0:
            return self.x_prev.copy()
        dx = (x - self.x_prev) / dt
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1.0 - a_d) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * float(np.linalg.norm(dx_hat))
        a = _alpha(cutoff, dt)
        x_hat = a * x + (1.0 - a) * self.x_prev
        self.x_prev, self.dx_prev, self.t_prev = x_hat, dx_hat, float(t)
        return x_hat.copy()


class QuaternionOneEuroFilter:
    """One Euro on SO(3): rotation matrix in, smoothed rotation matrix out."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 5.0, d_cutoff: float = 1.0,
                 reset_after: float | None = 1.0):
        self.filter = OneEuroFilter(min_cutoff, beta, d_cutoff, reset_after)

    def reset(self) -> None:
        self.filter.reset()

    def filter_quat(self, q, t: float) -> np.ndarray:
        q = np.asarray(q, np.float64)
        q = q / np.linalg.norm(q)
        prev = self.filter.x_prev
        if prev is not None and float(np.dot(q, prev)) < 0.0:
            q = -q  # same rotation, hemisphere of the previous output
        out = self.filter(q, t)
        return out / np.linalg.norm(out)

    def __call__(self, R, t: float) -> np.ndarray:
        q = geometry.matrix_to_quat(np.asarray(R, np.float64))
        return geometry.quat_to_matrix(self.filter_quat(q, t))


class PoseSmoother:
    """One filter per track id; filters of vanished tracks are dropped by :meth:`retain`."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 5.0, d_cutoff: float = 1.0,
                 reset_after: float | None = 1.0):
        self.params = dict(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, reset_after=reset_after)
        self.filters: dict[int, QuaternionOneEuroFilter] = {}

    def __call__(self, track_id: int, R, t: float) -> np.ndarray:
        f = self.filters.get(track_id)
        if f is None:
            f = self.filters[track_id] = QuaternionOneEuroFilter(**self.params)
        return f(R, t)

    def retain(self, track_ids) -> None:
        keep = set(track_ids)
        for k in [k for k in self.filters if k not in keep]:
            del self.filters[k]
