"""Teacher methods: hand-checked losses, sampling rules, label transforms, and each method's
training step end to end through edgepose-train (tiny budgets)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgepose import geometry
from edgepose.config import ConfigError
from edgepose.methods.losses import circle_loss, clerf_masks, diff_loss, dwa_weights, info_nce
from edgepose.methods.ssl import jigsaw_batch, jigsaw_permutations, rotation_batch


# ------------------------------------------------------------------ losses on hand-made inputs

def test_circle_loss_matches_formula_on_hand_set_similarities():
    m, g = 0.25, 2.0
    sim = torch.tensor([[1.0, 0.8, 0.1, -0.3]])
    pos = torch.tensor([[False, True, False, False]])
    neg = torch.tensor([[False, False, True, True]])
    sp, sn = 0.8, [0.1, -0.3]
    ap = 1 + m - sp
    an = [max(s + m, 0.0) for s in sn]
    want = math.log(1 + sum(math.exp(g * a * (s - m)) for a, s in zip(an, sn)) * math.exp(-g * ap * (sp - (1 - m))))
    assert circle_loss(sim, pos, neg, m, g).item() == pytest.approx(want, rel=1e-5)


def test_circle_loss_orders_easy_and_hard_and_skips_anchors_without_pairs():
    pos = torch.tensor([[False, True, False]])
    neg = torch.tensor([[False, False, True]])
    easy = circle_loss(torch.tensor([[1.0, 0.95, -0.5]]), pos, neg)
    hard = circle_loss(torch.tensor([[1.0, 0.2, 0.7]]), pos, neg)
    assert easy.item() < 0.1 < 1.0 < hard.item()
    none = circle_loss(torch.tensor([[1.0, 0.5, 0.5]], requires_grad=True), pos & False, neg)
    assert none.item() == 0.0 and none.requires_grad


def test_diff_loss_zero_for_orthogonal_features_positive_otherwise():
    # DiffLoss correlates feature dimensions over the batch: zero-mean batch columns u, v with u.v = 0
    u, v = torch.tensor([1.0, -1, 1, -1]), torch.tensor([1.0, 1, -1, -1])
    a, b = torch.zeros(4, 4), torch.zeros(4, 4)
    a[:, 0], b[:, 2] = u, v
    assert diff_loss(a, b).item() == pytest.approx(0.0, abs=1e-12)
    assert diff_loss(a, a).item() > 0.1


def test_diff_loss_row_norms_are_detached():
    a = torch.randn(6, 5, requires_grad=True)
    b = torch.randn(6, 5)
    diff_loss(a, b).backward()
    # with detached norms the loss is a quadratic form in the centred a: scaling a doubles... the
    # gradient is 2 * (A_hat B_hat^T-style) / norm; compare with the analytic expression
    ac, bc = a.detach() - a.detach().mean(0), b - b.mean(0)
    na, bn = ac.norm(dim=1, keepdim=True), bc / bc.norm(dim=1, keepdim=True)
    C = (ac / na).t() @ bn
    g = (bn @ (2 * C.t() / C.numel())) / na
    g = g - g.mean(0)
    assert torch.allclose(a.grad, g, atol=1e-5)


def test_info_nce_prefers_aligned_positive():
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0]]), dim=1)
    neg = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])
    good = info_nce(q, q.clone(), neg, 0.07)
    bad = info_nce(q, torch.tensor([[0.0, 1.0]]), neg, 0.07)
    assert good.item() < 1e-3 and bad.item() > 0.5


def test_dwa_weights():
    assert dwa_weights([[1.0, 1.0]]) == [1.0, 1.0]
    w = dwa_weights([[1.0, 1.0], [1.0, 0.5]], temperature=2.0)
    assert sum(w) == pytest.approx(2.0)
    want0 = 2 * math.exp(0.5) / (math.exp(0.5) + math.exp(0.25))
    assert w[0] == pytest.approx(want0) and w[0] > w[1]  # the task that improved less gets more weight


# ------------------------------------------------------------------ SSL transforms

def test_jigsaw_permutations_are_distinct_hamming_distant_and_deterministic():
    p = jigsaw_permutations(30)
    assert p.shape == (30, 9)
    assert all(sorted(r) == list(range(9)) for r in p.tolist())
    assert len({tuple(r) for r in p.tolist()}) == 30
    d = (p[:, None, :] != p[None]).sum(-1)
    assert d[~np.eye(30, dtype=bool)].min() >= 6
    assert np.array_equal(p, jigsaw_permutations(30))


def test_jigsaw_batch_places_tiles_by_permutation():
    perms = jigsaw_permutations(30)
    x = torch.arange(9.0).repeat_interleave(2).reshape(1, 1, 1, 18).expand(1, 1, 18, 18).clone()
    x = torch.zeros(1, 1, 6, 6)
    for i in range(9):
        r, c = divmod(i, 3)
        x[0, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = i
    out, lab = jigsaw_batch(x, perms, torch.Generator().manual_seed(0))
    perm = perms[int(lab[0])]
    for i in range(9):
        r, c = divmod(i, 3)
        assert torch.all(out[0, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] == float(perm[i]))


def test_rotation_labels_match_ccw_crop_rotation():
    from edgepose.preprocess import PreprocessSpec, crop_image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    from edgepose.preprocess import CropPolicy

    spec = PreprocessSpec(input_size=32, crop=CropPolicy(scale=1.0))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    xr, labels = rotation_batch(x)
    assert labels.tolist() == [0, 1, 2, 3]
    for k in range(4):
        ref = crop_image(img, (0, 0, 32, 32), spec, angle_deg=90.0 * k)
        got = xr[k].permute(1, 2, 0).numpy()
        assert np.abs(got[2:-2, 2:-2] - ref[2:-2, 2:-2]).mean() < 2.0, k


# ------------------------------------------------------------------ CLERF sampling rules

def test_clerf_masks_threshold_rule():
    R = torch.tensor(np.stack([np.eye(3), np.eye(3), geometry.euler_to_matrix([0, 10, 0]),
                               geometry.euler_to_matrix([0, 40, 0])]), dtype=torch.float32)
    pos, neg = clerf_masks(R, delta_deg=15.0, pos_deg=1.0)
    assert pos[0].tolist() == [False, True, False, False]  # same pose, self excluded
    assert neg[0].tolist() == [False, False, False, True]  # 10 deg: ignored; 40 deg: negative
    assert torch.equal(pos, pos.t()) and torch.equal(neg, neg.t())


def test_mirror_and_geometric_augment_labels_match_geometry():
    from edgepose.methods.data import GeometricAugment, mirror_as_rotate_flip

    R = geometry.random_rotations(4, np.random.default_rng(1))
    for phi in (0.0, 33.0, 90.0, 151.0):
        a, f = mirror_as_rotate_flip(phi)
        np.testing.assert_allclose(geometry.flip_label(geometry.rotate_label(R, a)), geometry.mirror_label(R, phi),
                                   atol=1e-12)
    g = GeometricAugment(rotate_p=1.0, rotate_deg=180.0, flip_p=0.5, mirror_p=0.3)
    rng = np.random.default_rng(0)
    angles = [g.sample(rng)[0] for _ in range(400)]
    assert min(angles) < -150 and max(angles) > 150  # upside-down included
    with pytest.raises(Exception, match="probability"):
        GeometricAugment(flip_p=1.5)


def test_label_transforms_preserve_geodesic_distance():
    rng = np.random.default_rng(2)
    A, B = geometry.random_rotations(20, rng), geometry.random_rotations(20, rng)
    d0 = geometry.geodesic_distance(A, B)
    for angle, flip in ((37.0, False), (180.0, True), (-120.0, True)):
        tA, tB = geometry.rotate_label(A, angle), geometry.rotate_label(B, angle)
        if flip:
            tA, tB = geometry.flip_label(tA), geometry.flip_label(tB)
        np.testing.assert_allclose(geometry.geodesic_distance(tA, tB), d0, atol=1e-6)
