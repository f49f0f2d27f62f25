"""Head-pose error metrics (docs/evaluation.md, "Metrics"), numpy only.

Every function takes batches: rotation matrices ``(N, 3, 3)`` in the canonical convention of
:mod:`edgepose.geometry`, Euler arrays ``(N, 3)`` ordered (pitch, yaw, roll) in degrees.

* **Euler MAE** (paper protocol): plain ``|delta|`` of the decoded angles, per axis and mean.
  For comparison tables only; it is what the papers report on ±99° test sets.
* **Geodesic error (GE)**: the angle of ``R_pred R_gt^T`` -- the primary metric.
* **MAEV**: angle between corresponding ROWS of R (head x / y / z axis), Vec1..3 and their mean.
* **Wrapped MAE**: ``min(|d|, 360 - |d|)`` per angle (full-range yaw).
* **Two-solution MAE**: per prediction, the Euler triple (of its two) closer to the label, then
  wrapped MAE.  Candidates ``d ± 180`` are never used: they hide flipped predictions.
* **Aligned** GE / MAE: remove the Karcher mean of ``R_pred R_gt^T`` (a constant frame offset)
  before measuring, a diagnostic for cross-dataset frame differences.
"""
from __future__ import annotations

import numpy as np

from . import geometry

__all__ = [
    "euler_abs_errors", "euler_mae", "geodesic_errors", "vector_errors", "wrapped_errors",
    "two_solution_errors", "karcher_mean", "align_predictions", "pose_metrics", "METRIC_LABELS",
]

AXES = ("pitch", "yaw", "roll")

#: metric key -> short column title, in the order tables print them.
METRIC_LABELS: dict[str, str] = {
    "mae_pitch": "P", "mae_yaw": "Y", "mae_roll": "R", "mae": "MAE",
    "ge": "GE", "maev": "MAEV", "wrapped_mae": "wMAE", "two_solution_mae": "2solMAE",
    "aligned_ge": "aGE",
}


def _rotations(R, name: str) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim == 2:
        R = R[None]
    if R.ndim != 3 or R.shape[1:] != (3, 3):
        raise ValueError(f"{name} must have shape (N, 3, 3), got {R.shape}")
    return R


def _eulers(e, name: str) -> np.ndarray:
    e = np.asarray(e, dtype=np.float64)
    if e.ndim == 1:
        e = e[None]
    if e.ndim != 2 or e.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) ordered (pitch, yaw, roll), got {e.shape}")
    return e


def euler_abs_errors(R_pred, R_gt=None, *, euler_gt=None) -> np.ndarray:
    """(N, 3) ``|delta|`` per axis between the decoded Euler angles (paper protocol, no wrapping).

    ``euler_gt`` overrides the decoded label (e.g. a dataset's own Euler triple).
    """
    e_pred = geometry.matrix_to_euler(_rotations(R_pred, "R_pred"))
    e_gt = _eulers(euler_gt, "euler_gt") if euler_gt is not None else geometry.matrix_to_euler(_rotations(R_gt, "R_gt"))
    return np.abs(e_pred - e_gt)


def euler_mae(R_pred, R_gt=None, *, euler_gt=None) -> dict[str, float]:
    """Per-axis and mean Euler MAE in degrees (paper protocol)."""
    err = euler_abs_errors(R_pred, R_gt, euler_gt=euler_gt)
    per_axis = err.mean(0)
    out = {f"mae_{a}": float(v) for a, v in zip(AXES, per_axis)}
    out["mae"] = float(per_axis.mean())
    return out


def geodesic_errors(R_pred, R_gt) -> np.ndarray:
    """(N,) geodesic angle in degrees between prediction and label."""
    return geometry.geodesic_distance(_rotations(R_pred, "R_pred"), _rotations(R_gt, "R_gt"))


def vector_errors(R_pred, R_gt) -> np.ndarray:
    """(N, 3) angle in degrees between corresponding rows of R (head x, y, z axes)."""
    A, B = _rotations(R_pred, "R_pred"), _rotations(R_gt, "R_gt")
    # normalise rows: predictions from low-precision engines are only approximately orthonormal
    A = A / np.linalg.norm(A, axis=-1, keepdims=True)
    B = B / np.linalg.norm(B, axis=-1, keepdims=True)
    cos = np.clip(np.einsum("nij,nij->ni", A, B), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def wrapped_errors(e_pred, e_gt) -> np.ndarray:
    """(N, 3) ``min(|d|, 360 - |d|)`` per angle; inputs are Euler triples in degrees."""
    d = np.abs(geometry.angle_diff(_eulers(e_pred, "e_pred"), _eulers(e_gt, "e_gt")))
    return np.minimum(d, 360.0 - d)


def two_solution_errors(e_pred, e_gt) -> np.ndarray:
    """(N, 3) wrapped errors of whichever of the prediction's two Euler triples is closer.

    Both triples describe the same matrix, so this removes only the decode ambiguity of
    full-range poses; it never compares with ``d ± 180`` and so cannot hide a flipped head.
    """
    e_pred, e_gt = _eulers(e_pred, "e_pred"), _eulers(e_gt, "e_gt")
    first = wrapped_errors(e_pred, e_gt)
    second = wrapped_errors(geometry.alternative_euler(e_pred), e_gt)
    use_second = second.mean(1) < first.mean(1)
    return np.where(use_second[:, None], second, first)


def _log_so3(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def _exp_so3(v: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(v).as_matrix()


def karcher_mean(Rs, iters: int = 50, tol: float = 1e-10) -> np.ndarray:
    """Riemannian (Karcher) mean of rotations ``(N, 3, 3)`` by Gauss-Newton on SO(3).

    Starts from the chordal mean (SVD projection of the arithmetic mean), which is already
    close for any set with a well-defined mean, then iterates ``M <- M exp(mean log(M^T R_i))``.
    """
    Rs = _rotations(Rs, "Rs")
    U, _, Vt = np.linalg.svd(Rs.mean(0))
    M = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    for _ in range(iters):
        step = _log_so3(np.swapaxes(M, -1, -2)[None] @ Rs).mean(0)
        M = M @ _exp_so3(step)
        if np.linalg.norm(step) < tol:
            break
    return M


def align_predictions(R_pred, R_gt) -> tuple[np.ndarray, np.ndarray]:
    """Remove the mean offset: ``D = karcher_mean(R_pred R_gt^T)``, ``R_pred' = D^T R_pred``.

    Returns ``(aligned predictions, D)``.  A prediction set with a constant offset
    ``R_pred = D R_gt`` is mapped back onto the labels exactly.
    """
    P, G = _rotations(R_pred, "R_pred"), _rotations(R_gt, "R_gt")
    D = karcher_mean(P @ np.swapaxes(G, -1, -2))
    return D.T[None] @ P, D


def pose_metrics(R_pred, R_gt, *, euler_gt=None, aligned: bool = True) -> dict[str, float]:
    """All metrics as a flat ``{name: float}`` dict (degrees); ``n`` is the sample count.

    ``euler_gt``: the dataset's own Euler labels when they carry more than R does (full-range
    yaw beyond ±90 deg); by default the label is decoded from ``R_gt``.
    """
    P, G = _rotations(R_pred, "R_pred"), _rotations(R_gt, "R_gt")
    if P.shape != G.shape:
        raise ValueError(f"R_pred {P.shape} and R_gt {G.shape} differ in shape")
    if len(P) == 0:
        raise ValueError("no samples to evaluate")
    e_gt = _eulers(euler_gt, "euler_gt") if euler_gt is not None else geometry.matrix_to_euler(G)
    e_pred = geometry.matrix_to_euler(P)
    out: dict[str, float] = {"n": int(len(P))}
    out.update(euler_mae(P, euler_gt=e_gt))
    out["ge"] = float(geodesic_errors(P, G).mean())
    vec = vector_errors(P, G).mean(0)
    out.update({f"vec{i + 1}": float(v) for i, v in enumerate(vec)})
    out["maev"] = float(vec.mean())
    wrapped = wrapped_errors(e_pred, e_gt).mean(0)
    out.update({f"wrapped_mae_{a}": float(v) for a, v in zip(AXES, wrapped)})
    out["wrapped_mae"] = float(wrapped.mean())
    out["two_solution_mae"] = float(two_solution_errors(e_pred, e_gt).mean())
    if aligned:
        P_al, D = align_predictions(P, G)
        out["aligned_ge"] = float(geodesic_errors(P_al, G).mean())
        out["aligned_mae"] = float(euler_mae(P_al, euler_gt=e_gt)["mae"])
        out["offset_deg"] = float(np.degrees(np.linalg.norm(_log_so3(D))))
    return out
