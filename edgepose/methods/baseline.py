"""``method.name: baseline`` -- plain 6D + Gram-Schmidt + geodesic regression (6DRepNet: Hempel et al., ICIP 2022, arXiv 2202.12555).

The supervised method under the name the teacher table uses.
"""
from __future__ import annotations

from .method import SupervisedMethod, register_method

__all__ = ["BaselineMethod"]


@register_method("baseline")
class BaselineMethod(SupervisedMethod):
    """Identical to ``supervised``."""
