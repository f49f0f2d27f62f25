"""Quantization noise while training (edgepose.train.quant_noise): one INT8 step of uniform noise on every
BatchNorm output in training mode, none in eval mode, ranges kept for exact resume."""
import torch
from torch import nn

from edgepose.train.quant_noise import QuantNoise


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.BatchNorm2d(4))


def test_noise_is_one_step_in_training_and_absent_in_eval():
    net, x = _net(), torch.randn(4, 3, 12, 12)
    noise = QuantNoise(strength=1.0, levels=255).attach(net)
    assert len(noise._handles) == 2
    net.eval()
    clean = net(x)
    assert torch.equal(net(x), clean)  # eval: untouched (validation, EMA and export see no noise)
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    assert not torch.allclose(a, b)  # training: noisy
    step = noise.ranges["4"] / 255
    noise.detach()
    torch.manual_seed(1)
    quiet = net(x)
    gap = (a - quiet).abs()
    # the last layer's own noise is at most half a step; the first layer's, carried through, adds a little more
    assert 0 < gap.max() < 2 * step


def test_ranges_follow_the_activations_and_round_trip():
    net, x = _net(), torch.randn(4, 3, 12, 12)
    noise = QuantNoise(momentum=1.0).attach(net)
    net.train()
    net(x)
    assert noise.ranges["1"] > 0 and noise.ranges["4"] > 0
    again = QuantNoise()
    again.load_state_dict(noise.state_dict())
    assert again.ranges == noise.ranges


def test_zero_strength_changes_nothing():
    net, x = _net(), torch.randn(2, 3, 12, 12)
    net.train()
    torch.manual_seed(0)
    ref = net(x)
    QuantNoise(strength=0.0).attach(net)
    torch.manual_seed(0)
    assert torch.allclose(net(x), ref)
