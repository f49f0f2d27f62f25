"""Platform fingerprint written into every bench report: hardware, software versions, load.

Results from different machines are only comparable with this next to them; the load average
at the start and end of the run shows whether other jobs shared the CPU.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata

__all__ = ["platform_fingerprint", "cpu_model", "package_version"]


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if m:
            return m.group(1).strip()
    if shutil.which("lscpu"):
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
            m = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
            if m:
                return m.group(1).strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in os.getloadavg()]
    except OSError:
        return None


def _gpu() -> dict | None:
    """CUDA GPU through torch (already imported by the bench), else nvidia-smi."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                        "source": "torch"}
        except Exception:  # a broken driver must not break the report
            pass
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            if out:
                names = [l.split(",")[0].strip() for l in out.splitlines()]
                return {"name": names[0], "count": len(names), "driver": out.splitlines()[0].split(",")[-1].strip(),
                        "source": "nvidia-smi"}
        except (OSError, subprocess.TimeoutExpired):
            pass
    return None


def _tensorrt_version() -> str | None:
    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt_lean"):
        v = package_version(dist)
        if v:
            return v
    try:  # JetPack installs the bindings as a system package without pip metadata
        import tensorrt  # type: ignore

        return getattr(tensorrt, "__version__", None)
    except Exception:
        return None


def _cuda_version() -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch.version, "cuda", None):
        return torch.version.cuda
    for path in ("/usr/local/cuda/version.json", "/usr/local/cuda/version.txt"):
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        m = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"', text) or re.search(r"([\d]+\.[\d.]+)", text)
        if m:
            return m.group(1)
    return None


def platform_fingerprint() -> dict:
    """Everything a reader needs to judge where the numbers came from."""
    from edgepose import __version__ as edgepose_version

    try:
        from edgepose.jetson.platform import read_jetson_info

        info = read_jetson_info()
        jetson = {"model": info.model, "l4t": info.l4t, "jetpack_major": info.jetpack_major,
                  "family": info.family} if info.is_jetson else None
    except ImportError:
        jetson = None
    ort_providers = None
    try:
        import onnxruntime as ort

        ort_providers = ort.get_available_providers()
    except ImportError:
        pass
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "gpu": _gpu(),
        "jetson": jetson,
        "loadavg_start": _loadavg(),
        "versions": {
            "edgepose": edgepose_version,
            "python": platform.python_version(),
            "numpy": package_version("numpy"),
            "torch": package_version("torch"),
            "onnxruntime": package_version("onnxruntime") or package_version("onnxruntime-gpu"),
            "opencv": package_version("opencv-python-headless") or package_version("opencv-python"),
            "tensorrt": _tensorrt_version(),
            "cuda": _cuda_version(),
            "l4t": jetson["l4t"] if jetson else None,
            "jetpack": jetson["jetpack_major"] if jetson else None,
        },
        "onnxruntime_providers": ort_providers,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES") if k in os.environ},
    }
