"""Pose heads: pooled features -> rotation matrix R (and, for binned heads, per-axis logits).

* ``"6d"``: ``Linear(C, 6)`` -> Gram-Schmidt (:func:`edgepose.geometry_torch.sixd_to_matrix`), 6DRepNet.
  With ``hidden=(512,)`` (``model.kwargs.head_hidden``) it is an MLP instead:
  ``Linear(C, 512) -> BN -> ReLU -> ... -> Linear(., 6) -> Gram-Schmidt``, CLERF's stage-2 head.
* ``"bins"``: one ``Linear(C, K_axis)`` per Euler axis (pitch, yaw, roll), each with its own
  :class:`~edgepose.metadata.BinSpec`; trained with HopeNet CE or LDL (:mod:`edgepose.losses`).
  Angles are decoded as the softmax expectation over bin **centres** ``lo + (k + 0.5) * width``.
  HopeNet's code uses left edges (``3k - 99``), which biases a one-hot prediction by half a bin
  (-1.5 deg); we do not copy that.  Wrapped axes (full-range yaw over [-180, 180), ``wrap=True``)
  are decoded with the circular mean ``atan2(sum p sin c, sum p cos c)``, which has no seam at
  +-180.  R is built from the decoded Euler angles with
  :func:`edgepose.geometry_torch.euler_to_matrix`.
* ``"6d+bins"``: R from the 6D branch; the bins are an auxiliary output (logits + decoded Euler).
* ``"3dmm"``: 3DDFA_V2's regressor, ``Linear(C, 62)`` de-normalised with the training set's
  mean / std (buffers): a 3 x 4 weak-perspective camera (12) + 40 shape + 10 expression
  coefficients.  The camera's left 3 x 3 is scale x (3DDFA's rotation = R.T in our convention,
  docs/conventions.md); R is its polar factor (:func:`edgepose.geometry_torch.nearest_rotation`,
  exportable), transposed.
* ``"euler"``: no parameters; the backbone's features are (pitch, yaw, roll) in degrees already
  (a network that regresses angles, e.g. an imported FSA-Net) and R = euler_to_matrix of them.

Every head returns ``{"R": (N, 3, 3), ...}`` so downstream code reads R the same way.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..errors import ModelError
from ..geometry_torch import euler_to_matrix, nearest_rotation, sixd_to_matrix
from ..metadata import BinSpec

__all__ = ["AXES", "HEADS", "default_bins", "resolve_bins", "resolve_hidden", "bin_centers", "bin_index",
           "decode_bins", "SixDHead", "BinHead", "SixDBinHead", "TDDFAHead", "EulerHead", "build_head"]

AXES = ("pitch", "yaw", "roll")
HEADS = ("6d", "bins", "6d+bins", "3dmm", "euler")
TDDFA_PARAMS = 62  # 12 camera + 40 shape + 10 expression (3DDFA_V2)


def default_bins() -> dict[str, BinSpec]:
    """HopeNet's 66 bins of 3 deg over [-99, 99) on every axis."""
    return {a: BinSpec(-99.0, 99.0, 3.0, False) for a in AXES}


def _check_spec(axis: str, spec: BinSpec) -> BinSpec:
    if not (spec.width > 0 and spec.hi > spec.lo):
        raise ModelError(f"bins for {axis}: need hi > lo and width > 0, got lo={spec.lo} hi={spec.hi} "
                         f"width={spec.width}")
    n = (spec.hi - spec.lo) / spec.width
    if abs(n - round(n)) > 1e-6 or round(n) < 2:
        raise ModelError(f"bins for {axis}: (hi - lo) / width = {n:g} must be a whole number >= 2; "
                         f"pick a width that divides the range {spec.hi - spec.lo:g} deg")
    if spec.wrap and abs((spec.hi - spec.lo) - 360.0) > 1e-6:
        raise ModelError(f"bins for {axis}: wrap=True needs a full circle (hi - lo = 360, e.g. lo=-180 "
                         f"hi=180), got {spec.hi - spec.lo:g}")
    return spec


def resolve_bins(bins: Mapping[str, BinSpec | dict] | None) -> dict[str, BinSpec]:
    """Defaults for missing axes + validation; accepts BinSpecs or plain dicts (from YAML/JSON)."""
    out = default_bins()
    for axis, spec in (bins or {}).items():
        if axis not in AXES:
            raise ModelError(f"bins: unknown axis {axis!r}; use {', '.join(AXES)}")
        if isinstance(spec, dict):
            try:
                spec = BinSpec(**spec)
            except TypeError as exc:
                raise ModelError(f"bins for {axis}: {exc}; keys are lo, hi, width, wrap") from None
        out[axis] = _check_spec(axis, BinSpec(float(spec.lo), float(spec.hi), float(spec.width), bool(spec.wrap)))
    return out


def resolve_hidden(hidden) -> tuple[int, ...]:
    """Hidden widths of the 6D MLP head: ``None`` / ``[]`` -> () (the linear head), else positive ints."""
    if hidden is None:
        return ()
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = [hidden]
    try:
        widths = tuple(hidden)
    except TypeError:
        widths = (hidden,)
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ModelError(f"head_hidden must be a list of positive layer widths, e.g. [512], got {hidden!r}")
    return widths


def bin_centers(spec: BinSpec, device=None, dtype=torch.float32) -> torch.Tensor:
    """(K,) bin centres in degrees: lo + (k + 0.5) * width."""
    k = torch.arange(spec.num_bins, device=device, dtype=dtype)
    return spec.lo + (k + 0.5) * spec.width


def bin_index(angle_deg: torch.Tensor, spec: BinSpec) -> torch.Tensor:
    """Class index of each angle; wrapped axes wrap first, open axes clamp to the end bins."""
    a = angle_deg
    if spec.wrap:
        a = torch.remainder(a - spec.lo, 360.0) + spec.lo
    idx = torch.floor((a - spec.lo) / spec.width).long()
    return idx.clamp(0, spec.num_bins - 1)


def decode_bins(logits: torch.Tensor, spec: BinSpec) -> torch.Tensor:
    """(N, K) logits -> (N,) angle in degrees (expectation over centres / circular mean)."""
    p = torch.softmax(logits, dim=-1)
    c = bin_centers(spec, device=logits.device, dtype=p.dtype)
    if spec.wrap:
        cr = c * (math.pi / 180.0)
        return torch.atan2((p * torch.sin(cr)).sum(-1), (p * torch.cos(cr)).sum(-1)) * (180.0 / math.pi)
    return (p * c).sum(-1)


class SixDHead(nn.Module):
    """Features -> [hidden MLP] -> ``fc`` (6) -> Gram-Schmidt -> R.

    ``hidden=()`` is the linear 6DRepNet head; its state-dict keys (``fc.*``) are unchanged, so
    older checkpoints and the importers keep loading.  Each hidden layer is Linear -> BatchNorm ->
    ReLU, like the projection MLPs of the teacher methods (BN keeps the pre-activations scaled while
    the encoder under it is fine-tuned; in eval mode it is a fixed affine map that exports as
    BatchNormalization, and the trainer never hands it a batch of one).
    """

    def __init__(self, in_features: int, dropout: float = 0.0, hidden: tuple[int, ...] = ()):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        layers: list[nn.Module] = []
        width = in_features
        for h in resolve_hidden(hidden):
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            width = h
        # Only registered when used: a linear head's state dict stays exactly what it always was.
        self.hidden = nn.Sequential(*layers) if layers else None
        self.fc = nn.Linear(width, 6)

    def forward(self, features: torch.Tensor) -> dict:
        f = self.dropout(features)
        if self.hidden is not None:
            f = self.hidden(f)
        sixd = self.fc(f)
        return {"R": sixd_to_matrix(sixd), "sixd": sixd}


class BinHead(nn.Module):
    def __init__(self, in_features: int, bins: Mapping[str, BinSpec], dropout: float = 0.0):
        super().__init__()
        self.bins = resolve_bins(bins)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.ModuleDict({a: nn.Linear(in_features, self.bins[a].num_bins) for a in AXES})

    def forward(self, features: torch.Tensor) -> dict:
        f = self.dropout(features)
        logits = {a: self.fc[a](f) for a in AXES}
        euler = torch.stack([decode_bins(logits[a], self.bins[a]) for a in AXES], dim=-1)
        return {"R": euler_to_matrix(euler), "logits": logits, "bin_euler": euler}


class SixDBinHead(nn.Module):
    def __init__(self, in_features: int, bins: Mapping[str, BinSpec], dropout: float = 0.0,
                 hidden: tuple[int, ...] = ()):
        super().__init__()
        self.sixd = SixDHead(in_features, dropout, hidden)  # the MLP (if any) is on the 6D branch only
        self.bins = BinHead(in_features, bins, dropout)

    def forward(self, features: torch.Tensor) -> dict:
        aux = self.bins(features)
        out = self.sixd(features)  # R comes from the 6D branch
        out["logits"], out["bin_euler"] = aux["logits"], aux["bin_euler"]
        return out


class TDDFAHead(nn.Module):
    """3DDFA_V2's 62-parameter regressor -> R (see the module docstring); ``params`` = the 62 de-normalised."""

    def __init__(self, in_features: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, TDDFA_PARAMS)
        # The training set's parameter statistics: part of the model, so they live in the state dict.
        self.register_buffer("param_mean", torch.zeros(TDDFA_PARAMS))
        self.register_buffer("param_std", torch.ones(TDDFA_PARAMS))

    def forward(self, features: torch.Tensor) -> dict:
        params = self.fc(self.dropout(features)) * self.param_std + self.param_mean
        camera = params[:, :12].reshape(-1, 3, 4)
        R = nearest_rotation(camera[:, :, :3]).transpose(-1, -2)
        return {"R": R, "params": params}


class EulerHead(nn.Module):
    """Features = (pitch, yaw, roll) in degrees -> R."""

    def forward(self, features: torch.Tensor) -> dict:
        return {"R": euler_to_matrix(features[:, :3]), "euler": features[:, :3]}


def build_head(kind: str, in_features: int, bins: Mapping[str, BinSpec] | None = None,
               dropout: float = 0.0, hidden=None) -> nn.Module:
    """``hidden``: widths of the MLP before the 6D output (``None`` / ``[]``: the linear head)."""
    if kind not in HEADS:
        raise ModelError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must be in [0, 1), got {dropout}")
    widths = resolve_hidden(hidden)
    if kind == "6d":
        return SixDHead(in_features, dropout, widths)
    if kind in ("3dmm", "euler"):
        if widths:
            raise ModelError(f"head_hidden applies to the 6D head; the {kind} head is an imported network's own")
        if kind == "euler" and in_features != 3:
            raise ModelError(f"the euler head needs a backbone that outputs (pitch, yaw, roll), got {in_features} features")
        return TDDFAHead(in_features, dropout) if kind == "3dmm" else EulerHead()
    if kind == "bins":
        if widths:
            raise ModelError("head_hidden applies to the 6D head; use head 6d or 6d+bins, not bins")
        return BinHead(in_features, bins, dropout)
    return SixDBinHead(in_features, bins, dropout, widths)
