"""Which benchmark backends exist here, and how each opens an artifact.

=============  ============  ===================================================================
backend        artifact      engine
=============  ============  ===================================================================
torch          .pt           PyTorch (CPU, or CUDA when ``device`` is cuda)
ort-cpu        .onnx         ONNX Runtime, CPUExecutionProvider
ort-cuda       .onnx         ONNX Runtime, CUDAExecutionProvider (onnxruntime-gpu)
ort-trt        .onnx         ONNX Runtime, TensorrtExecutionProvider (engine cache on)
tensorrt       .engine       TensorRT engine via edgepose.jetson.trt_runtime (pycuda)
=============  ============  ===================================================================

``availability(backend)`` returns ``None`` when the backend can run, else the reason a row is
skipped (what is missing and how to install it).  Everything opens through
:func:`edgepose.runtime.load_backend`, the same path ``edgepose run`` uses.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache

from edgepose.errors import UserError
from edgepose.registry import Registry

__all__ = ["BACKENDS", "BackendSpec", "FORMAT_OF", "VALID_PRECISIONS", "list_backends", "availability", "open_backend", "sync_fn", "runtime_device"]

@dataclass(frozen=True)
class BackendSpec:
    """What a benchmark backend consumes and can run."""

    format: str  # artifact format: torch | onnx | tensorrt
    precisions: tuple[str, ...]  # the deployment options on it (no fp16 on a CPU, no S8S8 on CUDA)
    provider: str | None = None  # ONNX Runtime execution provider of an ``ort-*`` backend


#: backend name -> BackendSpec
BACKENDS: Registry[BackendSpec] = Registry("backend", error=UserError)
BACKENDS.add("torch", BackendSpec("torch", ("fp32", "fp16")))
BACKENDS.add("ort-cpu", BackendSpec("onnx", ("fp32", "int8-cpu", "int8-tensorrt"), "CPUExecutionProvider"))
BACKENDS.add("ort-cuda", BackendSpec("onnx", ("fp32", "fp16"), "CUDAExecutionProvider"))
BACKENDS.add("ort-trt", BackendSpec("onnx", ("fp32", "fp16", "int8-tensorrt"), "TensorrtExecutionProvider"))
BACKENDS.add("tensorrt", BackendSpec("tensorrt", ("fp32", "fp16", "int8-tensorrt")))

#: artifact format each backend consumes (a view of BACKENDS)
FORMAT_OF: dict[str, str] = {name: BACKENDS.get(name).format for name in BACKENDS.names()}

#: precisions that make sense per backend (a view of BACKENDS)
VALID_PRECISIONS: dict[str, tuple[str, ...]] = {name: BACKENDS.get(name).precisions for name in BACKENDS.names()}


def list_backends() -> list[str]:
    """Backend names a suite may use (the registry's keys; same ``list_*()`` style as models,
    methods, importers, detectors and dataset formats)."""
    return BACKENDS.names()


_ORT_PROVIDER = {name: BACKENDS.get(name).provider for name in BACKENDS.names() if BACKENDS.get(name).provider}


@lru_cache(maxsize=None)
def _ort_providers() -> tuple[str, ...] | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    return tuple(ort.get_available_providers())


@lru_cache(maxsize=None)
def _torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def availability(backend: str, precision: str = "fp32", device: str = "cpu") -> str | None:
    """None if ``backend`` can run ``precision`` here, else the skip reason."""
    if backend not in FORMAT_OF:
        return BACKENDS.unknown(backend)
    if precision not in VALID_PRECISIONS[backend]:
        return f"{precision} is not a {backend} deployment option"
    if backend == "torch":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'edgepose[cpu]')"
        if precision == "fp16" and not (device.startswith("cuda") and _torch_cuda()):
            return "torch fp16 needs a CUDA device (run the suite with device: cuda on a GPU machine)"
        if device.startswith("cuda") and not _torch_cuda():
            return "torch has no CUDA here (CPU-only build or no GPU)"
        return None
    if backend.startswith("ort-"):
        providers = _ort_providers()
        if providers is None:
            return "onnxruntime is not installed (pip install 'edgepose[cpu]')"
        wanted = _ORT_PROVIDER[backend]
        if wanted not in providers:
            return (f"onnxruntime has no {wanted} here (available: {', '.join(providers)}); "
                    f"install onnxruntime-gpu on a CUDA machine (JetPack: the Jetson wheel)")
        return None
    # tensorrt engines
    if importlib.util.find_spec("tensorrt") is None:
        return ("tensorrt is not installed (no Python module 'tensorrt'; on Jetson it comes with JetPack, "
                "on a desktop GPU `pip install tensorrt`)")
    try:
        import pycuda.driver  # noqa: F401
    except Exception as exc:  # ImportError or a driver error from the CUDA library
        return f"pycuda cannot load the CUDA driver ({exc}); TensorRT engines need a GPU and pycuda"
    return None


def open_backend(backend: str, path, device: str = "cpu", threads: int | None = None, trt_cache_dir=None):
    """Open ``path`` on ``backend`` -> edgepose.runtime.PoseBackend (a context manager).

    ``trt_cache_dir``: engine cache of the ONNX Runtime TensorRT EP; without it every row would
    rebuild the engines (minutes on a Jetson) when its session opens.
    """
    from edgepose.runtime import load_backend

    if backend == "ort-trt" and trt_cache_dir is not None:
        from edgepose.metadata import load_metadata
        from edgepose.runtime.backend import PoseBackend
        from edgepose.runtime.runners import OnnxRunner

        providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in (_ort_providers() or ())]
        runner = OnnxRunner(path, device="tensorrt", providers=providers, intra_op_threads=threads,
                            trt_cache_dir=trt_cache_dir)
        try:
            return PoseBackend(runner, load_metadata(path), on_nan="flag")
        except BaseException:
            runner.close()
            raise
    if backend == "torch":
        return load_backend(path, device=device, on_nan="flag")
    if backend in _ORT_PROVIDER:
        providers = [_ORT_PROVIDER[backend]]
        if backend != "ort-cpu":
            providers.append("CPUExecutionProvider")
        return load_backend(path, device=device, providers=providers, intra_op_threads=threads, on_nan="flag")
    return load_backend(path, device="cuda", on_nan="flag")


def runtime_device(backend: str, device: str = "cpu") -> str:
    """The ``device`` string edgepose.runtime needs to pick this backend's engine (pipeline rows)."""
    return {"ort-cpu": "cpu", "ort-cuda": "cuda", "ort-trt": "tensorrt", "tensorrt": "cuda"}.get(backend, device)


def sync_fn(backend: str, device: str):
    """Device synchronisation for timing (torch CUDA launches are asynchronous)."""
    if backend == "torch" and device.startswith("cuda") and _torch_cuda():
        import torch

        return torch.cuda.synchronize
    return None  # onnxruntime and the TensorRT runner return host arrays: already synchronised
