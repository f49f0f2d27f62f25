"""Initialise one backbone from another's trained weights, layer by layer (same name, same shape).

The default student (``efficientnet_b0_s4``) is the first four stages of EfficientNet-B0, and the imported
WHENet teacher is a whole EfficientNet-B0 trained on ImageNet and then on head pose: its trunk is the only
pretrained initialisation that can be had offline (no ImageNet download), and it carries exactly the
features a head-pose student needs.  Copying by name keeps this general: any two backbones that share
layer names (torchvision-style keys) transfer what they have in common.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from ..errors import ModelError

log = logging.getLogger(__name__)

__all__ = ["copy_matching_weights"]


def copy_matching_weights(dst: nn.Module, src: nn.Module, what: str = "source") -> list[str]:
    """Copy every parameter and buffer of ``src`` into ``dst`` whose name and shape match; return the names.

    Raises :class:`ModelError` when nothing matches (the two share no layer: wrong pairing), so a
    misconfigured initialisation never trains silently from scratch."""
    src_state = src.state_dict()
    dst_state = dst.state_dict()
    copied, shape_mismatch = [], []
    with torch.no_grad():
        for name, value in dst_state.items():
            other = src_state.get(name)
            if other is None:
                continue
            if tuple(other.shape) != tuple(value.shape):
                shape_mismatch.append(name)
                continue
            value.copy_(other.to(value.dtype))
            copied.append(name)
    if not copied:
        raise ModelError(f"no layer of {what} matches the student by name and shape "
                         f"({len(dst_state)} student tensors, {len(src_state)} in {what}): "
                         f"initialise from a model with the same backbone family")
    param_names = {n for n, _ in dst.named_parameters()}
    n_params = sum(dst_state[k].numel() for k in copied if k in param_names)
    total = sum(p.numel() for p in dst.parameters())
    log.info("initialised %d of %d tensors (%.0f %% of the parameters) from %s; %d left as they were%s",
             len(copied), len(dst_state), 100.0 * n_params / max(1, total), what, len(dst_state) - len(copied),
             f" ({len(shape_mismatch)} differ in shape)" if shape_mismatch else "")
    return copied
