"""Torch versions of the geometry needed inside models, losses and exported graphs.

Conventions are defined in :mod:`edgepose.geometry`; every function here mirrors one
there and tests/test_geometry.py checks the two agree.  Kept separate so that the
numpy module (used by runtimes without torch) never imports torch.
"""
from __future__ import annotations

import math

import torch

__all__ = ["sixd_to_matrix", "matrix_to_euler", "euler_to_matrix", "geodesic", "flip_label", "rotate_label",
           "wrap_angle", "angle_diff", "mean_of_two_rotations", "nearest_rotation"]


def sixd_to_matrix(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(N, 6) -> (N, 3, 3) by Gram-Schmidt; columns are (a1/|a1|, z x x, x x a2 / |.|)."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    c0 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    c2 = torch.cross(c0, a2, dim=-1)
    c2 = c2 / c2.norm(dim=-1, keepdim=True).clamp_min(eps)
    c1 = torch.cross(c2, c0, dim=-1)
    return torch.stack([c0, c1, c2], dim=-1)


def matrix_to_euler(R: torch.Tensor, degrees: bool = True) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3) (pitch, yaw, roll), same decode and singular branch as numpy."""
    sy = torch.sqrt(R[..., 0, 0] ** 2 + R[..., 1, 0] ** 2)
    singular = sy < 1e-6
    pitch = torch.where(singular, torch.atan2(-R[..., 1, 2], R[..., 1, 1]), torch.atan2(R[..., 2, 1], R[..., 2, 2]))
    yaw = torch.atan2(-R[..., 2, 0], sy)
    roll = torch.where(singular, torch.zeros_like(sy), torch.atan2(R[..., 1, 0], R[..., 0, 0]))
    out = torch.stack([pitch, yaw, roll], dim=-1)
    return out * (180.0 / math.pi) if degrees else out


def _rx(a):
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([o, z, z], -1), torch.stack([z, c, -s], -1), torch.stack([z, s, c], -1)], -2)


def _ry(a):
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)


def _rz(a):
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def euler_to_matrix(pyr: torch.Tensor, degrees: bool = True) -> torch.Tensor:
    """(..., 3) (pitch, yaw, roll) -> R = Rz(roll) Ry(yaw) Rx(pitch)."""
    if degrees:
        pyr = pyr * (math.pi / 180.0)
    return _rz(pyr[..., 2]) @ _ry(pyr[..., 1]) @ _rx(pyr[..., 0])


def wrap_angle(a: torch.Tensor, degrees: bool = True) -> torch.Tensor:
    """Wrap to [-180, 180) degrees (or [-pi, pi) radians); mirrors geometry.wrap_angle."""
    half = 180.0 if degrees else math.pi
    return torch.remainder(a + half, 2 * half) - half


def angle_diff(a: torch.Tensor, b: torch.Tensor, degrees: bool = True) -> torch.Tensor:
    """Signed wrapped difference a - b in [-180, 180); mirrors geometry.angle_diff."""
    return wrap_angle(a - b, degrees)


def geodesic(A: torch.Tensor, B: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Geodesic angle in radians; the cosine is clamped away from +-1 so gradients stay finite."""
    tr = (A * B).sum(dim=(-1, -2))
    cos = ((tr - 1.0) / 2.0).clamp(-1.0 + eps, 1.0 - eps)
    return torch.acos(cos)


_F = torch.tensor([-1.0, 1.0, 1.0])


def flip_label(R: torch.Tensor) -> torch.Tensor:
    """Horizontal flip: R' = F R F."""
    f = _F.to(R)
    return R * f.view(3, 1) * f.view(1, 3)


def mean_of_two_rotations(A: torch.Tensor, B: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Chordal mean of two (..., 3, 3) rotations: the rotation nearest (A + B) / 2 in the Frobenius norm
    (for two rotations, the midpoint of the geodesic between them). The same mean as the SVD-based
    ``edgepose.distill.teacher.chordal_mean`` that makes the teacher's flip-TTA labels, written with
    matrix products only so that it exports to ONNX and TensorRT (neither has an SVD): Newton-Schulz
    polar iteration X <- X (3I - X^T X) / 2. Its slowest singular value starts at cos(angle / 2), so
    ``steps`` = 8 converges (to float precision) for rotations up to about 150 deg apart; a final
    Gram-Schmidt keeps the result a rotation for any input."""
    X = 0.5 * (A + B)
    eye3 = torch.eye(3, dtype=X.dtype, device=X.device)
    for _ in range(steps):
        X = 0.5 * (X @ (3.0 * eye3 - X.transpose(-1, -2) @ X))
    return sixd_to_matrix(torch.cat([X[..., :, 0], X[..., :, 1]], dim=-1))


def nearest_rotation(M: torch.Tensor, steps: int = 10, eps: float = 1e-12) -> torch.Tensor:
    """(..., 3, 3) scale x rotation (e.g. a weak-perspective camera's left 3x3) -> the nearest rotation
    (its polar factor, U V^T of its SVD), with matrix products only so that it exports to ONNX and
    TensorRT. M is first divided by its RMS singular value (Frobenius norm / sqrt 3), which puts every
    singular value in (0, sqrt 3) where the Newton-Schulz iteration of :func:`mean_of_two_rotations`
    converges (the chordal "mean" of a matrix with itself is its polar factor); for a near-uniform
    scale they start near 1 and a few steps reach float precision."""
    X = M / (M.square().sum(dim=(-1, -2), keepdim=True) / 3.0).sqrt().clamp_min(eps)
    return mean_of_two_rotations(X, X, steps)


def rotate_label(R: torch.Tensor, theta_deg: torch.Tensor) -> torch.Tensor:
    """Counter-clockwise on-screen image rotation by theta: R' = R Rz(-theta)."""
    return R @ _rz(-theta_deg * (math.pi / 180.0))
