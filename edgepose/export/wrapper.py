"""The module that is traced into ONNX: a PoseModel plus the in-graph pose decode.

Every exported graph has one input ``input`` (N, C, S, S) float32 and two outputs (four with ROI heads):

* ``rotation`` (N, 3, 3): the model's R (6D -> Gram-Schmidt, or bins -> Euler -> R; the head
  decides, see :mod:`edgepose.models.heads`);
* ``euler`` (N, 3): (pitch, yaw, roll) in degrees, decoded from R with
  :func:`edgepose.geometry_torch.matrix_to_euler` -- the same decode as ``edgepose.geometry``
  on the host, so an ONNX consumer without edgepose gets the project's convention.

ONNX has no Atan2 operator; the exporter lowers ``torch.atan2`` to Atan + Where.  The only
difference to PyTorch is the sign of an exact +-180 deg result when the first argument is a
signed zero (the same angle); :mod:`edgepose.export.checks` therefore compares Euler outputs
as wrapped angle differences.

A model with face-presence + box heads (:mod:`edgepose.models.roi_heads`) adds ``presence``
(N, 1), the sigmoid of the presence logit, and ``box`` (N, 4) in crop units
(:data:`edgepose.metadata.ROI_OUTPUTS`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..geometry_torch import matrix_to_euler

__all__ = ["ExportWrapper", "OUTPUT_NAMES", "ROI_OUTPUT_NAMES", "INPUT_NAME", "output_names"]

INPUT_NAME = "input"
OUTPUT_NAMES = ("rotation", "euler")
ROI_OUTPUT_NAMES = ("presence", "box")


def output_names(model: nn.Module) -> tuple[str, ...]:
    """The graph outputs a model is exported with (pose, plus the ROI heads' when it has them)."""
    return OUTPUT_NAMES + (ROI_OUTPUT_NAMES if getattr(model, "roi_heads", None) is not None else ())


class ExportWrapper(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, ...]:  # noqa: A002 - ONNX input name
        out = self.model(input)
        R = out["R"]
        if "presence" in out:
            return R, matrix_to_euler(R), torch.sigmoid(out["presence"]), out["box"]
        return R, matrix_to_euler(R)
