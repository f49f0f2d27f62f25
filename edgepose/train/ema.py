"""An exponential moving average of a model's weights, kept by the training engine (``ema`` > 0)."""
from __future__ import annotations

from typing import Any

from ..errors import UserError

__all__ = ["WeightAverage"]


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers (a copy that is never trained).

    The decay ramps up as ``min(decay, (1 + step) / (10 + step))`` so the average does not remember the
    random initialisation; integer buffers (BatchNorm's batch counter) are copied, not averaged."""

    def __init__(self, model, decay: float):
        import copy

        if not 0.0 < decay < 1.0:
            raise UserError(f"optim.ema={decay}: use a decay in (0, 1), e.g. 0.999, or 0 to switch the average off")
        self.model, self.decay, self.steps = copy.deepcopy(model).eval(), float(decay), 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, model) -> None:
        import torch

        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        with torch.no_grad():
            avg, cur = self.model.state_dict(), model.state_dict()
            for k, v in avg.items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(cur[k].detach(), alpha=1.0 - d)
                else:
                    v.copy_(cur[k])

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "steps": self.steps, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.steps = int(state["steps"])
