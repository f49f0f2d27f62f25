"""Engine build options and the optimisation-profile shapes they imply (pure Python).

Precision paths (docs/jetson.md, "Build engines"):

* ``fp32``  plain ONNX, strongly typed network.
* ``fp16``  TRT 10: ``BuilderFlag.FP16`` on the FP32 ONNX (weak typing still exists there);
            TRT 11: the ONNX is converted to FP16 first (IO kept float32, :mod:`.fp16`) and built
            strongly typed -- the only FP16 route TRT 11 has.
* ``int8``  a Q/DQ ONNX from ``edgepose quantize --profile tensorrt``, built strongly typed
            (explicit quantization).  Implicit INT8 (calibrators) is not offered: deprecated in
            TRT 10.1 and removed in 11.  DLA INT8 on TRT <= 10 needs implicit quantization, see
            docs/jetson.md ("DLA").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from edgepose.errors import UserError

__all__ = ["PRECISIONS", "BuildOptions", "ProfileShapes", "BuildOptionsError"]

PRECISIONS = ("fp32", "fp16", "int8")


class BuildOptionsError(UserError):
    """Inconsistent engine build options."""


@dataclass(frozen=True)
class ProfileShapes:
    """min / opt / max input shapes of one optimisation profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def as_dict(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp16"
    max_batch: int = 8  # most faces per frame the engine accepts
    opt_batch: int = 1  # the batch the tactics are tuned for (1 driver face in the car)
    min_batch: int = 1
    dla_core: int | None = None
    gpu_fallback: bool = False
    workspace_mb: int = 1024
    opt_level: int = 3  # builder_optimization_level (TRT default 3)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise BuildOptionsError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not (1 <= self.min_batch <= self.opt_batch <= self.max_batch):
            raise BuildOptionsError(
                f"batch sizes must satisfy 1 <= min ({self.min_batch}) <= opt ({self.opt_batch}) <= max "
                f"({self.max_batch}); fix --opt-batch / --max-batch")
        if self.workspace_mb < 16:
            raise BuildOptionsError(f"--workspace-mb {self.workspace_mb} is too small (use >= 16 MB)")
        if not 0 <= self.opt_level <= 5:
            raise BuildOptionsError(f"--opt-level must be 0..5, got {self.opt_level}")
        if self.dla_core is not None:
            if self.precision == "fp32":
                raise BuildOptionsError("DLA runs FP16 and INT8 only: use --precision fp16 (or int8) with --dla-core")
            if not (self.min_batch == self.opt_batch == self.max_batch):
                # DLA has no dynamic dimensions: min = opt = max (docs/jetson.md, "DLA")
                raise BuildOptionsError(
                    f"DLA engines need a static batch (min = opt = max); got {self.min_batch}/{self.opt_batch}/"
                    f"{self.max_batch}: pass --max-batch N --opt-batch N with the same N")
        elif self.gpu_fallback:
            raise BuildOptionsError("--gpu-fallback only makes sense with --dla-core N")

    @classmethod
    def for_dla(cls, precision: str, batch: int, core: int, gpu_fallback: bool = True, **kw) -> "BuildOptions":
        return cls(precision=precision, min_batch=batch, opt_batch=batch, max_batch=batch, dla_core=core,
                   gpu_fallback=gpu_fallback, **kw)

    @property
    def device_kind(self) -> str:
        return "gpu" if self.dla_core is None else f"dla{self.dla_core}"

    def profile(self, input_shape: Sequence) -> ProfileShapes:
        """Profile for an ONNX input ``(batch, C, H, W)``; only the batch axis may be dynamic.

        ``input_shape`` holds ints or None/str/<=0 for dynamic dims.  A fixed batch in the ONNX
        is allowed only when min = opt = max equals it (static engines, DLA).
        """
        dims = list(input_shape)
        if len(dims) != 4:
            raise BuildOptionsError(f"pose models take a 4-D input (N, C, H, W); this ONNX input is {tuple(dims)}")
        rest = dims[1:]
        if any(not isinstance(d, int) or d <= 0 for d in rest):
            raise BuildOptionsError(
                f"only the batch axis may be dynamic; the ONNX input is {tuple(dims)}: re-export with a fixed "
                f"--input-size")
        b = dims[0]
        rest = tuple(int(d) for d in rest)
        if isinstance(b, int) and b > 0 and not (self.min_batch == self.max_batch == b):
            raise BuildOptionsError(
                f"the ONNX has a fixed batch of {b} but the profile asks for {self.min_batch}..{self.max_batch}; "
                f"re-export with a dynamic batch (`edgepose export --dynamic-batch`) or pass "
                f"--max-batch {b} --opt-batch {b}")
        return ProfileShapes(min=(self.min_batch,) + rest, opt=(self.opt_batch,) + rest,
                             max=(self.max_batch,) + rest)

    def to_dict(self) -> dict:
        return asdict(self)
