"""``method.name: baseline`` -- plain 6D + Gram-Schmidt + geodesic regression (hpe-methods.md 5.1).

The supervised method under the name the teacher table uses; importing it through
``edgepose.methods`` also makes the ``synth`` dataset format available.
"""
from __future__ import annotations

from ..train.method import SupervisedMethod, register_method

__all__ = ["BaselineMethod"]


@register_method("baseline")
class BaselineMethod(SupervisedMethod):
    """Identical to ``supervised``."""
