"""ROI heads: a face-presence score and a refined face box from the pose model's pooled features.

They let the runtime keep a face between detector runs the way MediaPipe's face pipelines do
(docs/runtime.md, "ROI tracking"): the crop of frame t+1 comes from the box this head saw on
frame t, and the detector runs again only when the presence drops, every ``detector.every``
frames, or when no face is tracked.

* ``presence``: (N, 1) logit that the crop holds a face the tracker should keep (trained on
  real face crops with jittered boxes against non-face crops and badly shifted boxes);
  exported graphs apply the sigmoid, so ONNX / TensorRT files output a probability.
* ``box``: (N, 4) the detector's face box (x1, y1, x2, y2) in **crop units** -- 0 is the
  crop's left / top edge, 1 its right / bottom edge (:func:`edgepose.preprocess.box_from_crop`
  maps it back to frame pixels).  Targets are the detector's boxes, so a tracked box keeps
  the detector's convention (the crop policy of the pose model expects it).

Both read the pooled features of the same trunk: the heads cost two small matrix products
(512 -> 64 -> 5 for MobileNetV1 x0.5), and they are trained on the frozen trunk by
``edgepose models build --stage roi-heads`` (:mod:`edgepose.assets.build_roi`), so they attach
to whatever pose model a build ships.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError

__all__ = ["RoiHeads", "ROI_HEADS_DEFAULT_HIDDEN"]

ROI_HEADS_DEFAULT_HIDDEN = 64


class RoiHeads(nn.Module):
    """features (N, C) -> ``{"presence": (N, 1) logit, "box": (N, 4) crop units}``."""

    def __init__(self, num_features: int, hidden: int = ROI_HEADS_DEFAULT_HIDDEN):
        super().__init__()
        if int(hidden) < 1:
            raise ModelError(f"roi_heads.hidden must be >= 1, got {hidden}")
        self.hidden = int(hidden)
        # one shared hidden layer: the two tasks read the same evidence (where the face is)
        self.shared = nn.Sequential(nn.Linear(num_features, self.hidden), nn.ReLU(inplace=False))
        self.presence = nn.Linear(self.hidden, 1)
        self.box = nn.Linear(self.hidden, 4)
        # start at "the box the crop policy was built from": a centred box of 1/scale of the crop
        # is learnt quickly from there; the bias is set by the stage from the data anyway
        nn.init.zeros_(self.box.weight)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.shared(features)
        return {"presence": self.presence(h), "box": self.box(h)}

    def config(self) -> dict:
        """What :class:`~edgepose.models.pose_model.PoseModel` stores in ``model_kwargs["roi_heads"]``."""
        return {"hidden": self.hidden}
