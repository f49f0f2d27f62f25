"""Box consistency (edgepose.train.consistency): the jittered view is the crop through a moved/scaled box, and the
term measures the disagreement between a crop's and its jittered view's prediction."""
import torch

from edgepose.train.consistency import box_jittered, consistency_term, with_jittered_views


def _ramps(n: int = 8, size: int = 32) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32)
    return x.view(1, 1, 1, size).expand(n, 3, size, size).clone()  # value = column index


def test_no_jitter_is_the_identity():
    img = torch.randn(4, 3, 24, 24)
    assert torch.allclose(box_jittered(img, 0.0, 0.0), img, atol=1e-5)


def test_shift_moves_the_content_by_at_most_shift_px_and_differently_per_crop():
    img = _ramps()
    out = box_jittered(img, 2.0, 0.0, torch.Generator().manual_seed(0))
    offset = (out - img)[:, 0, 8:24, 8:24]  # interior: x + t for a ramp, t the shift in pixels
    per_crop = offset.mean(dim=(1, 2))
    assert torch.allclose(offset, per_crop.view(-1, 1, 1).expand_as(offset), atol=1e-4)  # a pure translation
    assert per_crop.abs().max() <= 2.0 + 1e-4
    assert per_crop.std() > 0.1  # random per crop, sub-pixel included


def test_scale_changes_the_slope_within_the_bound():
    img = _ramps()
    out = box_jittered(img, 0.0, 0.03, torch.Generator().manual_seed(1))
    slope = (out[:, 0, 16, 20] - out[:, 0, 16, 12]) / 8
    assert ((slope - 1).abs() <= 0.03 + 1e-4).all() and (slope - 1).abs().max() > 0.005


def test_views_are_appended_and_the_term_compares_them_with_their_originals():
    img = torch.randn(8, 3, 16, 16)
    joined, k = with_jittered_views(img, 0.25, 1.0, 0.02)
    assert k == 2 and joined.shape[0] == 10 and torch.equal(joined[:8], img)
    eye = torch.eye(3).expand(10, 3, 3).clone()
    assert float(consistency_term(eye, k)) < 1e-3
    turned = eye.clone()
    turned[-k:] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # 90 deg about z
    assert abs(float(consistency_term(turned, k)) - torch.pi / 2) < 1e-3


def test_original_target_leaves_the_supervised_prediction_alone():
    """consistency_target="original": the gradient reaches only the moved views' predictions; "both" moves both;
    an unknown target is a one-line config error."""
    import pytest

    from edgepose.config import ConfigError
    from edgepose.geometry import random_rotations

    R = torch.as_tensor(random_rotations(6, __import__("numpy").random.default_rng(0)), dtype=torch.float32)
    R.requires_grad_(True)
    consistency_term(R, 3, "original").backward()
    assert float(R.grad[:3].abs().sum()) == 0.0 and float(R.grad[3:].abs().sum()) > 0.0
    R.grad = None
    consistency_term(R, 3, "both").backward()
    assert float(R.grad[:3].abs().sum()) > 0.0
    with pytest.raises(ConfigError, match="consistency_target"):
        consistency_term(R, 3, "teacher")
