"""EfficientNet-B0 with Keras numerics (TF "same" padding, BN eps 1e-3, swish, SE on input filters)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgepose.models.backbones.efficientnet import (B0_STAGES, SameConv2d, efficientnet_b0, keras_layer_order,
                                                     tf_same_pad)


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_count_matches_reference_b0():
    # EfficientNet-B0 with its 1000-class top has 5,288,548 parameters (Tan & Le 2019; torchvision and
    # efficientnet_pytorch agree); Keras' count adds only non-trainable BN statistics.
    assert _params(efficientnet_b0(num_classes=1000)) == 5_288_548
    trunk = efficientnet_b0()
    assert trunk.num_features == 1280 and trunk.classifier is None
    assert _params(trunk) == 5_288_548 - (1280 * 1000 + 1000)


@pytest.mark.parametrize("size,k,s,expected", [(224, 3, 2, (0, 1)), (224, 5, 2, (1, 2)), (7, 5, 2, (2, 2)),
                                               (112, 3, 1, (1, 1)), (225, 3, 2, (1, 1)), (1, 5, 2, (2, 2))])
def test_tf_same_pad(size, k, s, expected):
    assert tf_same_pad(size, k, s) == expected
    top, bottom = expected
    assert (size + top + bottom - k) // s + 1 == math.ceil(size / s)


def test_same_conv_stride2_pads_right_bottom_like_tensorflow():
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, 3, 2, tf_padding=True)
    x = torch.randn(1, 2, 8, 8)
    # TF: 8 -> 4 outputs, total pad 1, all of it after -> output (0,0) reads x[0:3, 0:3] with no padding
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.allclose(conv(x), ref, atol=1e-6)
    assert torch.allclose(conv(x)[..., 0, 0], (x[0, :, 0:3, 0:3] * conv.weight).sum(dim=(1, 2, 3)), atol=1e-5)
    torch_style = SameConv2d(2, 3, 3, 2, tf_padding=False)
    torch_style.weight.data.copy_(conv.weight.data)
    assert not torch.allclose(torch_style(x), conv(x), atol=1e-3)  # the one-pixel grid shift is real


def test_keras_numerics_and_structure():
    net = efficientnet_b0()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(b.eps == 1e-3 for b in bns)
    blocks = [b for stage in net.blocks for b in stage]
    assert len(blocks) == sum(s.repeats for s in B0_STAGES) == 16
    # SE reduces the block's INPUT filters by 0.25: first block 32 -> 8, second (16 in, 96 mid) -> 4
    assert blocks[0].se.conv_reduce.out_channels == 8
    assert blocks[1].se.conv_reduce.out_channels == 4 and blocks[1].se.conv_reduce.in_channels == 96
    assert [b.has_skip for b in blocks].count(True) == 9  # the nine add_* layers of the Keras graph
    kinds = [k for k, _ in keras_layer_order(net)]
    assert len(kinds) == 130 and kinds.count("dwconv") == 16 and kinds.count("bn") == 49


@pytest.mark.parametrize("size", [224, 97])
def test_forward_shapes_and_eval_determinism(size):
    net = efficientnet_b0().eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        f = net.forward_features(x)
        assert f.shape == (2, 1280) and torch.isfinite(f).all()
        assert net.forward_maps(x).shape[-1] == math.ceil(size / 32)
        assert torch.equal(f, net.forward_features(x))


def test_torch_variant_is_symmetric():
    net = efficientnet_b0(tf_padding=False, bn_eps=1e-5)
    assert all(not m.tf_dynamic for m in net.modules() if isinstance(m, SameConv2d))
    assert all(m.eps == 1e-5 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_registered():
    from edgepose.models import list_models

    assert "efficientnet_b0" in list_models("efficientnet*")


def test_matches_keras_efficientnet_b0(tmp_path, repo_root):
    """Activation parity with keras.applications.EfficientNetB0 (random weights incl. BN statistics).

    Needs a Python with Keras 3 + TensorFlow, named by EDGEPOSE_KERAS_PYTHON (TensorFlow is not an
    edgepose dependency).  Measured: max |diff| 3.6e-7 with Keras numerics; symmetric padding or
    BN eps 1e-5 differ by > 1e-4, so the check discriminates.
    """
    import os
    import subprocess

    py = os.environ.get("EDGEPOSE_KERAS_PYTHON")
    if not py:
        pytest.skip("set EDGEPOSE_KERAS_PYTHON to a Python with keras 3 + tensorflow to compare with Keras")
    from edgepose.importers.keras_reference import compare_with_keras

    ref = tmp_path / "ref.npz"
    subprocess.run([py, str(repo_root / "tools" / "keras_reference.py"), str(ref)], check=True,
                   capture_output=True, timeout=600)
    assert compare_with_keras(str(ref)) < 1e-5
    assert compare_with_keras(str(ref), tf_padding=False) > 1e-5
    assert compare_with_keras(str(ref), bn_eps=1e-5) > 1e-5
