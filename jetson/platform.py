"""Where are we running: Jetson model, L4T / JetPack release, TensorRT version gates, DLA rules.

Everything here reads plain files (``/etc/nv_tegra_release``, ``/proc/device-tree/model``) under
a root that tests can redirect with ``EDGEPOSE_JETSON_ROOT``, and takes the TensorRT version as a
string, so the rules are testable without a Jetson or TensorRT.

Facts encoded (docs/jetson.md, "TensorRT / JetPack matrix" and "DLA"):

* TensorRT 10 (JetPack 6.x = TRT 10.3, desktop 10.x) and TensorRT 11 (desktop pip, JetPack 7.2.2+)
  are supported; older releases lack the named-tensor API.
* TRT 11 removed weak typing: no ``BuilderFlag.FP16``/``INT8``, no calibrators; precision must be
  in the ONNX (FP16 ONNX, Q/DQ INT8).
* DLA exists on AGX Orin and Orin NX (not Orin Nano, not Thor, not desktop GPUs); TRT 11.0-11.4.0
  has no DLA at all and TRT 11.4.1+ has it on AGX Orin only.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgepose.errors import UserError

__all__ = ["TrtVersion", "JetsonInfo", "jetson_root", "read_jetson_info", "jetpack_for_l4t",
           "dla_support", "check_dla", "DlaUnsupportedError", "UnsupportedTensorRTError"]


class DlaUnsupportedError(UserError):
    """DLA was requested where this TensorRT / device combination cannot use it."""


class UnsupportedTensorRTError(UserError):
    """The installed TensorRT is older than the named-tensor API edgepose is written for."""


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> "TrtVersion":
        """``"10.3.0.30"`` -> TrtVersion(10, 3, 0); extra components (build numbers) are ignored."""
        m = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
        if not m:
            raise ValueError(f"not a TensorRT version: {text!r}")
        return cls(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))

    @property
    def is_trt10(self) -> bool:
        return self.major == 10

    @property
    def is_trt11(self) -> bool:
        return self.major == 11

    @property
    def weakly_typed_available(self) -> bool:
        """BuilderFlag.FP16/INT8 and calibrators exist (removed in TRT 11)."""
        return self.major <= 10

    def require_supported(self) -> None:
        if self.major < 10:
            raise UnsupportedTensorRTError(
                f"TensorRT {self} is too old: edgepose needs TensorRT 10 or 11 (named-tensor API). "
                f"On Jetson use JetPack 6.1+ (TensorRT 10.3); on a desktop `pip install tensorrt`")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class JetsonInfo:
    """What /etc/nv_tegra_release and the device tree say (all None on a desktop)."""

    l4t: str | None = None  # "36.4.0"
    jetpack_major: int | None = None  # 5, 6, 7
    model: str | None = None  # "NVIDIA Jetson AGX Orin Developer Kit"

    @property
    def is_jetson(self) -> bool:
        return self.l4t is not None

    @property
    def family(self) -> str:
        """"agx-orin", "orin-nx", "orin-nano", "thor", "xavier", "unknown-jetson" or "desktop"."""
        if not self.is_jetson:
            return "desktop"
        m = (self.model or "").lower()
        for key, fam in (("thor", "thor"), ("agx orin", "agx-orin"), ("orin nx", "orin-nx"),
                         ("orin nano", "orin-nano"), ("xavier", "xavier")):
            if key in m:
                return fam
        return "unknown-jetson"

    @property
    def dla_cores(self) -> int:
        """DLA cores by family (AGX Orin 2, Orin NX 16GB 2 / 8GB 1 -> reported as >= 1)."""
        return {"agx-orin": 2, "orin-nx": 1, "xavier": 2}.get(self.family, 0)


def jetson_root() -> Path:
    """Filesystem root for detection (``EDGEPOSE_JETSON_ROOT`` lets tests fake a Jetson)."""
    return Path(os.environ.get("EDGEPOSE_JETSON_ROOT", "/"))


_RELEASE_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")


def jetpack_for_l4t(l4t: str) -> int | None:
    """L4T major -> JetPack major: R35 -> 5, R36 -> 6, R38/R39 -> 7 (JetPack 7.0-7.2)."""
    major = int(l4t.split(".")[0])
    return {35: 5, 36: 6, 38: 7, 39: 7}.get(major)


def read_jetson_info(root: str | os.PathLike | None = None) -> JetsonInfo:
    """Parse ``/etc/nv_tegra_release`` (``# R36 (release), REVISION: 4.0, ...``) and the model name."""
    root = Path(root) if root is not None else jetson_root()
    release = root / "etc" / "nv_tegra_release"
    if not release.is_file():
        return JetsonInfo()
    m = _RELEASE_RE.search(release.read_text(errors="replace"))
    if not m:
        return JetsonInfo(l4t="unknown", jetpack_major=None, model=_read_model(root))
    rev = m.group(2)
    l4t = f"{m.group(1)}.{rev}" if rev.count(".") >= 1 else f"{m.group(1)}.{rev}.0"
    return JetsonInfo(l4t=l4t, jetpack_major=jetpack_for_l4t(l4t), model=_read_model(root))


def _read_model(root: Path) -> str | None:
    p = root / "proc" / "device-tree" / "model"
    if p.is_file():
        return p.read_bytes().rstrip(b"\x00\n").decode(errors="replace").strip()
    return None


def dla_support(trt: TrtVersion, info: JetsonInfo) -> tuple[bool, str]:
    """Can this TensorRT on this device build for DLA?  -> (ok, reason)."""
    if not info.is_jetson:
        return False, "DLA is only available on NVIDIA Jetson devices (AGX Orin, Orin NX); this is not a Jetson"
    fam = info.family
    if fam == "thor":
        return False, "Jetson Thor has no DLA; build for the GPU (drop --dla-core)"
    if fam == "orin-nano":
        return False, "Jetson Orin Nano has no DLA cores; build for the GPU (drop --dla-core)"
    if trt.major < 10:
        return False, f"TensorRT {trt} is not supported by edgepose (needs 10.x or 11.4.1+)"
    if trt.major == 10:
        return True, f"TensorRT {trt} supports DLA on {info.model or fam}"
    if trt < TrtVersion(11, 4, 1):
        return False, (f"TensorRT {trt} has no DLA support (removed in 11.0, restored in 11.4.1 for AGX Orin); "
                       f"use JetPack 6 (TensorRT 10.3) or TensorRT 11.4.1+ on AGX Orin")
    if fam != "agx-orin":
        return False, (f"TensorRT {trt} supports DLA on Jetson AGX Orin only (this is {info.model or fam}); "
                       f"use JetPack 6 (TensorRT 10.3) for DLA on this module")
    return True, f"TensorRT {trt} supports DLA on AGX Orin"


def check_dla(trt: TrtVersion, info: JetsonInfo, core: int, available_cores: int | None = None) -> None:
    """Raise DlaUnsupportedError with the reason unless DLA core ``core`` can be used."""
    ok, reason = dla_support(trt, info)
    if not ok:
        raise DlaUnsupportedError(reason)
    n = info.dla_cores if available_cores is None else available_cores
    if core < 0 or core >= max(n, 0):
        raise DlaUnsupportedError(f"--dla-core {core} does not exist: this device has {n} DLA core(s) (0..{n - 1})")
