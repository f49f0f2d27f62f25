"""The two INT8 profiles: ``tensorrt`` (symmetric S8S8 Q/DQ for TensorRT) and ``cpu`` (U8S8 for ORT).

Settings and their reasons are in deployment.md section 2.2 and environment.md section 5:

* ``tensorrt``: TensorRT accepts only zero points of 0 and signed INT8, wants per-channel weight
  scales and rejects the int32 bias DequantizeLinear that ORT inserts by default
  (``QuantizeBias=False``: TensorRT quantizes conv bias itself).  On ORT CPU this model is *not*
  faster than FP32 (most DQ -> Conv -> Q stay unfused).
* ``cpu``: asymmetric uint8 activations with int8 weights (U8S8) fuse into QLinearConv /
  QLinearAdd on ORT's CPU provider, ~3x faster than FP32 on ResNet-18; TensorRT rejects it.

Both keep the head (everything after the pooled features) in float.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgepose.errors import UserError

__all__ = ["QuantProfile", "PROFILES", "get_profile", "CALIBRATION_METHODS", "parse_profiles"]

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantProfile:
    name: str
    precision: str  # ArtifactMetadata.precision of the result
    activation_type: str  # onnxruntime QuantType name
    weight_type: str
    per_channel: bool
    extra_options: dict = field(default_factory=dict)
    description: str = ""

    def ort_types(self):
        from onnxruntime.quantization import QuantType

        return getattr(QuantType, self.activation_type), getattr(QuantType, self.weight_type)


PROFILES: dict[str, QuantProfile] = {
    "tensorrt": QuantProfile(
        name="tensorrt", precision="int8-tensorrt", activation_type="QInt8", weight_type="QInt8", per_channel=True,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        description="Q/DQ, symmetric signed INT8 activations + per-channel weights, no bias DQ (TensorRT)"),
    "cpu": QuantProfile(
        name="cpu", precision="int8-cpu", activation_type="QUInt8", weight_type="QInt8", per_channel=True,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        description="Q/DQ, uint8 asymmetric activations + int8 per-channel weights (U8S8, ONNX Runtime CPU)"),
}


def get_profile(name: str) -> QuantProfile:
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise UserError(f"unknown INT8 profile {name!r}; choose from {', '.join(PROFILES)}") from None


def parse_profiles(text: str) -> list[QuantProfile]:
    names = [t for t in (s.strip() for s in text.split(",")) if t]
    if not names:
        raise UserError("--profiles is empty; use e.g. --profiles tensorrt,cpu")
    return [get_profile(n) for n in names]
