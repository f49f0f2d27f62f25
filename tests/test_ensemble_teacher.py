"""The robust teacher ensemble: validity by yaw, outlier trimming, disagreement as a training weight."""
from __future__ import annotations

import numpy as np
import torch

from edgepose import geometry
from edgepose.distill.teacher import agreement_weight, chordal_mean, robust_rotation_mean
from edgepose.losses import geodesic_loss


def _perturb(R: np.ndarray, deg: float, rng) -> np.ndarray:
    return R @ geometry.euler_to_matrix(rng.normal(0.0, deg, (len(R), 3)))


def _poses(n: int, rng) -> np.ndarray:
    return geometry.euler_to_matrix(np.column_stack([rng.uniform(-40, 40, n), rng.uniform(-70, 70, n),
                                                     rng.uniform(-30, 30, n)]))


def test_one_wrong_member_is_left_out_and_the_plain_mean_is_not():
    rng = np.random.default_rng(1)
    truth = _poses(64, rng)
    wrong = truth @ geometry.euler_to_matrix(np.tile([[35.0, 0.0, 20.0]], (64, 1)))  # a teacher off by ~40 deg
    Rs = torch.from_numpy(np.stack([_perturb(truth, 1.0, rng), _perturb(truth, 1.0, rng), wrong]))
    R, spread, w = robust_rotation_mean(Rs)
    robust = geometry.geodesic_distance(R.numpy(), truth)
    plain = geometry.geodesic_distance(chordal_mean(Rs).numpy(), truth)
    assert robust.max() < 4.0, robust.max()
    assert plain.min() > 8.0  # what trimming saves: the plain mean is dragged a third of the way
    assert (w[2] == 0).all() and (w[:2] == 1).all()
    assert (spread < 4.0).all()  # the two kept members agree


def test_agreeing_members_are_all_kept_and_the_mean_is_their_chordal_mean():
    rng = np.random.default_rng(2)
    truth = _poses(32, rng)
    Rs = torch.from_numpy(np.stack([_perturb(truth, 2.0, rng) for _ in range(3)]))
    R, spread, w = robust_rotation_mean(Rs)
    assert (w == 1).all()
    np.testing.assert_allclose(R.numpy(), chordal_mean(Rs).numpy(), atol=1e-9)
    assert geometry.is_rotation(R.numpy()).all()
    assert np.isfinite(spread.numpy()).all()


def test_members_fade_out_beyond_their_valid_yaw():
    rng = np.random.default_rng(3)
    far = geometry.euler_to_matrix(np.column_stack([np.zeros(8), np.full(8, 120.0), np.zeros(8)]))
    near = geometry.euler_to_matrix(np.column_stack([np.zeros(8), np.full(8, 20.0), np.zeros(8)]))
    truth = np.concatenate([far, near])
    # member 0 is valid everywhere (WHENet), member 1 only to |yaw| 90 and reads the far faces wrongly
    m1 = truth.copy()
    m1[:8] = _perturb(far, 1.0, rng) @ geometry.euler_to_matrix(np.tile([[0.0, -50.0, 0.0]], (8, 1)))
    Rs = torch.from_numpy(np.stack([truth, m1]))
    R, spread, w = robust_rotation_mean(Rs, [None, 90.0])
    assert (w[1, :8] == 0).all() and (w[1, 8:] == 1).all()
    assert geometry.geodesic_distance(R.numpy(), truth).max() < 1e-6
    assert torch.isnan(spread[:8]).all()  # one member: nothing to cross-check


def test_agreement_weight_halves_at_eight_degrees_and_single_teachers_count_half():
    w = agreement_weight(np.array([0.0, 8.0, 30.0, np.nan]))
    np.testing.assert_allclose(w[:2], [1.0, 0.5], atol=1e-6)
    assert 0 < w[2] < 0.1 and w[3] == 0.5


def test_weighted_geodesic_loss_ignores_zero_weight_samples():
    R = torch.eye(3).repeat(2, 1, 1)
    bad = torch.from_numpy(geometry.euler_to_matrix(np.array([[0.0, 90.0, 0.0]]))).float()
    pred = torch.cat([R[:1], bad])
    assert float(geodesic_loss(pred, R, torch.tensor([1.0, 0.0]))) < 1e-3
    assert float(geodesic_loss(pred, R, torch.tensor([1.0, 1.0]))) > 0.7
