"""Low-level runners: one contract, ``infer(feed) -> outputs``, for every inference engine.

Polygraphy-style split: a *runner* only moves named numpy arrays in and out of one engine
(onnxruntime, torch, TensorRT); everything model-specific (preprocessing, decoding, batching)
lives one level up in :mod:`edgepose.runtime.backend` and the detectors.  Runners are context
managers so device memory and sessions are released deterministically.

``open_runner(path)`` dispatches on the file suffix (Ultralytics AutoBackend style):
``.onnx`` -> :class:`OnnxRunner`, ``.pt/.pth/.ckpt`` -> :class:`TorchRunner`,
``.engine/.plan`` -> ``edgepose.jetson.trt_runtime.TrtRunner`` (imported lazily).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ..errors import DependencyError, ModelError, first_line, require
from ..metadata import CHECKPOINT_SUFFIXES

__all__ = ["Runner", "OnnxRunner", "TorchRunner", "open_runner", "select_providers",
           "TORCH_SUFFIXES", "ONNX_SUFFIXES", "TRT_SUFFIXES"]

log = logging.getLogger(__name__)

TORCH_SUFFIXES = CHECKPOINT_SUFFIXES
ONNX_SUFFIXES = (".onnx",)
TRT_SUFFIXES = (".engine", ".plan")


class Runner(Protocol):
    """What every runner offers (OnnxRunner, TorchRunner, jetson TrtRunner)."""

    input_name: str
    #: input shape; ``None`` for a dynamic dimension (e.g. ``(None, 3, 224, 224)``)
    input_shape: tuple
    output_names: list[str]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...

    def __enter__(self): ...

    def __exit__(self, *exc) -> None: ...


class _RunnerBase:
    input_name: str = "input"
    input_shape: tuple = ()
    output_names: list[str] = []

    @property
    def max_batch(self) -> int | None:
        """Largest batch the runner accepts, or None when the batch dimension is dynamic."""
        b = self.input_shape[0] if self.input_shape else None
        return b if isinstance(b, int) and b > 0 else None

    @property
    def fixed_batch(self) -> bool:
        """True when the batch dimension is a fixed number (inputs must be padded to it)."""
        return self.max_batch is not None

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- onnxruntime ---------------------------------------------------------------------------

#: preference order when the device asks for an accelerator
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def select_providers(device: str = "cpu", providers: Sequence[str] | None = None) -> list[str]:
    """Execution providers for onnxruntime.

    ``providers`` (explicit list) wins and must all be available.  Otherwise ``device`` picks:
    ``cpu`` -> CPU only; ``cuda``/``gpu``/``auto`` -> TensorRT EP, CUDA EP (those installed),
    always ending with CPU as the fallback.
    """
    ort = require("onnxruntime", "cpu", "running ONNX models")
    available = ort.get_available_providers()
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise DependencyError(
                f"onnxruntime execution provider(s) {', '.join(missing)} not available here "
                f"(available: {', '.join(available)}); install onnxruntime-gpu for CUDA/TensorRT or drop "
                f"the providers option")
        return list(providers)
    device = (device or "cpu").lower()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith(("cuda", "gpu", "auto", "trt", "tensorrt")):
        chosen = [p for p in _GPU_PROVIDERS if p in available]
        if device.startswith(("trt", "tensorrt")):
            chosen = [p for p in chosen if p.startswith("Tensorrt")] or chosen
        if not chosen and device != "auto":
            log.warning("device=%s requested but onnxruntime has no GPU provider (available: %s); "
                        "running on CPU", device, ", ".join(available))
        return chosen + ["CPUExecutionProvider"]
    raise ModelError(f"unknown device {device!r}; use cpu, cuda, tensorrt or auto")


def _provider_options(providers: list[str], cache_dir: Path | None) -> list[dict]:
    opts = []
    for p in providers:
        if p == "TensorrtExecutionProvider" and cache_dir is not None:
            # The TensorRT EP rebuilds its engines on every start unless the cache is on.
            cache_dir.mkdir(parents=True, exist_ok=True)
            opts.append({"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
                         "trt_timing_cache_enable": "True"})
        else:
            opts.append({})
    return opts


class OnnxRunner(_RunnerBase):
    """onnxruntime session behind the runner contract."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", providers: Sequence[str] | None = None,
                 intra_op_threads: int | None = None, trt_cache_dir: str | os.PathLike | None = None,
                 model_bytes: bytes | None = None):
        """``model_bytes``: a rewritten form of the file at ``path`` to run instead (e.g. a graph
        whose fixed input was made dynamic in memory); ``path`` still names it in messages."""
        ort = require("onnxruntime", "cpu", "running ONNX models")
        self.path = Path(path)
        if not self.path.exists():
            raise ModelError(f"ONNX model not found: {self.path}")
        self.providers = select_providers(device, providers)
        so = ort.SessionOptions()
        so.log_severity_level = 3  # UltraFace-style graphs list initializers as inputs: warning spam
        if intra_op_threads:
            so.intra_op_num_threads = int(intra_op_threads)
        try:
            self.session = ort.InferenceSession(
                model_bytes if model_bytes is not None else str(self.path), sess_options=so, providers=self.providers,
                provider_options=_provider_options(self.providers, Path(trt_cache_dir) if trt_cache_dir else None))
        except Exception as exc:  # onnxruntime raises its own exception types
            first = first_line(exc, 300)
            raise ModelError(f"onnxruntime cannot load {self.path}: {first}; a truncated or damaged file: copy it "
                             f"again or re-export it with `edgepose export`") from None
        inp = self.session.get_inputs()[0]  # graphs that list initializers as inputs put the image first
        self.input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in inp.shape)
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.output_names = [o.name for o in self.session.get_outputs()]
        log.debug("onnxruntime %s: input %s %s, providers %s", self.path.name, self.input_name,
                  self.input_shape, self.session.get_providers())

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {k: np.ascontiguousarray(v, dtype=self.input_dtype) if k == self.input_name else v
                for k, v in feed.items()}
        try:
            outs = self.session.run(None, feed)
        except Exception as exc:
            shape = {k: tuple(v.shape) for k, v in feed.items()}
            raise ModelError(f"onnxruntime failed on {self.path.name} with input shapes {shape} "
                             f"(model expects {self.input_name} {self.input_shape}): {exc}") from None
        return {n: np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o
                for n, o in zip(self.output_names, outs)}

    def close(self) -> None:
        self.session = None


# --- torch ---------------------------------------------------------------------------------

class TorchRunner(_RunnerBase):
    """A torch ``nn.Module`` (usually a PoseModel) behind the runner contract.

    Outputs are renamed to the ONNX names: PoseModel's ``"R"`` -> ``"rotation"``; other tensor
    entries keep their names (``"sixd"``, ``"euler"``); nested dicts (bin logits) and features
    are dropped because the runtime does not read them.
    """

    def __init__(self, module, input_shape: tuple = (None, 3, None, None), device: str = "cpu",
                 input_name: str = "input", path: str | os.PathLike | None = None):
        torch = require("torch", "cpu", "running torch checkpoints")
        self.path = Path(path) if path else None
        dev = (device or "cpu").lower()
        if dev in ("gpu", "auto", "tensorrt", "trt"):
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            log.warning("device=%s requested but torch has no CUDA here; running on CPU", device)
            dev = "cpu"
        self.device = torch.device(dev)
        self.module = module.to(self.device).eval()
        self.input_name = input_name
        self.input_shape = tuple(input_shape)
        self.output_names = ["rotation"]

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", checkpoint: dict | None = None) -> "TorchRunner":
        """Rebuild a PoseModel from an edgepose checkpoint (its metadata names the architecture);
        ``checkpoint``: the file's already loaded contents, so it is not read again."""
        try:
            from ..models.pose_model import PoseModel
        except ImportError as exc:
            raise DependencyError(f"loading {path} needs edgepose.models.pose_model ({exc})") from None
        try:
            model = PoseModel.from_checkpoint(path, checkpoint=checkpoint)
        except Exception as exc:
            raise ModelError(f"cannot rebuild a PoseModel from {path}: {exc}; is it an edgepose checkpoint?") from None
        if hasattr(model, "reparameterize"):
            model.reparameterize()  # RepVGG: fuse branches, identical outputs, faster inference
        meta = model.metadata()
        s = meta.preprocess.input_size
        return cls(model, input_shape=(None, meta.preprocess.channels, s, s), device=device,
                   input_name=meta.input_name, path=path)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(feed[self.input_name], dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            out = self.module(x)
        if isinstance(out, torch.Tensor):  # a bare module: (N,3,3) matrix or (N,6) 6D
            out = (out,)
        if isinstance(out, (tuple, list)):  # name unnamed outputs by their shape
            named = {}
            for t in out:
                key = "rotation" if t.shape[-2:] == (3, 3) else {6: "sixd", 3: "euler"}.get(t.shape[-1])
                if key:
                    named[key] = t
            out = named
        result = {}
        for k, v in out.items():
            if isinstance(v, torch.Tensor) and k != "features":
                if k == "presence":  # PoseModel gives the logit; exported graphs (and so every runner) the probability
                    v = torch.sigmoid(v)
                result["rotation" if k == "R" else k] = v.detach().float().cpu().numpy()
        self.output_names = list(result)
        return result

    def close(self) -> None:
        self.module = None


# --- suffix dispatch -----------------------------------------------------------------------

def _open_trt(path: Path, device: str):
    require("tensorrt", "trt", f"running the TensorRT engine {path.name}")
    require("pycuda.driver", "pycuda", f"running the TensorRT engine {path.name}")
    try:
        from edgepose.jetson.trt_runtime import TrtRunner
    except ImportError as exc:
        raise DependencyError(f"the TensorRT runtime (edgepose.jetson.trt_runtime) is not available: {exc}") from None
    return TrtRunner(path)


def open_runner(path: str | os.PathLike, device: str = "cpu", providers: Sequence[str] | None = None,
                intra_op_threads: int | None = None, **kw):
    """Open the right runner for a model file by its suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if suffix in ONNX_SUFFIXES:
        return OnnxRunner(path, device=device, providers=providers, intra_op_threads=intra_op_threads, **kw)
    if suffix in TORCH_SUFFIXES:
        return TorchRunner.from_checkpoint(path, device=device)
    if suffix in TRT_SUFFIXES:
        return _open_trt(path, device)
    raise ModelError(f"unknown model format {suffix!r} for {path}; use .onnx, .pt/.pth/.ckpt or .engine/.plan")
