"""Metrics on hand-made cases: known errors, flipped heads, constant offsets."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import geometry, metrics


def _labels(n=20, seed=0, limit=60.0):
    rng = np.random.default_rng(seed)
    e = rng.uniform(-limit, limit, size=(n, 3))
    return e, geometry.euler_to_matrix(e)


def test_perfect_prediction_is_zero():
    _, R = _labels()
    m = metrics.pose_metrics(R, R)
    for key in ("mae", "ge", "maev", "wrapped_mae", "two_solution_mae", "aligned_ge"):
        assert m[key] == pytest.approx(0.0, abs=1e-5), key
    assert m["n"] == 20


def test_known_10deg_yaw_error():
    e = np.array([[5.0, 20.0, -3.0], [-10.0, -40.0, 0.0], [0.0, 0.0, 0.0]])
    pred = e + [0.0, 10.0, 0.0]
    m = metrics.pose_metrics(geometry.euler_to_matrix(pred), geometry.euler_to_matrix(e), aligned=False)
    assert m["mae_yaw"] == pytest.approx(10.0, abs=1e-6)
    assert m["mae_pitch"] == pytest.approx(0.0, abs=1e-6)
    assert m["mae_roll"] == pytest.approx(0.0, abs=1e-6)
    assert m["mae"] == pytest.approx(10.0 / 3, abs=1e-6)
    # a pure yaw change is a rotation by 10 deg about the head's y axis, before the roll
    assert m["ge"] == pytest.approx(10.0, abs=1e-6)
    assert m["wrapped_mae"] == pytest.approx(10.0 / 3, abs=1e-6)
    assert m["two_solution_mae"] == pytest.approx(10.0 / 3, abs=1e-6)


def test_vector_errors_are_row_angles():
    # rotation about the head's own y axis (yaw with p = r = 0): x and z rows move by 10 deg, y stays
    R_gt = geometry.euler_to_matrix([[0.0, 0.0, 0.0]])
    R_pred = geometry.euler_to_matrix([[0.0, 10.0, 0.0]])
    v = metrics.vector_errors(R_pred, R_gt)[0]
    np.testing.assert_allclose(v, [10.0, 0.0, 10.0], atol=1e-6)
    m = metrics.pose_metrics(R_pred, R_gt, aligned=False)
    assert m["maev"] == pytest.approx(20.0 / 3, abs=1e-6)


def test_flipped_prediction_is_not_hidden():
    # the back of the head: yaw rotated by 180 deg.  The 6DRepNet "+-180" trick would score it 0.
    e = np.array([[0.0, 10.0, 0.0], [20.0, -30.0, 5.0]])
    R_gt = geometry.euler_to_matrix(e)
    R_pred = R_gt @ geometry.rot_y(np.radians(180.0))[None]
    m = metrics.pose_metrics(R_pred, R_gt, aligned=False)
    assert m["ge"] == pytest.approx(180.0, abs=1e-4)
    assert m["maev"] > 100.0
    assert m["wrapped_mae"] > 50.0
    assert m["two_solution_mae"] > 50.0
    assert m["mae"] > 50.0


def test_two_solution_picks_the_equivalent_triple():
    # full-range label (yaw 143.2) and a perfect prediction decoded to the other triple
    e_gt = np.array([[11.5, 143.2, 5.7]])
    R = geometry.euler_to_matrix(e_gt)
    e_pred = geometry.matrix_to_euler(R)  # |yaw| <= 90: (-168.5, 36.8, -174.3)
    assert abs(e_pred[0, 1]) <= 90.0
    assert metrics.wrapped_errors(e_pred, e_gt).mean() > 100.0
    assert metrics.two_solution_errors(e_pred, e_gt).mean() == pytest.approx(0.0, abs=1e-6)
    m = metrics.pose_metrics(R, R, euler_gt=e_gt, aligned=False)
    assert m["two_solution_mae"] == pytest.approx(0.0, abs=1e-6)
    assert m["ge"] == pytest.approx(0.0, abs=1e-5)


def test_wrapped_error_across_180():
    e_pred = np.array([[0.0, 179.0, 0.0]])
    e_gt = np.array([[0.0, -179.0, 0.0]])
    np.testing.assert_allclose(metrics.wrapped_errors(e_pred, e_gt)[0], [0.0, 2.0, 0.0], atol=1e-9)


def test_alignment_removes_constant_offset_exactly():
    _, R_gt = _labels(50, seed=3)
    D = geometry.euler_to_matrix([[7.0, -12.0, 4.0]])[0]
    R_pred = D[None] @ R_gt
    m = metrics.pose_metrics(R_pred, R_gt)
    assert m["ge"] > 10.0
    assert m["aligned_ge"] == pytest.approx(0.0, abs=1e-6)
    assert m["aligned_mae"] == pytest.approx(0.0, abs=1e-5)
    _, D_est = metrics.align_predictions(R_pred, R_gt)
    np.testing.assert_allclose(D_est, D, atol=1e-8)


def test_alignment_keeps_random_errors():
    # zero-mean noise has no offset to remove: aligned GE stays close to GE
    _, R_gt = _labels(200, seed=4)
    rng = np.random.default_rng(5)
    noise = geometry.euler_to_matrix(rng.normal(0, 5, size=(200, 3)))
    R_pred = noise @ R_gt
    m = metrics.pose_metrics(R_pred, R_gt)
    assert m["ge"] > 3.0
    assert m["aligned_ge"] == pytest.approx(m["ge"], rel=0.15)


def test_karcher_mean_of_symmetric_set():
    base = geometry.euler_to_matrix([[10.0, 20.0, 30.0]])[0]
    offsets = geometry.euler_to_matrix([[0, 15, 0], [0, -15, 0], [15, 0, 0], [-15, 0, 0]])
    M = metrics.karcher_mean(base[None] @ offsets)
    assert geometry.geodesic_distance(M, base) < 1e-6


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(N, 3, 3\)"):
        metrics.geodesic_errors(np.zeros((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="no samples"):
        metrics.pose_metrics(np.zeros((0, 3, 3)), np.zeros((0, 3, 3)))
    with pytest.raises(ValueError, match="differ"):
        metrics.pose_metrics(np.eye(3)[None].repeat(2, 0), np.eye(3)[None])
