"""``method.name: ldl`` -- label distribution learning (Liu et al. ICCVW'19, arXiv 1904.13102; docs/teachers.md).

Per axis a Gaussian label distribution over the bin centres (wrapped on ``wrap: true`` axes, so
full-range yaw/roll near +-180 deg are neighbours), ``KL(target || softmax) + lambda |E - y|``
with the head's decode (circular mean on wrapped axes), plus the geodesic loss on the 6D branch
of a ``6d+bins`` head.  The loss pieces live in :mod:`edgepose.losses`; this method checks that
the config wires them (bins head, ``loss.ldl > 0``) and fails early with the fix otherwise.
"""
from __future__ import annotations

from ..config import ConfigError
from .method import SupervisedMethod, register_method

__all__ = ["LDLMethod", "check_ldl_config"]


def check_ldl_config(cfg) -> None:
    if "bins" not in cfg.model.head:
        raise ConfigError(f"method ldl needs a binned head: set model.head=6d+bins (or bins), got {cfg.model.head!r}")
    if float(cfg.loss.get("ldl", 0.0)) <= 0:
        raise ConfigError("method ldl needs loss.ldl > 0 (e.g. loss.ldl=0.5); with 0 it would be the baseline")


@register_method("ldl")
class LDLMethod(SupervisedMethod):
    def __init__(self, cfg, options=None):
        check_ldl_config(cfg)
        super().__init__(cfg, options)
