"""The two INT8 profiles: ``tensorrt`` (symmetric S8S8 Q/DQ for TensorRT) and ``cpu`` (U8S8 for ORT).

Settings and their reasons are in docs/quantization.md ("Profiles", "reduce_range"):

* ``tensorrt``: TensorRT accepts only zero points of 0 and signed INT8, wants per-channel weight
  scales and rejects the int32 bias DequantizeLinear that ORT inserts by default
  (``QuantizeBias=False``: TensorRT quantizes conv bias itself).  On ORT CPU this model is *not*
  faster than FP32 (most DQ -> Conv -> Q stay unfused).
* ``cpu``: asymmetric uint8 activations with int8 weights (U8S8) fuse into QLinearConv /
  QLinearAdd on ORT's CPU provider, ~3x faster than FP32 on ResNet-18; TensorRT rejects it.

Both keep the head (everything after the pooled features) in float.

``reduce_range`` (``cpu`` profile only): 7-bit weights.  On x86 CPUs without VNNI (AVX2, or AVX-512
without AVX512_VNNI) ORT's U8S8 kernels multiply with ``VPMADDUBSW``, whose int16 pair sums can
saturate; the ORT quantization docs recommend ``reduce_range`` (or U8U8) there.  VNNI CPUs
(``VPDPBUSD``, 32-bit accumulation) do not need it, and TensorRT does its own INT8 maths, so the
``tensorrt`` profile never uses it.  ``auto`` decides from this machine's ``/proc/cpuinfo``.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

from edgepose.errors import UserError

__all__ = ["QuantProfile", "PROFILES", "get_profile", "CALIBRATION_METHODS", "parse_profiles",
           "REDUCE_RANGE_CHOICES", "cpu_has_vnni", "resolve_reduce_range"]

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
REDUCE_RANGE_CHOICES = ("auto", "on", "off")
#: /proc/cpuinfo flags of the two VNNI flavours (AVX-512 VNNI: Cascade Lake+, Zen 4; AVX-VNNI: Alder Lake+)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


@dataclass(frozen=True)
class QuantProfile:
    name: str
    precision: str  # ArtifactMetadata.precision of the result
    activation_type: str  # onnxruntime QuantType name
    weight_type: str
    per_channel: bool
    extra_options: dict = field(default_factory=dict)
    description: str = ""
    reduce_range_ok: bool = False  # whether the reduce_range option applies (cpu only)

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
        description="Q/DQ, uint8 asymmetric activations + int8 per-channel weights (U8S8, ONNX Runtime CPU)",
        reduce_range_ok=True),
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


def cpu_has_vnni(cpuinfo: str | None = None, machine: str | None = None) -> bool | None:
    """True / False for an x86 CPU with / without VNNI; None when unknown (non-x86, no /proc/cpuinfo).

    ``cpuinfo`` (the text of ``/proc/cpuinfo``) and ``machine`` (``platform.machine()``) are read
    from this machine when not given; tests pass sample text.
    """
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in _X86:
        return None  # ARM etc.: VPMADDUBSW saturation is an x86 issue
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    if not flags:
        return None
    return any(f in flags for f in VNNI_FLAGS)


def resolve_reduce_range(profile: QuantProfile, setting: str | bool | None = "auto",
                         has_vnni: bool | None | str = "detect") -> tuple[bool, str]:
    """``(reduce_range, reason)`` for ``profile`` and ``setting`` (auto | on | off, or a bool).

    ``auto`` is on only for the ``cpu`` profile on an x86 CPU that lacks VNNI (``has_vnni`` from
    :func:`cpu_has_vnni` unless given).  ``on`` for the ``tensorrt`` profile is an error: TensorRT
    needs the full signed INT8 range and has no U8S8 saturation issue.
    """
    if isinstance(setting, bool):
        setting = "on" if setting else "off"
    setting = "auto" if setting is None else str(setting).strip().lower()
    if setting not in REDUCE_RANGE_CHOICES:
        raise UserError(f"reduce_range must be one of {', '.join(REDUCE_RANGE_CHOICES)} (got {setting!r})")
    if not profile.reduce_range_ok:
        if setting == "on":
            raise UserError(f"reduce_range applies to the cpu profile only, not {profile.name!r}; "
                            f"drop --reduce-range on or quantize with --profiles cpu")
        return False, f"not used by the {profile.name} profile"
    if setting != "auto":
        return setting == "on", f"set to {setting}"
    vnni = cpu_has_vnni() if has_vnni == "detect" else has_vnni
    if vnni is None:
        return False, "auto: off (not an x86 CPU, or its flags are unreadable)"
    if vnni:
        return False, "auto: off (this CPU has VNNI: no U8S8 saturation)"
    return True, ("auto: on (this x86 CPU lacks AVX512_VNNI / AVX_VNNI: U8S8 can saturate, "
                  "7-bit weights avoid it)")
