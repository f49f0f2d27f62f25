"""Losses on hand-made inputs: geodesic, LDL targets/KL, HopeNet CE + MSE, PoseLoss wiring and errors."""
from __future__ import annotations

import math

import pytest
import torch

from edgepose.config import ConfigError, load_config
from edgepose.errors import ModelError, UserError
from edgepose.geometry_torch import euler_to_matrix
from edgepose.losses import (LossConfig, PoseLoss, angle_error, geodesic_loss, hopenet_loss, ldl_loss, ldl_target,
                             sigma_in_degrees)
from edgepose.metadata import BinSpec
from edgepose.models import create_model
from edgepose.models.heads import bin_centers

OPEN = BinSpec(-99.0, 99.0, 3.0, False)
WRAP = BinSpec(-180.0, 180.0, 3.0, True)


def test_geodesic_of_known_rotations():
    I = torch.eye(3).expand(2, 3, 3)
    R90 = euler_to_matrix(torch.tensor([[0.0, 90.0, 0.0], [90.0, 0.0, 0.0]]))
    assert geodesic_loss(R90, I).item() == pytest.approx(math.pi / 2, abs=1e-5)
    assert geodesic_loss(I, I).item() < 1e-3  # clamped: acos(1 - 1e-7) ~ 4.5e-4, never NaN
    R30 = euler_to_matrix(torch.tensor([[0.0, 0.0, 30.0]]))
    assert geodesic_loss(R30, torch.eye(3)[None]).item() == pytest.approx(math.radians(30), abs=1e-5)


def test_geodesic_gradient_finite_at_identity_and_pi():
    for angle in (0.0, 180.0):
        e = torch.tensor([[0.0, angle, 0.0]], requires_grad=True)
        geodesic_loss(euler_to_matrix(e), torch.eye(3)[None]).backward()
        assert torch.isfinite(e.grad).all()


def test_ldl_target_is_a_distribution_peaked_at_the_right_bin():
    y = torch.tensor([0.0, 10.0, -50.2, 98.0])
    t = ldl_target(y, OPEN, sigma_deg=6.0)
    assert t.shape == (4, 66)
    assert torch.allclose(t.sum(-1), torch.ones(4))
    c = bin_centers(OPEN)
    nearest = (c[None] - y[:, None]).abs().argmin(-1)
    assert torch.equal(t.argmax(-1), nearest)
    # symmetric around the label when the label is a bin centre
    t0 = ldl_target(torch.tensor([1.5]), OPEN, 6.0)[0]
    k = int(nearest[0]) + 1  # bin centred on 1.5
    assert torch.allclose(t0[k - 3:k], t0[k + 1:k + 4].flip(0), atol=1e-6)


def test_ldl_target_wraps_around_180():
    t = ldl_target(torch.tensor([179.0]), WRAP, sigma_deg=6.0)[0]
    assert t.argmax().item() == 119  # centre 178.5
    # mass continues on the other side of the seam: the bin at -178.5 equals the one at 175.5
    # (both 2.5 deg from 179 after wrapping, vs 3.5 for 175.5 -> compare distances explicitly)
    c = bin_centers(WRAP)
    d = (c - 179.0 + 180) % 360 - 180
    expected = torch.softmax(-(d ** 2) / 72.0, 0)
    assert torch.allclose(t, expected, atol=1e-7)
    assert t[0] > t[116]  # -178.5 (2.5 deg away through the seam) beats 169.5 (9.5 deg away)
    # an open axis does not wrap: the same label puts nothing on the far end
    t_open = ldl_target(torch.tensor([97.0]), OPEN, 6.0)[0]
    assert t_open[0] < 1e-20


def test_ldl_kl_is_zero_for_a_perfect_prediction():
    y = torch.tensor([12.3, -40.0])
    t = ldl_target(y, OPEN, 6.0)
    perfect = torch.log(t)
    assert ldl_loss(perfect, y, OPEN, 6.0, lam=0.0).item() == pytest.approx(0.0, abs=1e-6)
    worse = perfect.roll(5, dims=-1)
    assert ldl_loss(worse, y, OPEN, 6.0, lam=0.0).item() > 0.1


def test_ldl_expectation_term_l1_vs_mse_and_wrapping():
    y = torch.tensor([179.0])
    logits = torch.full((1, 120), -1e4)
    logits[0, 1] = 0.0  # predicts -175.5: 5.5 deg away through the seam, not 354.5
    kl_only = ldl_loss(logits, y, WRAP, 6.0, lam=0.0)
    l1 = ldl_loss(logits, y, WRAP, 6.0, lam=1.0, reg="l1") - kl_only
    mse = ldl_loss(logits, y, WRAP, 6.0, lam=1.0, reg="mse") - kl_only
    assert l1.item() == pytest.approx(5.5, abs=1e-3)
    assert mse.item() == pytest.approx(5.5 ** 2, rel=1e-3)


def test_hopenet_loss_hand_computed_three_bins():
    spec = BinSpec(-3.0, 6.0, 3.0, False)  # centres -1.5, 1.5, 4.5
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    y = torch.tensor([2.0])  # bin 1
    p = torch.softmax(logits, -1)[0]
    ce = -math.log(p[1].item())
    expectation = (p * torch.tensor([-1.5, 1.5, 4.5])).sum().item()
    expected = ce + 2.0 * (expectation - 2.0) ** 2
    assert hopenet_loss(logits, y, spec, alpha=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert hopenet_loss(logits, y, spec, alpha=0.0).item() == pytest.approx(ce, rel=1e-6)


def test_angle_error_wraps_only_wrapped_axes():
    a, b = torch.tensor([179.0]), torch.tensor([-179.0])
    assert angle_error(a, b, WRAP).item() == pytest.approx(-2.0)
    assert angle_error(a, b, OPEN).item() == pytest.approx(358.0)


def test_sigma_units():
    assert sigma_in_degrees(OPEN, 2.0, "bins") == 6.0
    assert sigma_in_degrees(OPEN, 2.0, "deg") == 2.0


@pytest.mark.parametrize("cfg", [LossConfig(), LossConfig(geodesic=1.0, ldl=1.0), LossConfig(geodesic=0.0, hopenet=1.0),
                                 LossConfig(geodesic=0.5, ldl=1.0, hopenet=0.5, ldl_reg="mse", ldl_sigma_unit="deg")])
def test_pose_loss_gradients_finite_at_identity(cfg):
    torch.manual_seed(0)
    head = "6d" if not cfg.needs_bins else "6d+bins"
    m = create_model("mobilenetv3_small", head=head, input_size=64, bins={"yaw": WRAP})
    loss_fn = PoseLoss(cfg, m.bins)
    out = m(torch.randn(2, 3, 64, 64))
    total, parts = loss_fn(out, torch.eye(3).expand(2, 3, 3), torch.zeros(2, 3))
    total.backward()
    assert torch.isfinite(total)
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert parts["total"].item() == pytest.approx(total.item())
    weighted = (cfg.geodesic * parts.get("geodesic", 0)
                + cfg.ldl * sum(v for k, v in parts.items() if k.startswith("ldl_"))
                + cfg.hopenet * sum(v for k, v in parts.items() if k.startswith("hopenet_")))
    assert float(weighted) == pytest.approx(total.item(), rel=1e-5)
    assert not any(v.requires_grad for v in parts.values())


def test_pose_loss_is_zero_ish_for_exact_6d_prediction():
    R = euler_to_matrix(torch.tensor([[10.0, -20.0, 5.0]]))
    total, parts = PoseLoss(LossConfig())({"R": R}, R)
    assert total.item() < 1e-3


def test_pose_loss_falls_back_to_euler_from_R():
    m = create_model("mobilenetv3_small", head="bins", input_size=64)
    out = m(torch.randn(1, 3, 64, 64))
    e = torch.tensor([[10.0, -20.0, 5.0]])
    cfg = LossConfig(geodesic=0.0, hopenet=1.0)
    a, _ = PoseLoss(cfg, m.bins)(out, euler_to_matrix(e), e)
    b, _ = PoseLoss(cfg, m.bins)(out, euler_to_matrix(e))
    assert a.item() == pytest.approx(b.item(), rel=1e-4)


def test_pose_loss_errors():
    with pytest.raises(ModelError, match="binned head"):
        PoseLoss(LossConfig(ldl=1.0))
    m = create_model("mobilenetv3_small", head="6d", input_size=64)
    fake_bins = create_model("mobilenetv3_small", head="bins", input_size=64).bins
    with pytest.raises(ModelError, match="no bin logits"):
        PoseLoss(LossConfig(hopenet=1.0), fake_bins)(m(torch.randn(1, 3, 64, 64)), torch.eye(3)[None])


@pytest.mark.parametrize("bad", [dict(ldl=-1.0), dict(ldl_sigma=0.0), dict(ldl_sigma_unit="rad"), dict(ldl_reg="huber"),
                                 dict(geodesic=0.0)])
def test_loss_config_validation(bad):
    with pytest.raises(ConfigError) as exc:
        LossConfig(**bad)
    assert isinstance(exc.value, UserError)  # shown as one line by the CLI


def test_loss_config_from_yaml_and_overrides(tmp_path):
    p = tmp_path / "loss.yaml"
    p.write_text("ldl: 1.0\nldl_sigma: 1.5\n")
    cfg = load_config(LossConfig, p, ["hopenet_alpha=2", "ldl_reg=mse"])
    assert cfg.ldl == 1.0 and cfg.ldl_sigma == 1.5 and cfg.hopenet_alpha == 2.0 and cfg.ldl_reg == "mse"
    with pytest.raises(ConfigError):
        load_config(LossConfig, p, ["ldl_sgima=2"])
