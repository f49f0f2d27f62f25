"""Quantization noise while training: every BatchNorm output gets uniform noise of one INT8 step.

An INT8 file rounds every activation to a step of ``range / 255``; a face box that moves by 0.01 px flips a
few of those roundings in every layer, and the answer moves by the network's sensitivity to such flips,
summed over all layers. ``edgepose-bench quantize-sweep --shift-faces ... --rank-by shift`` shows that for
the default student no single layer group dominates (docs/models.md, "INT8"), so keeping layers in float does
not close the [accuracy] issue's 0.2 deg bound; lowering the sensitivity everywhere can. Training with noise
of the rounding's size on each layer's output (the pseudo-quantization-noise view of quantization: rounding
error ~ uniform on +-step/2) asks for exactly that, without QAT's fake-quant graph and straight-through
gradients.

The step of each layer follows its activations' range during training (an exponential moving average of the
batch maximum, as minmax calibration would measure it after the ReLU that follows the BatchNorm), so no
calibration pass is needed; the ranges are part of the objective's state (exact resume). Noise is added only
in training mode: validation, the EMA copy and the exported files never see it.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["QuantNoise"]


class QuantNoise:
    """Forward hooks on every ``BatchNorm2d`` of ``module`` adding ``strength`` x U(-1/2, 1/2) x step, with
    step = (running max of the layer's output) / ``levels``."""

    def __init__(self, strength: float = 1.0, levels: int = 255, momentum: float = 0.05):
        if strength < 0 or levels < 2 or not 0 < momentum <= 1:
            raise ValueError("QuantNoise: strength >= 0, levels >= 2 and 0 < momentum <= 1")
        self.strength, self.levels, self.momentum = float(strength), int(levels), float(momentum)
        self.ranges: dict[str, float] = {}
        self._handles: list = []

    def attach(self, module: nn.Module) -> "QuantNoise":
        """Hook every BatchNorm2d of ``module`` (a DDP wrapper's inner module is used); idempotent."""
        if self._handles:
            return self
        module = getattr(module, "module", module)
        for name, m in module.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                self._handles.append(m.register_forward_hook(self._hook(name)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _hook(self, name: str):
        def add_noise(mod: nn.Module, _inputs, out: torch.Tensor) -> torch.Tensor | None:
            if not mod.training or self.strength == 0:
                return None
            peak = float(out.detach().amax())  # the positive side: what survives the ReLU after it
            old = self.ranges.get(name)
            self.ranges[name] = peak if old is None else (1 - self.momentum) * old + self.momentum * peak
            step = self.ranges[name] / self.levels
            return out + (torch.rand_like(out) - 0.5) * (self.strength * step)
        return add_noise

    def state_dict(self) -> dict:
        return {"ranges": dict(self.ranges)}

    def load_state_dict(self, state: dict) -> None:
        self.ranges = dict(state.get("ranges", {}))
