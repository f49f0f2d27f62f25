"""Box consistency: the same face seen through a slightly different crop box must give the same rotation.

A detector's box moves by a pixel or two from frame to frame while the head does not turn, and an INT8 model
amplifies every small input change; both show up as jitter of the output on video (docs/models.md,
"Stability"). Translating or scaling the crop box leaves an orthographic head-pose label unchanged
(:mod:`edgepose.data.augment`), so a second view of part of the batch through such a change, and the geodesic
distance between the two predictions as an extra loss term, asks the network for exactly that invariance
without any new label.

The second view is resampled from the already normalised crop tensor (one ``grid_sample``), so it costs
``fraction`` of a batch more forward/backward work and no data-loader work; the few pixels that enter at
the border are replicated from the edge (``padding_mode="border"``), as a crop near the frame edge is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["box_jittered", "with_jittered_views", "consistency_term", "TARGETS"]


def box_jittered(images: torch.Tensor, shift_px: float, scale: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(N, C, S, S) crops -> the same crops through a box moved by up to ``shift_px`` pixels in x and y
    (uniform, sub-pixel included) and scaled by up to ``+-scale`` (a fraction), bilinear."""
    n, _, h, w = images.shape
    dev, dt = images.device, images.dtype

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev, dt) * 2 - 1

    s = 1 + scale * uniform(n)
    t = uniform(n, 2) * shift_px * 2 / torch.tensor([w, h], device=dev, dtype=dt)  # pixels -> [-1, 1] units
    theta = torch.zeros(n, 2, 3, device=dev, dtype=dt)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def with_jittered_views(images: torch.Tensor, fraction: float, shift_px: float, scale: float,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Append box-jittered copies of the first ``fraction`` of ``images`` to the batch; return it and how many
    were appended. One forward over the joined batch (rather than a second forward) keeps DistributedDataParallel's
    one-forward-per-backward contract."""
    k = max(1, int(round(fraction * images.shape[0])))
    return torch.cat([images, box_jittered(images[:k], shift_px, scale, generator)]), k


TARGETS = ("both", "original")


def consistency_term(R: torch.Tensor, k: int, target: str = "both") -> torch.Tensor:
    """Mean geodesic angle (radians) between the rotations predicted for the ``k`` jittered views (the last
    ``k`` rows of ``R``) and for their originals (the first ``k``). ``target="both"``: both sides carry gradients,
    the pair is pulled together. ``"original"``: the originals are a fixed target (detached), so the supervised
    prediction is never pulled toward a moved view's -- the term can then only teach the moved view to agree."""
    from edgepose.config import ConfigError
    from edgepose.losses import geodesic_loss

    if target not in TARGETS:
        raise ConfigError(f"optim.consistency_target={target!r}: use one of {', '.join(TARGETS)}")
    anchor = R[:k].float()
    return geodesic_loss(R[-k:].float(), anchor.detach() if target == "original" else anchor)
