"""Artifact metadata: every checkpoint, ONNX file and engine says how to feed it.

One :class:`ArtifactMetadata` travels with every artifact:

* checkpoints (``.pt`` / ``.ckpt``): stored under the key ``"edgepose_metadata"``;
* ONNX files: a sidecar ``<file>.json`` and a copy in the graph's ``metadata_props``
  (key ``edgepose``), so a renamed file still knows itself;
* TensorRT engines (``.engine`` / ``.plan``): a sidecar ``<file>.json`` only, so that
  trtexec and DeepStream can load the plan unchanged (docs/jetson.md, "Build engines").

:func:`load_metadata` finds it for any artifact path.  Runtimes build their preprocessing
from ``meta.preprocess`` and never from their own defaults.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError, first_line
from .preprocess import PreprocessSpec

__all__ = ["ArtifactMetadata", "BinSpec", "sidecar_path", "file_sha256", "load_metadata",
           "save_sidecar", "MetadataError", "CONVENTION", "SCHEMA", "CHECKPOINT_SUFFIXES", "atomic_write_bytes", "atomic_write_text",
           "POSE_OUTPUTS", "ROI_OUTPUTS", "has_roi_outputs"]

SCHEMA = "edgepose.artifact/1"
#: suffixes of an edgepose PyTorch checkpoint (one home: the runtime, eval, import and this module)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
CONVENTION = ("300W-LP: R = Rz(roll) Ry(yaw) Rx(pitch); rows of R = head x/y/z axes in camera "
              "coordinates (x right, y up, z toward viewer); +yaw nose to image-left, +pitch up, "
              "+roll clockwise on screen; Euler order (pitch, yaw, roll) in degrees")

#: the outputs every pose artifact has (the default of ``ArtifactMetadata.outputs``)
POSE_OUTPUTS = {
    "rotation": "(N,3,3) float32 rotation matrix R, convention below",
    "euler": "(N,3) float32 (pitch, yaw, roll) in degrees, decoded from R",
}
#: the optional outputs of a model with face-presence + box heads (edgepose.models.roi_heads): an artifact
#: whose ``outputs`` names both has them (ONNX / TensorRT: graph outputs of these names), others do not
ROI_OUTPUTS = {
    "presence": "(N,1) float32 probability that the crop holds a trackable face (sigmoid in the graph)",
    "box": "(N,4) float32 face box x1,y1,x2,y2 in crop units (0 = the crop's left/top edge, 1 = its "
           "right/bottom edge; crop = preprocess.crop of the input box), detector-box convention",
}


class MetadataError(ModelError, RuntimeError):
    """Raised when an artifact has no (or unreadable) edgepose metadata: a user error (one line, exit 2)."""


@dataclass
class BinSpec:
    """Angle bins of a classification / LDL head: centres lo + (k + 0.5) * width."""

    lo: float = -99.0
    hi: float = 99.0
    width: float = 3.0
    wrap: bool = False  # True for full-range yaw over [-180, 180)

    @property
    def num_bins(self) -> int:
        return int(round((self.hi - self.lo) / self.width))

    def centers(self):
        import numpy as np

        return self.lo + (np.arange(self.num_bins) + 0.5) * self.width


@dataclass
class ArtifactMetadata:
    """What a runtime needs to feed an artifact and read its outputs."""

    model: str  # registry name, e.g. "mobilenetv3_small"
    head: str = "6d"  # "6d" | "bins" | "6d+bins"
    model_kwargs: dict = field(default_factory=dict)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    bins: dict[str, BinSpec] = field(default_factory=dict)  # per axis "pitch" / "yaw" / "roll"
    input_name: str = "input"
    outputs: dict[str, str] = field(default_factory=lambda: dict(POSE_OUTPUTS))
    convention: str = CONVENTION
    precision: str = "fp32"  # fp32 | fp16 | int8-tensorrt | int8-cpu
    format: str = "torch"  # torch | onnx | tensorrt
    provenance: dict[str, Any] = field(default_factory=dict)  # parent sha256, datasets, command, ...
    sha256: str | None = None  # of the artifact file (sidecars only; None inside the file itself)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def __post_init__(self):
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessSpec.from_dict(self.preprocess)
        self.bins = {k: (BinSpec(**v) if isinstance(v, dict) else v) for k, v in self.bins.items()}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ArtifactMetadata":
        if d.get("schema", SCHEMA).split("/")[0] != SCHEMA.split("/")[0]:
            raise MetadataError(f"unknown metadata schema {d.get('schema')!r} (expected {SCHEMA})")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def derive(self, **changes) -> "ArtifactMetadata":
        """A copy for a derived artifact (export, quantization, engine build)."""
        d = self.to_dict()
        d.update({k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in changes.items()})
        d.setdefault("sha256", None)
        d["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return ArtifactMetadata.from_dict(d)


def has_roi_outputs(meta: "ArtifactMetadata") -> bool:
    """True when the artifact declares the presence + box outputs (:data:`ROI_OUTPUTS`): the one test
    runtimes use, so files exported before the heads existed keep working as pose-only models."""
    return all(name in (meta.outputs or {}) for name in ROI_OUTPUTS)


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    p = Path(artifact)
    return p.with_name(p.name + ".json")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file + rename, so a crash never leaves a half-written artifact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the artifact the permissions a normal open() would (umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_sidecar(artifact: str | os.PathLike, meta: ArtifactMetadata, hash_file: bool = True) -> Path:
    """Write ``<artifact>.json``; records the artifact's sha256 when it exists."""
    artifact = Path(artifact)
    if hash_file and artifact.exists():
        meta.sha256 = file_sha256(artifact)
    out = sidecar_path(artifact)
    atomic_write_text(out, meta.to_json() + "\n")
    return out


def _from_onnx(path: Path) -> ArtifactMetadata | None:
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a core dependency
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError, OSError, ... from a damaged file
        first = first_line(exc)
        raise MetadataError(f"cannot read {path} as an ONNX model ({type(exc).__name__}: {first}); it is truncated "
                            f"or not an ONNX file - copy it again or re-export it with `edgepose export`") from None
    for prop in model.metadata_props:
        if prop.key == "edgepose":
            return ArtifactMetadata.from_dict(json.loads(prop.value))
    return None


def _from_checkpoint(path: Path, ckpt: Any = None) -> ArtifactMetadata | None:
    if ckpt is None:
        from .safe_load import load_torch_file

        ckpt = load_torch_file(path)
    d = ckpt.get("edgepose_metadata") if isinstance(ckpt, dict) else None
    return ArtifactMetadata.from_dict(d) if d else None


def load_metadata(artifact: str | os.PathLike, checkpoint: Any = None) -> ArtifactMetadata:
    """Metadata for any artifact: sidecar first, then what the file carries itself.

    ``checkpoint``: the already loaded contents of a ``.pt`` artifact (``safe_load.load_torch_file``),
    so a caller that also needs its weights reads the file once."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise FileNotFoundError(f"model file not found: {artifact}")
    side = sidecar_path(artifact)
    if side.exists():
        try:
            return ArtifactMetadata.from_dict(json.loads(side.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise MetadataError(f"metadata sidecar {side} is not valid edgepose metadata ({exc}); "
                                f"delete it or re-export the model") from exc
    meta = None
    suffix = artifact.suffix.lower()
    if suffix == ".onnx":
        meta = _from_onnx(artifact)
    elif suffix in CHECKPOINT_SUFFIXES:
        meta = _from_checkpoint(artifact, checkpoint)
    if meta is None:
        raise MetadataError(
            f"{artifact} carries no edgepose metadata and has no sidecar {side.name}; "
            f"export it with `edgepose export` or write the sidecar with edgepose.metadata.save_sidecar")
    return meta
