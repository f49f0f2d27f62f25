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

__all__ = ["copy_matching_weights", "sixd_head_from_camera_head"]


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


# 3DDFA_V2's camera is 12 numbers, a 3 x 4 matrix row by row, whose left 3 x 3 is scale x R^T in the
# edgepose convention (docs/importers.md). Rows 0 and 1 of that block are therefore R's first two columns
# up to the common scale: exactly the two vectors the 6D head feeds to Gram-Schmidt.
CAMERA_ROWS_AS_SIXD = (0, 1, 2, 4, 5, 6)


def sixd_head_from_camera_head(dst_head: nn.Module, src_head: nn.Module, what: str = "3DDFA_V2") -> list[str]:
    """Initialise a linear 6D head (``fc``: C -> 6) from a 3DDFA_V2-style camera head (``fc``: C -> 62,
    de-normalised by ``param_mean`` / ``param_std``) on the same features, so that the student starts out
    reading the teacher's rotation instead of a random one. Gram-Schmidt ignores a common scale, so the
    six outputs are divided by the mean camera row length, which keeps them near unit length (the 6D
    head's gradients grow as its outputs shrink). Returns the copied names (``fc.weight``, ``fc.bias``)."""
    fc_src, fc_dst = getattr(src_head, "fc", None), getattr(dst_head, "fc", None)
    if (fc_src is None or fc_dst is None or getattr(dst_head, "hidden", None) is not None
            or not hasattr(src_head, "param_mean") or fc_dst.out_features != 6
            or fc_src.in_features != fc_dst.in_features):
        raise ModelError(f"cannot initialise the student's head from {what}'s: it needs a linear 6D head on "
                         f"the same number of features as the camera head (student head.hidden must be empty)")
    idx = torch.tensor(CAMERA_ROWS_AS_SIXD)
    std, mean = src_head.param_std[idx], src_head.param_mean[idx]
    scale = 0.5 * (mean[:3].norm() + mean[3:].norm())
    with torch.no_grad():
        fc_dst.weight.copy_(fc_src.weight[idx] * (std / scale)[:, None])
        fc_dst.bias.copy_((fc_src.bias[idx] * std + mean) / scale)
    log.info("initialised the 6D head from %s's camera rows (scale %.3g)", what, float(scale))
    return ["fc.weight", "fc.bias"]
